import { isOnceflowError } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { resolveInboxOptions } from './options';

const base = { consumer: 'payments', handler: async () => {} };

function problem(overrides: object): string {
  try {
    resolveInboxOptions({ ...base, ...overrides });
  } catch (error) {
    expect(isOnceflowError(error, 'OF_INVALID_OPTIONS')).toBe(true);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(overrides)}`);
}

describe('inbox timer options', () => {
  it('every option that feeds a timer refuses more than 2^31 - 1 ms, naming the option and the limit', () => {
    for (const name of ['handlerTimeoutMs', 'pruneIntervalMs', 'startupTimeoutMs'])
      expect(problem({ [name]: 2 ** 31 })).toMatch(
        new RegExp(`^inbox consumer: ${name} must be at most 2147483647 ms`),
      );
    expect(problem({ retry: { maxDelayMs: 2 ** 31 } })).toMatch(
      /retry: maxDelayMs must be at most 2147483647 ms/,
    );
    expect(problem({ retry: { initialDelayMs: 2 ** 40, maxDelayMs: 2 ** 40 } })).toMatch(
      /initialDelayMs must be at most 2147483647 ms/,
    );
  });

  it('accepts the limit itself, 0 where 0 has a meaning, and no startup limit by default', () => {
    const resolved = resolveInboxOptions({
      ...base,
      handlerTimeoutMs: 2 ** 31 - 1,
      pruneIntervalMs: 0,
      startupTimeoutMs: 0,
    });
    expect(resolved).toMatchObject({
      handlerTimeoutMs: 2 ** 31 - 1,
      pruneIntervalMs: 0,
      startupTimeoutMs: 0,
    });
    expect(resolveInboxOptions(base).startupTimeoutMs).toBeUndefined();
    expect(problem({ handlerTimeoutMs: 0 })).toMatch(/handlerTimeoutMs must be an integer of milliseconds/);
    expect(problem({ startupTimeoutMs: -1 })).toMatch(/startupTimeoutMs must be/);
  });
});
