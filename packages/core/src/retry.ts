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
  if (!(policy.initialDelayMs >= 0))
    problems.push(`initialDelayMs must be >= 0 (got ${policy.initialDelayMs})`);
  if (!(policy.maxDelayMs >= policy.initialDelayMs))
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
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && transientSqlStates.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
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
