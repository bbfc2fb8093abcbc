import { checkDurationMs, createStoppable, invalidOptions, type StartedHandle, sleep } from '@onceflow/core';
import type { IdempotencyEngine } from './engine';

/** Options of {@link startIdempotencyReaper}. */
export interface ReaperOptions {
  /** Pause between reaping rounds, in milliseconds. Default: 300 000 (5 minutes). */
  intervalMs?: number;
  /** Keys deleted per statement; small batches keep locks short. Default: 500. */
  batchSize?: number;
  /** Batches per round at most, so one round never runs long. Default: 20. */
  maxBatchesPerRound?: number;
}

/** Defaults of {@link ReaperOptions}. */
export const defaultReaperOptions = Object.freeze({
  intervalMs: 300_000,
  batchSize: 500,
  maxBatchesPerRound: 20,
});

/** A running reaper. */
export interface IdempotencyReaper extends StartedHandle {
  /** Runs one round now; resolves to the number of keys deleted. */
  runOnce(): Promise<number>;
}

/**
 * Deletes expired keys in small batches. Only completed keys are ever deleted: a key still in
 * progress (running, or waiting for a retry or the completer) is left alone whatever its age.
 */
export function startIdempotencyReaper(
  engine: IdempotencyEngine,
  options: ReaperOptions = {},
): IdempotencyReaper {
  const { intervalMs, batchSize, maxBatchesPerRound } = { ...defaultReaperOptions, ...options };
  checkDurationMs('idempotency reaper', 'intervalMs', intervalMs, { integer: false });
  if (!Number.isInteger(batchSize) || batchSize < 1)
    invalidOptions('idempotency reaper', `batchSize must be an integer >= 1 (got ${batchSize})`);
  if (!Number.isInteger(maxBatchesPerRound) || maxBatchesPerRound < 1)
    invalidOptions(
      'idempotency reaper',
      `maxBatchesPerRound must be an integer >= 1 (got ${maxBatchesPerRound})`,
    );

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
  const loop = (async () => {
    while (!abort.signal.aborted) {
      await sleep(intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      try {
        await runOnce();
      } catch (error) {
        try {
          engine.options.onError(error, { route: 'reaper', scope: '', key: undefined });
        } catch {
          // A failing reporter must not end the loop or leave its promise rejected.
        }
      }
    }
  })();
  return createStoppable({ runOnce }, async () => {
    abort.abort();
    await loop;
  });
}
