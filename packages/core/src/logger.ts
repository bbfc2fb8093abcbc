/**
 * One logging call in pino's shape: a merging object first (put an error under `err`), then the
 * message; or the message alone.
 */
export interface LogFn {
  (bindings: object, message?: string): void;
  (message: string): void;
}

/**
 * Where onceflow logs: the shape of pino's logger, which Fastify's `app.log` has too, so either can be
 * passed as it is. Levels, formatting and destinations are the logger's business; onceflow only says
 * what happened, with a `component` binding on each child it makes.
 */
export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
}

const ignore = (): void => undefined;

/** The logger that drops everything, like Fastify's abstract logger: onceflow's default. */
export const silentLogger: Logger = Object.freeze({
  fatal: ignore,
  error: ignore,
  warn: ignore,
  info: ignore,
  debug: ignore,
  trace: ignore,
  child: () => silentLogger,
});
