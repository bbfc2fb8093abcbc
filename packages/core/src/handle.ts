/** Anything onceflow starts returns one of these. `stop()` is idempotent. */
export interface StartedHandle {
  /** Stops gracefully; resolves when everything in flight has finished or rolled back. Safe to call twice. */
  stop(): Promise<void>;
  /** Same as `stop()`, so a handle can be held with `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Turns a stop function into a {@link StartedHandle} whose `stop()` runs the function once and
 * returns the same promise to every later caller.
 */
export function createStoppable<T extends object>(
  target: T,
  stopOnce: () => Promise<void>,
): T & StartedHandle {
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= stopOnce();
    return stopping;
  };
  return Object.assign(target, { stop, [Symbol.asyncDispose]: stop });
}
