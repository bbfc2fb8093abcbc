import { durationMsProblem } from './durations';

/** How a failed attempt is retried. Injectable wherever onceflow retries. */
export interface RetryPolicy {
  /** Attempts in total, the first included. Must be >= 1. */
  maxAttempts: number;
  /** Delay before the second attempt, in milliseconds. */
  initialDelayMs: number;
  /** Upper bound of any delay, in milliseconds. */
  maxDelayMs: number;
  /** Growth factor between delays. Must be >= 1. */
  multiplier: number;
  /** Fraction (0..1) of each delay replaced by random jitter, so retries of many workers spread out. */
  jitter: number;
}

/** The retry defaults used across onceflow: 5 attempts, 100 ms doubling up to 5 s, 20% jitter. */
export const defaultRetryPolicy: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 5,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  multiplier: 2,
  jitter: 0.2,
});

/** Returns the problems of a policy, empty when it is valid. */
export function retryPolicyProblems(policy: RetryPolicy): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1)
    problems.push(`maxAttempts must be an integer >= 1 (got ${policy.maxAttempts})`);
  const initial = durationMsProblem('initialDelayMs', policy.initialDelayMs, { min: 0, integer: false });
  if (initial !== undefined) problems.push(initial);
  const max = durationMsProblem('maxDelayMs', policy.maxDelayMs, { min: 0, integer: false });
  if (max !== undefined) problems.push(max);
  else if (!(policy.maxDelayMs >= policy.initialDelayMs))
    problems.push(`maxDelayMs must be >= initialDelayMs (got ${policy.maxDelayMs})`);
  if (!(policy.multiplier >= 1)) problems.push(`multiplier must be >= 1 (got ${policy.multiplier})`);
  if (!(policy.jitter >= 0 && policy.jitter <= 1))
    problems.push(`jitter must be within 0..1 (got ${policy.jitter})`);
  return problems;
}

/**
 * Delay in milliseconds before attempt `attempt + 1`, given that `attempt` (1-based) just failed.
 * `random` is injectable for deterministic tests.
 */
export function backoffDelayMs(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt - 1),
  );
  const jitter = base * policy.jitter;
  return Math.round(base - jitter + random() * jitter * 2);
}

/**
 * SQLSTATEs that mean "the transaction lost a race, run it again": serialization failure and deadlock.
 * Always retried, independent of the handler's own retry policy.
 */
export const transientSqlStates: ReadonlySet<string> = new Set(['40001', '40P01']);

/** True for a Postgres serialization failure or deadlock, looking through `cause` chains. */
export function isTransientDatabaseError(error: unknown): boolean {
  return someInCauseChain(error, (code) => typeof code === 'string' && transientSqlStates.has(code));
}

function someInCauseChain(error: unknown, test: (code: unknown, message: unknown) => boolean): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (test(code, message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * SQLSTATEs of a connection the server ended or refused: administrator shutdown or
 * pg_terminate_backend (57P01), crash of another backend (57P02), server starting up or shutting down
 * (57P03); class 08 (connection exceptions) is matched by prefix.
 */
const connectionSqlStates: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03']);

/** Socket errors of a connection that could not be made or broke. */
const connectionErrnos: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  // Name resolution: the database's host name may not resolve yet while an orchestrator starts it.
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * What node-postgres says, without a code, about a connection that ended ("Connection terminated
 * unexpectedly"), a client broken by such an end ("... is not queryable"), or a connect that timed
 * out (pg's "timeout expired", pg-pool's "timeout exceeded when trying to connect").
 */
const connectionMessages =
  /Connection terminated|is not queryable|timeout exceeded when trying to connect|^timeout expired$/;

/**
 * True for a lost or refused database connection, looking through `cause` chains: the server
 * restarted or is not up yet, the backend was terminated, the network dropped, a connect timed out.
 * The work in flight on that connection was rolled back by the server, unless the failure hit a
 * COMMIT, whose outcome is then unknown. Retrying on a new connection is the cure; the failure says
 * nothing about the work itself.
 */
export function isConnectionError(error: unknown): boolean {
  return someInCauseChain(error, (code, message) => {
    if (typeof code === 'string') {
      if (connectionSqlStates.has(code) || connectionErrnos.has(code)) return true;
      if (/^08[0-9A-Z]{3}$/.test(code)) return true;
    }
    return typeof message === 'string' && connectionMessages.test(message);
  });
}

/** Resolves after `ms` milliseconds, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
