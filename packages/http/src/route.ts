import { invalidOptions } from '@onceflow/core';
import type { TransactionContext } from '@onceflow/postgres';
import type { IdempotentResponse } from './response';

/** A request as an idempotent handler sees it, independent of the web framework. */
export interface IdempotentRequest<Body = unknown> {
  /** Upper-case method. */
  readonly method: string;
  /** The route's id: method and path pattern, e.g. `POST /charges/:id`. */
  readonly route: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly params: Readonly<Record<string, string>>;
  /**
   * Request headers, lower case. When a completer finishes an abandoned request, only the content
   * type and the fingerprinted headers are there.
   */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The parsed body (JSON value, text, or Buffer), or undefined without a body. */
  readonly body: Body;
  /** The principal the key belongs to. */
  readonly scope: string;
  /** The Idempotency-Key, or undefined on an optional route called without one. */
  readonly key: string | undefined;
  /** The framework's own request object; undefined when a completer runs the request. */
  readonly raw: unknown;
}

/** What a phase sees besides the request: the open transaction and where the request stands. */
export interface PhaseContext extends TransactionContext {
  /** Stable id of this logical request across retries and takeovers (a UUID). */
  readonly requestId: string;
  /** The recovery point this phase runs from. */
  readonly recoveryPoint: string;
  /** What the previous phase passed on with its recovery point; undefined in the first phase. */
  readonly data: unknown;
  /**
   * A key for a foreign call made in this phase (`${requestId}:${step}`): the same on every retry
   * of the request, so a provider that deduplicates by it (as Stripe does) acts once.
   */
  foreignKey(step: string): string;
}

/** A phase's result that moves the request to its next recovery point. */
export interface RecoveryPoint {
  readonly recoveryPoint: string;
  /** JSON-serialisable data for the next phase. */
  readonly data?: unknown;
}

/** Returns the recovery point to commit together with this phase's writes. */
export function recoveryPoint(name: string, data?: unknown): RecoveryPoint {
  return data === undefined ? { recoveryPoint: name } : { recoveryPoint: name, data };
}

/** One atomic phase: runs in its own transaction; returns the next recovery point or the final response. */
export type IdempotentPhase<Body = unknown> = (
  request: IdempotentRequest<Body>,
  context: PhaseContext,
) => Promise<IdempotentResponse | RecoveryPoint>;

/** A single-phase handler: all of it runs in the transaction that records the key. */
export type IdempotentHandler<Body = unknown> = (
  request: IdempotentRequest<Body>,
  context: PhaseContext,
) => Promise<IdempotentResponse>;

/** The recovery point every request starts from. */
export const startedRecoveryPoint = 'started';

/** Phases by the recovery point they run from; `started` is required. */
export type IdempotentPhases<Body = unknown> = { readonly started: IdempotentPhase<Body> } & Readonly<
  Record<string, IdempotentPhase<Body>>
>;

/** Per-route settings. */
export interface IdempotentRouteOptions {
  /** Refuse requests without Idempotency-Key with 400. Default: false (they run unprotected). */
  required?: boolean;
  /** Request headers (lower case) that are part of this route's fingerprint, on top of the engine's. Default: none. */
  fingerprintHeaders?: string[];
}

/** A route as the engine runs it. */
export interface RouteSpec {
  /** Method and path pattern, e.g. `POST /charges/:id`. Stored with the key; 422 when it differs. */
  readonly id: string;
  readonly phases: IdempotentPhases;
  readonly required: boolean;
  readonly fingerprintHeaders: readonly string[];
  /** True with more than one phase: the request is stored so a completer can finish it. */
  readonly multiPhase: boolean;
}

/** Builds a route spec; throws OF_INVALID_OPTIONS for phase maps without `started`. */
export function defineRoute<Body = unknown>(
  id: string,
  handler: IdempotentHandler<Body> | IdempotentPhases<Body>,
  options: IdempotentRouteOptions = {},
): RouteSpec {
  // biome-ignore lint/suspicious/noExplicitAny: a handler's body type is the user's choice.
  const phases = (typeof handler === 'function' ? { started: handler } : handler) as IdempotentPhases<any>;
  if (typeof phases.started !== 'function')
    invalidOptions('idempotency', `route ${id}: phases need a \`started\` phase`);
  for (const [name, phase] of Object.entries(phases))
    if (typeof phase !== 'function')
      invalidOptions('idempotency', `route ${id}: phase ${name} is not a function`);
  return {
    id,
    phases,
    required: options.required ?? false,
    fingerprintHeaders: (options.fingerprintHeaders ?? []).map((name) => name.toLowerCase()),
    multiPhase: Object.keys(phases).length > 1,
  };
}

/** True when a phase result is a recovery point rather than a response. */
export function isRecoveryPoint(result: IdempotentResponse | RecoveryPoint): result is RecoveryPoint {
  return typeof (result as RecoveryPoint).recoveryPoint === 'string';
}
