import { OnceflowError } from './errors';

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

/** Throws `OF_ALREADY_STARTED` for a second `start()` of `component`: `create*()` configures, `start()` starts once. */
export function alreadyStarted(component: string): never {
  throw new OnceflowError(
    'OF_ALREADY_STARTED',
    `${component}: start() was already called; create a new one to start again`,
  );
}
