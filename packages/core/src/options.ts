import { invalidOptions, type OnceflowError } from './errors';
import { type Logger, silentLogger } from './logger';
import { type RetryPolicy, retryPolicyProblems } from './retry';

/**
 * Receives every error a running component recovers from (a handler that will be retried, a database
 * or broker outage), always as an {@link OnceflowError} whose code says what failed and whose
 * `details` say where. Never awaited; what it throws is ignored. The logger gets the same errors.
 */
export type ErrorHook = (error: OnceflowError) => void;

/**
 * The options every onceflow component shares (inbox consumer, outbox relay, idempotency engine), as
 * graphile-worker's shared options carry the logger beside the schema.
 */
export interface BaseOptions {
  /** Schema holding onceflow's tables. Default: `onceflow` (`defaultSchemaName`). */
  schema?: string;
  /**
   * Where the component logs what it does and every error it recovers from; pino's shape (Fastify's
   * `app.log` fits). Default: {@link silentLogger}, which drops everything.
   */
  logger?: Logger;
  /**
   * How failed attempts are retried; fields left out keep the component's defaults. What counts as
   * an attempt is the component's: its options say. Default: per component.
   */
  retry?: Partial<RetryPolicy>;
  /** Called with every error the component recovers from; see {@link ErrorHook}. Default: none. */
  onError?: ErrorHook;
}

/** `defaults` overridden by the fields of `retry` that are set; throws OF_INVALID_OPTIONS when the result cannot work. */
export function resolveRetryPolicy(
  component: string,
  retry: Partial<RetryPolicy> | undefined,
  defaults: Readonly<RetryPolicy>,
): RetryPolicy {
  if (retry !== undefined && (retry === null || typeof retry !== 'object'))
    invalidOptions(
      component,
      'retry must be an object with some of maxAttempts, initialDelayMs, maxDelayMs, multiplier, jitter',
    );
  const policy: RetryPolicy = { ...defaults };
  for (const [name, value] of Object.entries(retry ?? {}))
    if (value !== undefined) (policy as unknown as Record<string, unknown>)[name] = value;
  const problems = retryPolicyProblems(policy);
  if (problems.length > 0) invalidOptions(component, `retry: ${problems.join('; ')}`);
  return policy;
}

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * The component's logger: `logger` (checked to have pino's methods) or {@link silentLogger}, as a
 * child with `bindings`. Throws OF_INVALID_OPTIONS for something that is not a logger.
 */
export function resolveLogger(
  component: string,
  logger: Logger | undefined,
  bindings: Record<string, unknown>,
): Logger {
  if (logger === undefined) return silentLogger;
  const missing = [...levels, 'child'].filter(
    (name) => typeof (logger as unknown as Record<string, unknown> | null)?.[name] !== 'function',
  );
  if (missing.length > 0)
    invalidOptions(
      component,
      `logger must have pino's methods (fatal, error, warn, info, debug, trace, child); missing: ${missing.join(', ')}`,
    );
  return logger.child(bindings);
}

/**
 * Reports an error the component recovers from: to the logger at `level` (the error under `err`,
 * its details merged in) and to `onError`, whose failures are swallowed so that reporting never
 * breaks the component.
 */
export function reportError(
  target: { logger: Logger; onError: ErrorHook | undefined },
  level: 'warn' | 'error',
  error: OnceflowError,
): void {
  try {
    target.logger[level]({ ...error.details, err: error, code: error.code }, error.message);
  } catch {
    // A failing logger must not stop the component.
  }
  if (target.onError === undefined) return;
  try {
    target.onError(error);
  } catch {
    // Neither may a failing hook.
  }
}
