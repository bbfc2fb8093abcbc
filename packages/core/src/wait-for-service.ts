import { maxTimerDelayMs } from './durations';
import { OnceflowError } from './errors';
import { backoffDelayMs, isConnectionError, type RetryPolicy, sleep } from './retry';

/** Options of {@link waitForService}. */
export interface WaitForServiceOptions {
  /** Who waits, for messages: `inbox consumer payments`, `outbox relay`. */
  component: string;
  /** What is waited for, for messages: `Postgres at db:5432 (database app)`. */
  service: string;
  /** What the operator should check, appended to every message. */
  hint: string;
  /** Longest wait in milliseconds; undefined waits until the service answers or `signal` aborts. */
  timeoutMs: number | undefined;
  /** Delays between attempts (`maxAttempts` is ignored: the time limit bounds the wait). */
  retry: RetryPolicy;
  /** Aborting ends the wait: the promise then rejects with OF_STOPPED. */
  signal: AbortSignal;
  /** Which failures mean "not reachable yet"; any other is thrown at once. Default: {@link isConnectionError}. */
  isUnavailable?: (error: unknown) => boolean;
  /** Called after each failed attempt that will be retried, with an OF_UNAVAILABLE error saying so. */
  onWait: (error: OnceflowError) => void;
}

class AttemptTimedOut extends Error {}
class WaitAborted extends Error {}

/**
 * `attempt()`, unless `signal` aborts or `timeoutMs` passes first: a connect to a host that accepts
 * and never answers must hold up neither a stop nor the time limit. The attempt then settles alone.
 */
function bounded<T>(attempt: () => Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
  const running = attempt();
  running.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      settle();
    };
    const onAbort = (): void => finish(() => reject(new WaitAborted()));
    if (Number.isFinite(timeoutMs))
      timer = setTimeout(
        () => finish(() => reject(new AttemptTimedOut())),
        Math.min(Math.max(0, timeoutMs), maxTimerDelayMs),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    running.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

/**
 * Runs `attempt` until it succeeds, retrying with backoff while it fails because the service cannot
 * be reached (a server not up yet, restarting, or behind a network not ready yet), and reporting each
 * wait. For processes started before their database, as orchestrators (compose, Kubernetes) do: they
 * wait and say so instead of crashing. Rejects with OF_UNAVAILABLE when `timeoutMs` passes, naming
 * the service and what to check, with OF_STOPPED when `signal` aborts, and with the attempt's own
 * error when that is not about reaching the service (a wrong password, a missing table).
 */
export async function waitForService<T>(
  attempt: () => Promise<T>,
  options: WaitForServiceOptions,
): Promise<T> {
  const isUnavailable = options.isUnavailable ?? isConnectionError;
  const startedAt = Date.now();
  const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : startedAt + options.timeoutMs;
  const details = (attempts: number) => ({
    service: options.service,
    attempts,
    waitedMs: Date.now() - startedAt,
  });
  for (let attempts = 1; ; attempts++) {
    let error: unknown;
    try {
      if (options.signal.aborted) throw new WaitAborted();
      return await bounded(attempt, options.signal, deadline - Date.now());
    } catch (caught) {
      error = caught;
    }
    if (error instanceof WaitAborted)
      throw new OnceflowError(
        'OF_STOPPED',
        `${options.component} was stopped while waiting for ${options.service}`,
        { details: details(attempts) },
      );
    const timedOut = error instanceof AttemptTimedOut;
    if (!timedOut && !isUnavailable(error)) throw error;
    const reason = timedOut ? 'no answer' : describe(error);
    if (timedOut || Date.now() >= deadline)
      throw new OnceflowError(
        'OF_UNAVAILABLE',
        `${options.component} gave up after ${Date.now() - startedAt} ms and ${attempts} attempt${
          attempts === 1 ? '' : 's'
        }: ${options.service} is unreachable (${reason}). ${options.hint}`,
        { cause: timedOut ? undefined : error, retriable: true, details: details(attempts) },
      );
    const delay = Math.min(backoffDelayMs(options.retry, attempts), deadline - Date.now());
    const waiting = new OnceflowError(
      'OF_UNAVAILABLE',
      `${options.component} is waiting for ${options.service}: attempt ${attempts} failed (${reason}), next in ${delay} ms${
        options.timeoutMs === undefined ? '' : `, giving up after ${options.timeoutMs} ms`
      }. ${options.hint}`,
      { cause: error, retriable: true, details: details(attempts) },
    );
    try {
      options.onWait(waiting);
    } catch {
      // A failing reporter must not end the wait.
    }
    await sleep(delay, options.signal);
  }
}
