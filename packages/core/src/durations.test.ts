import { describe, expect, it } from 'vitest';
import { checkDurationMs, durationMsProblem, maxTimerDelayMs } from './durations';
import { isOnceflowError } from './errors';
import { defaultRetryPolicy, retryPolicyProblems } from './retry';

describe('duration options', () => {
  it('the timer limit is 2^31 - 1 ms, the longest delay Node keeps', () => {
    expect(maxTimerDelayMs).toBe(2 ** 31 - 1);
  });

  it('a duration above the timer limit is refused with the option name and the limit, not shortened to 1 ms', () => {
    const problem = durationMsProblem('pollIntervalMs', 2 ** 31);
    expect(problem).toMatch(/^pollIntervalMs must be at most 2147483647 ms/);
    expect(problem).toMatch(/got 2147483648/);
    expect(durationMsProblem('pollIntervalMs', maxTimerDelayMs)).toBeUndefined();
  });

  it('non-numbers, fractions, infinity and values below the minimum are refused; 0 only when it has a meaning', () => {
    expect(durationMsProblem('x', '100')).toMatch(/x must be an integer of milliseconds between 1 and/);
    expect(durationMsProblem('x', 1.5)).toBeDefined();
    expect(durationMsProblem('x', Number.POSITIVE_INFINITY)).toBeDefined();
    expect(durationMsProblem('x', Number.NaN)).toBeDefined();
    expect(durationMsProblem('x', 9, { min: 10 })).toMatch(/between 10 and/);
    expect(durationMsProblem('x', 0)).toBeDefined();
    expect(durationMsProblem('x', 0, { zeroMeans: 'disabled' })).toBeUndefined();
    expect(durationMsProblem('x', 1.5, { integer: false })).toBeUndefined();
    expect(durationMsProblem('x', 50, { max: 40 })).toMatch(/between 1 and 40 \(got 50\)/);
  });

  it('checkDurationMs throws OF_INVALID_OPTIONS prefixed with the component', () => {
    expect(checkDurationMs('relay', 'x', 5)).toBe(5);
    let thrown: unknown;
    try {
      checkDurationMs('relay', 'heartbeatIntervalMs', 3_000_000_000);
    } catch (error) {
      thrown = error;
    }
    expect(isOnceflowError(thrown, 'OF_INVALID_OPTIONS')).toBe(true);
    expect((thrown as Error).message).toMatch(/^relay: heartbeatIntervalMs must be at most 2147483647 ms/);
  });

  it('a retry policy whose delays exceed the timer limit is refused', () => {
    expect(retryPolicyProblems({ ...defaultRetryPolicy, maxDelayMs: 2 ** 31 })).toEqual([
      expect.stringMatching(/^maxDelayMs must be at most 2147483647 ms/),
    ]);
    expect(
      retryPolicyProblems({ ...defaultRetryPolicy, initialDelayMs: 2 ** 32, maxDelayMs: 2 ** 32 }),
    ).toHaveLength(2);
    expect(retryPolicyProblems(defaultRetryPolicy)).toEqual([]);
  });
});
