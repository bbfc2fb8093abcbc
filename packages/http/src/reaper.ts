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
import type { IdempotencyEngine } from './engine';

/** Options of {@link createIdempotencyReaper}. */
export interface IdempotencyReaperOptions {
  /** Pause between reaping rounds, in milliseconds. Default: 300 000 (5 minutes). */
  intervalMs?: number;
  /** Keys deleted per statement; small batches keep locks short. Default: 500. */
  batchSize?: number;
  /** Batches per round at most, so one round never runs long. Default: 20. */
  maxBatchesPerRound?: number;
}

/** Defaults of {@link IdempotencyReaperOptions}. */
export const defaultIdempotencyReaperOptions = Object.freeze({
  intervalMs: 300_000,
  batchSize: 500,
  maxBatchesPerRound: 20,
});

/** A configured reaper. */
export interface IdempotencyReaper {
  /** Runs one round now; resolves to the number of keys deleted. */
  runOnce(): Promise<number>;
  /** Reaps every `intervalMs` until the handle is stopped. Call once: a second call rejects with OF_ALREADY_STARTED. */
  start(): Promise<StartedHandle>;
}

const component = 'idempotency reaper';

/**
 * Deletes expired keys in small batches. Only completed keys are ever deleted: a key still in
 * progress (running, or waiting for a retry or the completer) is left alone whatever its age. A
 * started engine runs one unless told otherwise (`reaper: false`).
 */
export function createIdempotencyReaper(
  engine: IdempotencyEngine,
  options: IdempotencyReaperOptions = {},
): IdempotencyReaper {
  const { intervalMs, batchSize, maxBatchesPerRound } = { ...defaultIdempotencyReaperOptions, ...options };
  checkDurationMs(component, 'intervalMs', intervalMs, { integer: false });
  if (!Number.isInteger(batchSize) || batchSize < 1)
    invalidOptions(component, `batchSize must be an integer >= 1 (got ${batchSize})`);
  if (!Number.isInteger(maxBatchesPerRound) || maxBatchesPerRound < 1)
    invalidOptions(component, `maxBatchesPerRound must be an integer >= 1 (got ${maxBatchesPerRound})`);
  const logger = engine.options.logger.child({ component });

  const abort = new AbortController();
  async function runOnce(): Promise<number> {
    let total = 0;
    for (let batch = 0; batch < maxBatchesPerRound && !abort.signal.aborted; batch++) {
      const deleted = await engine.store.reapExpired(batchSize);
      total += deleted;
      if (deleted < batchSize) break;
    }
    return total;
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
              toOnceflowError(error, 'OF_UNAVAILABLE', 'idempotency reaper round failed, retrying', {
                retriable: true,
                details: { operation: 'reap' },
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
