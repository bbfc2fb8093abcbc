import { describe, expect, it } from 'vitest';
import { isOnceflowError, type OnceflowError } from './errors';
import { waitForService } from './wait-for-service';

const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
const quick = { maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 2, multiplier: 2, jitter: 0 };

function options(overrides: Partial<Parameters<typeof waitForService>[1]> = {}) {
  const waits: OnceflowError[] = [];
  return {
    waits,
    options: {
      component: 'test consumer',
      service: 'Postgres at db:5432 (database app)',
      hint: 'Check that the server runs.',
      timeoutMs: undefined,
      retry: quick,
      signal: new AbortController().signal,
      onWait: (error: OnceflowError) => waits.push(error),
      ...overrides,
    },
  };
}

describe('waiting for a service at start', () => {
  it('retries while the service refuses connections, reports each wait, and returns the first success', async () => {
    let calls = 0;
    const { waits, options: o } = options();
    const result = await waitForService(async () => {
      calls++;
      if (calls < 4) throw refused();
      return 'up';
    }, o);
    expect(result).toBe('up');
    expect(waits).toHaveLength(3);
    expect(waits.every((w) => w.code === 'OF_UNAVAILABLE')).toBe(true);
    expect(waits[0]!.message).toMatch(
      /^test consumer is waiting for Postgres at db:5432 \(database app\): attempt 1 failed \(connect ECONNREFUSED.*Check that the server runs\.$/,
    );
  });

  it('gives up with OF_UNAVAILABLE naming the service and the hint once the time limit passed', async () => {
    const { options: o } = options({ timeoutMs: 30 });
    const error = await waitForService(async () => Promise.reject(refused()), o).catch((e: unknown) => e);
    expect(isOnceflowError(error, 'OF_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toMatch(
      /gave up after .* Postgres at db:5432 \(database app\) is unreachable .*Check that the server runs\./,
    );
  });

  it('a limit of 0 tries once and fails at once', async () => {
    let calls = 0;
    const { waits, options: o } = options({ timeoutMs: 0 });
    const error = await waitForService(async () => {
      calls++;
      throw refused();
    }, o).catch((e: unknown) => e);
    expect(isOnceflowError(error, 'OF_UNAVAILABLE')).toBe(true);
    expect(calls).toBe(1);
    expect(waits).toHaveLength(0);
  });

  it('an error that is not about reaching the service is thrown at once', async () => {
    const { waits, options: o } = options();
    const wrongPassword = Object.assign(new Error('password authentication failed'), { code: '28P01' });
    await expect(waitForService(async () => Promise.reject(wrongPassword), o)).rejects.toBe(wrongPassword);
    expect(waits).toHaveLength(0);
  });

  it('aborting ends the wait with OF_STOPPED, also while an attempt hangs', async () => {
    const abort = new AbortController();
    const { options: o } = options({
      signal: abort.signal,
      retry: { ...quick, initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    const sleeping = waitForService(async () => Promise.reject(refused()), o).catch((e: unknown) => e);
    const hanging = waitForService(() => new Promise<never>(() => undefined), o).catch((e: unknown) => e);
    abort.abort();
    expect(isOnceflowError(await sleeping, 'OF_STOPPED')).toBe(true);
    expect(isOnceflowError(await hanging, 'OF_STOPPED')).toBe(true);
  });

  it('an attempt that never answers ends with OF_UNAVAILABLE at the time limit', async () => {
    const { options: o } = options({ timeoutMs: 20 });
    const error = await waitForService(() => new Promise<never>(() => undefined), o).catch((e: unknown) => e);
    expect(isOnceflowError(error, 'OF_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toMatch(/unreachable \(no answer\)/);
  });
});
