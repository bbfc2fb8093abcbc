import { checkDurationMs, createStoppable, invalidOptions, type StartedHandle, sleep } from '@onceflow/core';
import type { IdempotencyEngine, ResumeOutcome } from './engine';

/** Options of {@link startIdempotencyCompleter}. */
export interface CompleterOptions {
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

/** Defaults of {@link CompleterOptions}; `idleMs` defaults to the engine's lease. */
export const defaultCompleterOptions = Object.freeze({ intervalMs: 30_000, batchSize: 20 });

/** A running completer. */
export interface IdempotencyCompleter extends StartedHandle {
  /** Runs one scan now; resolves to what happened to each request found. */
  runOnce(): Promise<ResumeOutcome[]>;
}

/**
 * Finishes multi-phase requests whose process died (Brandur Leach's "completer"): finds unfinished
 * keys whose lease ran out and drives them from their last recovery point to a stored response,
 * which the client's next retry then gets replayed. Only routes registered on the engine can be
 * finished; keys of other routes are left for a process that knows them.
 */
export function startIdempotencyCompleter(
  engine: IdempotencyEngine,
  options: CompleterOptions = {},
): IdempotencyCompleter {
  const intervalMs = options.intervalMs ?? defaultCompleterOptions.intervalMs;
  const batchSize = options.batchSize ?? defaultCompleterOptions.batchSize;
  const idleMs = options.idleMs ?? engine.options.leaseMs;
  checkDurationMs('idempotency completer', 'intervalMs', intervalMs, { integer: false });
  if (!Number.isInteger(batchSize) || batchSize < 1)
    invalidOptions('idempotency completer', `batchSize must be an integer >= 1 (got ${batchSize})`);
  checkDurationMs('idempotency completer', 'idleMs', idleMs, { min: 0, integer: false });

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
  const loop = (async () => {
    while (!abort.signal.aborted) {
      await sleep(intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      try {
        await runOnce();
      } catch (error) {
        try {
          engine.options.onError(error, { route: 'completer', scope: '', key: undefined });
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
