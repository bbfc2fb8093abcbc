import {
  type BaseOptions,
  checkDurationMs,
  type ErrorHook,
  invalidOptions,
  type Logger,
  resolveLogger,
} from '@onceflow/core';
import { defaultSchemaName, type IdempotencyKeyStore } from '@onceflow/postgres';
import type { Pool } from 'pg';
import type { IdempotencyCompleterOptions } from './completer';
import type { ErrorFormat } from './problem';
import type { IdempotencyReaperOptions } from './reaper';

/** What {@link IdempotencyTestHooks.afterPhaseCommit} is told: a phase committed its recovery point. */
export interface PhaseCommitInfo {
  route: string;
  scope: string;
  key: string;
  requestId: string;
  /** The recovery point that was just committed. */
  recoveryPoint: string;
}

/** Seams for tests; awaited by the engine at an exact point. Not for production use. */
export interface IdempotencyTestHooks {
  /** After each phase's transaction committed with its recovery point (a crash here is "between phases"). */
  afterPhaseCommit?: (info: PhaseCommitInfo) => void | Promise<void>;
}

/**
 * Options of {@link createIdempotencyEngine}. `retry` is the retry of serialization failures and
 * deadlocks of the key store's transactions (always retried; an attempt is one run of a phase).
 * `onError` and the logger receive handler and database errors with `route`, `scope` and `key` in
 * their details; clients only ever see a generic answer.
 */
export interface IdempotencyEngineOptions extends BaseOptions {
  /**
   * Pool the key store (in `schema`) and the handler transactions use. Give exactly one of `pool`
   * and `store`.
   */
  pool?: Pool;
  /** Key store, instead of `pool` (its schema and retries are the store's; give neither then). */
  store?: IdempotencyKeyStore;
  /**
   * How long a key is remembered, in milliseconds, counted from its first request; at least an hour,
   * so retries after a timeout still match. Default: 86400000 (24 hours, Stripe's window).
   */
  retentionMs?: number;
  /**
   * Lease of an unfinished multi-phase request, in milliseconds: how long other requests for the
   * key get 409 after its process stopped between phases, before one of them may take over. Default: 10 000.
   */
  leaseMs?: number;
  /** Largest request body accepted on idempotent routes, in bytes. Default: 1 048 576 (1 MiB). */
  bodyLimitBytes?: number;
  /** Longest key accepted, in characters. Default: 255. */
  maxKeyLength?: number;
  /**
   * Accept a bare key such as `Idempotency-Key: order 42, try 1` (the header's whole value, printable
   * ASCII, not starting with `"`) besides the draft's sf-string `"order 42, try 1"`; both name the
   * same key. Stripe's SDKs send bare keys. Default: true.
   */
  acceptUnquotedKeys?: boolean;
  /** Request headers (lower case) that are part of the fingerprint on every route. Default: none. */
  fingerprintHeaders?: string[];
  /**
   * Which handler responses release the key instead of being stored: their transaction rolls back
   * and a retry runs again. Default: 5xx (`status >= 500`). 4xx answers are stored and replayed.
   */
  releaseOn?: (status: number) => boolean;
  /** Keyed requests in flight in this process; beyond it requests get 503. Default: 1024. */
  maxInFlight?: number;
  /** Distinct keys in flight per scope in this process; beyond it requests get 429. Default: 32. */
  maxKeysInFlightPerScope?: number;
  /**
   * How long a request for a key that a request in this process is running waits for that outcome
   * (and then gets it replayed) before answering 409, in milliseconds; 0 answers 409 at once, as
   * Stripe does. A waiting request holds no database connection. A key running in another process
   * is answered 409 at once. Default: 5 000.
   */
  inFlightWaitMs?: number;
  /**
   * Shape of onceflow's own error answers (key problems, refused bodies, 409, 429, 5xx):
   * `problem+json` (RFC 9457), or `stripe` (`{"error":{"type","code","message"}}` with Stripe's
   * statuses), which Stripe's SDKs raise as their typed errors. Handler responses are never
   * changed. Default: `problem+json`.
   */
  errorFormat?: ErrorFormat;
  /**
   * The completer that `start()` runs, finishing multi-phase requests whose process died; `false`
   * runs none. Default: on, with `defaultIdempotencyCompleterOptions`.
   */
  completer?: IdempotencyCompleterOptions | false;
  /** The reaper that `start()` runs, deleting expired keys; `false` runs none. Default: on, with `defaultIdempotencyReaperOptions`. */
  reaper?: IdempotencyReaperOptions | false;
  /** Seams for tests. Default: none. */
  testHooks?: IdempotencyTestHooks;
}

