import { checkDurationMs, invalidOptions } from '@onceflow/core';
import type { IdempotencyKeyStore } from '@onceflow/postgres';
import type { Pool } from 'pg';
import type { ErrorFormat } from './problem';

/** Observation point after a phase's transaction committed with its recovery point. */
export interface PhaseCommitInfo {
  route: string;
  scope: string;
  key: string;
  requestId: string;
  /** The recovery point that was just committed. */
  recoveryPoint: string;
}

/** Options of {@link createIdempotencyEngine}. */
export interface IdempotencyEngineOptions {
  /** Pool the key store and handler transactions use. Required unless `store` is given. */
  pool?: Pool;
  /** Key store; default: the Postgres store over `pool` in `schema`. */
  store?: IdempotencyKeyStore;
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** How long a key is remembered, in hours, counted from its first request. Default: 24 (Stripe's window). */
  retentionHours?: number;
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
  /** Called after each phase commits a recovery point (metrics, fault injection in tests). Default: none. */
  afterPhaseCommit?: (info: PhaseCommitInfo) => void | Promise<void>;
  /** Receives handler and database errors; clients only ever see a generic problem. Default: `console.error`. */
  onError?: (error: unknown, info: { route: string; scope: string; key: string | undefined }) => void;
}

/** Defaults of {@link IdempotencyEngineOptions}. */
export const defaultIdempotencyEngineOptions = Object.freeze({
  schema: 'onceflow',
  retentionHours: 24,
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
  onError: (error: unknown, info: { route: string; scope: string; key: string | undefined }): void => {
    console.error(`onceflow idempotency: request failed on ${info.route}`, error);
  },
});

/** Options after defaults were applied and checked. */
export type ResolvedEngineOptions = Required<
  Omit<IdempotencyEngineOptions, 'pool' | 'store' | 'afterPhaseCommit' | 'fingerprintHeaders'>
> &
  Pick<IdempotencyEngineOptions, 'afterPhaseCommit'> & { fingerprintHeaders: readonly string[] };

function positive(name: string, value: number, integer = true): void {
  if (!(value > 0) || (integer && !Number.isInteger(value)) || !Number.isFinite(value))
    invalidOptions(
      'idempotency',
      `${name} must be a positive ${integer ? 'integer' : 'number'} (got ${value})`,
    );
}

/** Applies defaults and throws OF_INVALID_OPTIONS for anything that cannot work. */
export function resolveEngineOptions(options: IdempotencyEngineOptions): ResolvedEngineOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const resolved = { ...defaultIdempotencyEngineOptions, ...defined } as ResolvedEngineOptions;
  if (!options.store && !options.pool) invalidOptions('idempotency', 'give a pg `pool` (or a key `store`)');
  positive('retentionHours', resolved.retentionHours, false);
  if (resolved.retentionHours < 1)
    invalidOptions(
      'idempotency',
      `retentionHours must be >= 1 so retries after a timeout still match (got ${resolved.retentionHours})`,
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
