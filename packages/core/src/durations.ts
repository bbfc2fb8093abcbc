import { invalidOptions } from './errors';

/**
 * Longest delay Node's timers accept, in milliseconds: 2^31 − 1, about 24.8 days. A longer delay is
 * not an error for Node: it fires after 1 ms instead, which turns an interval into a hot loop. Every
 * option that ends up in a timer is checked against it.
 */
export const maxTimerDelayMs = 2_147_483_647;

/** Bounds of a duration option; see {@link durationMsProblem}. */
export interface DurationLimits {
  /** Smallest accepted value. Default: 1. */
  min?: number;
  /** Largest accepted value. Default: {@link maxTimerDelayMs}. */
  max?: number;
  /** Whether only whole milliseconds are accepted. Default: true. */
  integer?: boolean;
  /** Explains a special value below `min` that is also accepted (such as "0 disables it"). Default: none. */
  zeroMeans?: string;
}

/**
 * The problem with a duration option in milliseconds, or undefined when it is valid: not a finite
 * number, below `min`, or above `max` (by default the timer limit, {@link maxTimerDelayMs}). The
 * message names the option and the accepted range.
 */
export function durationMsProblem(
  name: string,
  value: unknown,
  limits: DurationLimits = {},
): string | undefined {
  const { min = 1, max = maxTimerDelayMs, integer = true, zeroMeans } = limits;
  if (zeroMeans !== undefined && value === 0) return undefined;
  const range = `${integer ? 'an integer' : 'a number'} of milliseconds between ${min} and ${max}${
    zeroMeans === undefined ? '' : `, or 0 (${zeroMeans})`
  }`;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value)))
    return `${name} must be ${range} (got ${String(value)})`;
  if (value < min) return `${name} must be ${range} (got ${value})`;
  if (value > max)
    return max === maxTimerDelayMs
      ? `${name} must be at most ${max} ms, about 24.8 days, the longest delay Node timers accept (got ${value}); Node would shorten a longer delay to 1 ms`
      : `${name} must be ${range} (got ${value})`;
  return undefined;
}

/**
 * Checks a duration option with {@link durationMsProblem} and returns it; throws OF_INVALID_OPTIONS,
 * prefixed with `component`, when it is invalid.
 */
export function checkDurationMs(
  component: string,
  name: string,
  value: unknown,
  limits: DurationLimits = {},
): number {
  const problem = durationMsProblem(name, value, limits);
  if (problem !== undefined) invalidOptions(component, problem);
  return value as number;
}
