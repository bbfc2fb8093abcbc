import { isOnceflowError } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { createIdempotencyCompleter } from './completer';
import { createIdempotencyEngine } from './engine';
import { MemoryKeyStore } from './memory-store.test-support';
import { createIdempotencyReaper } from './reaper';

function thrownBy(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    expect(isOnceflowError(error, 'OF_INVALID_OPTIONS')).toBe(true);
    return error as Error;
  }
  throw new Error('nothing was thrown');
}

describe('idempotency timer options', () => {
  const engine = createIdempotencyEngine({ store: new MemoryKeyStore(), onError: () => undefined });

  it('the completer and the reaper refuse an interval above 2^31 - 1 ms instead of looping every 1 ms', () => {
    expect(thrownBy(() => createIdempotencyCompleter(engine, { intervalMs: 2 ** 31 })).message).toMatch(
      /^idempotency completer: intervalMs must be at most 2147483647 ms/,
    );
    expect(thrownBy(() => createIdempotencyCompleter(engine, { idleMs: 2 ** 31 })).message).toMatch(
      /idleMs must be at most 2147483647 ms/,
    );
    expect(thrownBy(() => createIdempotencyReaper(engine, { intervalMs: 2 ** 31 })).message).toMatch(
      /^idempotency reaper: intervalMs must be at most 2147483647 ms/,
    );
  });

  it('the engine refuses a lease above 2^31 - 1 ms', () => {
    expect(
      thrownBy(() => createIdempotencyEngine({ store: new MemoryKeyStore(), leaseMs: 2 ** 31 })).message,
    ).toMatch(/^idempotency: leaseMs must be at most 2147483647 ms/);
  });

  it('the timer limit itself is accepted', async () => {
    const completer = await createIdempotencyCompleter(engine, { intervalMs: 2 ** 31 - 1 }).start();
    const reaper = await createIdempotencyReaper(engine, { intervalMs: 2 ** 31 - 1 }).start();
    await completer.stop();
    await reaper.stop();
  });
});