/** Defaults of {@link IdempotencyEngineOptions}. */
export const defaultIdempotencyEngineOptions = Object.freeze({
  schema: defaultSchemaName,
  retentionMs: 24 * 3_600_000,
  leaseMs: 10_000,
  bodyLimitBytes: 1_048_576,
  maxKeyLength: 255,
  acceptUnquotedKeys: true,
  fingerprintHeaders: [] as readonly string[],
  releaseOn: (status: number): boolean => status >= 500,
  maxInFlight: 1024,
  maxKeysInFlightPerScope: 32,
  inFlightWaitMs: 5_000,
  errorFormat: 'problem+json' as ErrorFormat,
});

/** Options after defaults were applied and checked. */
export interface ResolvedEngineOptions {
  schema: string;
  retentionMs: number;
  leaseMs: number;
  bodyLimitBytes: number;
  maxKeyLength: number;
  acceptUnquotedKeys: boolean;
  fingerprintHeaders: readonly string[];
  releaseOn: (status: number) => boolean;
  maxInFlight: number;
  maxKeysInFlightPerScope: number;
  inFlightWaitMs: number;
  errorFormat: ErrorFormat;
  /** Bound to `component: 'idempotency'`; silent by default. */
  logger: Logger;
  onError: ErrorHook | undefined;
  testHooks: IdempotencyTestHooks;
}

function positive(name: string, value: number, integer = true): void {
  if (!(value > 0) || (integer && !Number.isInteger(value)) || !Number.isFinite(value))
    invalidOptions(
      'idempotency',
      `${name} must be a positive ${integer ? 'integer' : 'number'} (got ${value})`,
    );
}

/** Applies defaults and throws OF_INVALID_OPTIONS for anything that cannot work. */
export function resolveEngineOptions(options: IdempotencyEngineOptions): ResolvedEngineOptions {
  if (options === null || typeof options !== 'object')
    invalidOptions('idempotency', 'options must be an object');
  const {
    pool: _pool,
    store: _store,
    retry: _retry,
    completer: _completer,
    reaper: _reaper,
    logger,
    onError,
    testHooks,
    ...settings
  } = options;
  const defined = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
  const resolved = {
    ...defaultIdempotencyEngineOptions,
    ...defined,
    logger: resolveLogger('idempotency', logger, { component: 'idempotency' }),
    onError,
    testHooks: testHooks ?? {},
  } as ResolvedEngineOptions;
  if (onError !== undefined && typeof onError !== 'function')
    invalidOptions('idempotency', 'onError must be a function');
  if (!(resolved.retentionMs >= 3_600_000) || !Number.isInteger(resolved.retentionMs))
    invalidOptions(
      'idempotency',
      `retentionMs must be an integer of at least 3600000 (an hour) so retries after a timeout still match (got ${resolved.retentionMs})`,
    );
  checkDurationMs('idempotency', 'leaseMs', resolved.leaseMs);
  positive('bodyLimitBytes', resolved.bodyLimitBytes);
  positive('maxKeyLength', resolved.maxKeyLength);
  positive('maxInFlight', resolved.maxInFlight);
  positive('maxKeysInFlightPerScope', resolved.maxKeysInFlightPerScope);
  if (!Number.isInteger(resolved.inFlightWaitMs) || resolved.inFlightWaitMs < 0)
    invalidOptions(
      'idempotency',
      `inFlightWaitMs must be an integer >= 0 (got ${resolved.inFlightWaitMs}); 0 answers 409 at once`,
    );
  if (resolved.errorFormat !== 'problem+json' && resolved.errorFormat !== 'stripe')
    invalidOptions(
      'idempotency',
      `errorFormat must be 'problem+json' or 'stripe' (got ${JSON.stringify(resolved.errorFormat)})`,
    );
  if (resolved.maxKeyLength > 255)
    invalidOptions(
      'idempotency',
      `maxKeyLength must be at most 255, the draft's limit (got ${resolved.maxKeyLength})`,
    );
  resolved.fingerprintHeaders = resolved.fingerprintHeaders.map((name) => name.toLowerCase());
  return resolved;
}
