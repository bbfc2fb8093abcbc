import {
  alreadyStarted,
  checkDurationMs,
  createStoppable,
  invalidOptions,
  reportError,
  type StartedHandle,
  sleep,
  toOnceflowError,
} from '@onceflow/core';
import type { IdempotencyEngine, ResumeOutcome } from './engine';

/** Options of {@link createIdempotencyCompleter}. */
export interface IdempotencyCompleterOptions {
  /** Pause between scans for abandoned requests, in milliseconds. Default: 30 000. */
  intervalMs?: number;
  /** Abandoned requests taken per scan. Default: 20. */
  batchSize?: number;
  /**
   * How long a request must have been without a live lease before the completer takes it, in
   * milliseconds; gives the client's own retry the first chance. Default: the engine's `leaseMs`.
   */
  idleMs?: number;
  /** Called once per request the completer touched. Default: none. */
  onResume?: (info: { scope: string; key: string; outcome: ResumeOutcome }) => void;
}

/** Defaults of {@link IdempotencyCompleterOptions}; `idleMs` defaults to the engine's lease. */
export const defaultIdempotencyCompleterOptions = Object.freeze({ intervalMs: 30_000, batchSize: 20 });

/** A configured completer. */
export interface IdempotencyCompleter {
  /** Runs one scan now; resolves to what happened to each request found. */
  runOnce(): Promise<ResumeOutcome[]>;
  /** Scans every `intervalMs` until the handle is stopped. Call once: a second call rejects with OF_ALREADY_STARTED. */
  start(): Promise<StartedHandle>;
}

const component = 'idempotency completer';

/**
 * Finishes multi-phase requests whose process died (Brandur Leach's "completer"): finds unfinished
 * keys whose lease ran out and drives them from their last recovery point to a stored response,
 * which the client's next retry then gets replayed. Only routes registered on the engine can be
 * finished; keys of other routes are left for a process that knows them. A started engine runs one
 * unless told otherwise (`completer: false`).
 */
export function createIdempotencyCompleter(
  engine: IdempotencyEngine,
  options: IdempotencyCompleterOptions = {},
): IdempotencyCompleter {
  const intervalMs = options.intervalMs ?? defaultIdempotencyCompleterOptions.intervalMs;
  const batchSize = options.batchSize ?? defaultIdempotencyCompleterOptions.batchSize;
  const idleMs = options.idleMs ?? engine.options.leaseMs;
  checkDurationMs(component, 'intervalMs', intervalMs, { integer: false });
  if (!Number.isInteger(batchSize) || batchSize < 1)
    invalidOptions(component, `batchSize must be an integer >= 1 (got ${batchSize})`);
  checkDurationMs(component, 'idleMs', idleMs, { min: 0, integer: false });
  const logger = engine.options.logger.child({ component });

  const abort = new AbortController();
  async function runOnce(): Promise<ResumeOutcome[]> {
    const outcomes: ResumeOutcome[] = [];
    for (const { scope, key } of await engine.store.findAbandoned(batchSize, idleMs)) {
      if (abort.signal.aborted) break;
      const outcome = await engine.resume(scope, key);
      options.onResume?.({ scope, key, outcome });
      outcomes.push(outcome);
    }
    return outcomes;
  }

  let started = false;
  return {
    runOnce,
    async start() {
      if (started) alreadyStarted(component);
      started = true;
      const loop = (async () => {
        while (!abort.signal.aborted) {
          await sleep(intervalMs, abort.signal);
          if (abort.signal.aborted) break;
          try {
            await runOnce();
          } catch (error) {
            reportError(
              { logger, onError: engine.options.onError },
              'warn',
              toOnceflowError(error, 'OF_UNAVAILABLE', 'idempotency completer scan failed, retrying', {
                retriable: true,
                details: { operation: 'complete' },
              }),
            );
          }
        }
      })();
      return createStoppable({}, async () => {
        abort.abort();
        await loop;
      });
    },
  };
}
