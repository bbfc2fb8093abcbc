/**
 * The closed list of error codes onceflow raises. Callers branch on `code`, never on messages. Every
 * code is raised somewhere and documented in docs/errors.md; a test keeps the three in step.
 */
export const errorCodes = [
  /** Options given to a factory are invalid; the message says what to change. */
  'OF_INVALID_OPTIONS',
  /** A configurable SQL identifier (schema name, prefix) is not a plain identifier. */
  'OF_INVALID_IDENTIFIER',
  /** A value handed to a running component cannot be used (a NUL character in stored text, a bad limit). */
  'OF_INVALID_ARGUMENT',
  /** An outbox event can never be published as given (no topic, a topic name Kafka refuses). */
  'OF_INVALID_EVENT',
  /** A message carries no usable id and the policy says to dead-letter it. */
  'OF_INVALID_MESSAGE_ID',
  /** A handler did not finish within its time limit. */
  'OF_HANDLER_TIMEOUT',
  /** A handler threw or returned something unusable; `cause` holds what it threw. */
  'OF_HANDLER_FAILED',
  /** A message is older than the inbox retention window and cannot be deduplicated safely. */
  'OF_MESSAGE_TOO_OLD',
  /** A lease (relay lane, idempotency key) is held by someone else or was lost. */
  'OF_LEASE_LOST',
  /** `start()` was called on something already started; create a new one instead. */
  'OF_ALREADY_STARTED',
  /** The component was stopped; no more work is accepted. */
  'OF_STOPPED',
  /** A required service (Kafka, Postgres) could not be reached. */
  'OF_UNAVAILABLE',
  /** A publish to the broker failed. */
  'OF_PUBLISH_FAILED',
  /** An event cannot be published and was parked. */
  'OF_EVENT_PARKED',
  /** The database schema is missing, older or newer than this version of onceflow expects. */
  'OF_SCHEMA_MISMATCH',
  /** An idempotency key or request was refused; `details.status` holds the HTTP status. */
  'OF_IDEMPOTENCY_REJECTED',
  /**
   * A consumer's stored position in a partition is beyond the partition's log end (topic deleted and
   * recreated, database restored, log truncated): the partition is paused, or reset when the
   * `onPositionAhead` policy says so. `details` names consumer, topic, partition, stored position and
   * log end; `onceflow inbox reset-positions` resets it.
   */
  'OF_POSITION_AHEAD',
  /**
   * A topic onceflow needs does not exist or may not be written: a dead-letter topic at consumer
   * start, or an outbox event's topic (the event is retried for a while, then parked). `details.topics`
   * names them.
   */
  'OF_TOPIC_MISSING',
  /**
   * What an operator asked for does not exist: a dead letter, an idempotency key, a parked event
   * (`onceflow dlq show`, `onceflow keys show`). `details` names what was looked for.
   */
  'OF_NOT_FOUND',
] as const;

/** One of {@link errorCodes}. */
export type ErrorCode = (typeof errorCodes)[number];

/** Options for {@link OnceflowError}. */
export interface OnceflowErrorOptions {
  /** Whether the operation may succeed when retried unchanged. Default: false. */
  retriable?: boolean;
  /** The underlying error. */
  cause?: unknown;
  /** Structured details for logs and callers. Default: none. */
  details?: Record<string, unknown>;
}

/**
 * The brand every onceflow error carries. A registered symbol is the same in every copy of this
 * package, so errors are recognised even when the built packages are installed twice and
 * `instanceof` against one copy's class fails for the other's errors.
 */
const onceflowErrorBrand: unique symbol = Symbol.for('onceflow.error');

/** The one error class onceflow throws. Recognise it with {@link isOnceflowError}. */
export class OnceflowError extends Error {
  override readonly name = 'OnceflowError';
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;
  readonly [onceflowErrorBrand] = true;

  constructor(code: ErrorCode, message: string, options: OnceflowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.details = options.details ?? {};
  }

  /**
   * `instanceof OnceflowError` answers by the brand, so it holds across copies of the package; for a
   * subclass it answers as usual.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` asks about, maybe a subclass.
    if (this !== OnceflowError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return isOnceflowError(value);
  }
}

/**
 * True when `error` is an onceflow error, from this copy of the package or another, optionally with
 * the given code.
 */
export function isOnceflowError(error: unknown, code?: ErrorCode): error is OnceflowError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { [onceflowErrorBrand]?: unknown })[onceflowErrorBrand] === true &&
    (code === undefined || (error as { code?: unknown }).code === code)
  );
}

/**
 * `error` itself when it is already an onceflow error, else a new one with `code` whose `cause` is
 * `error`: so hooks and logs always receive an {@link OnceflowError} that says what failed.
 */
export function toOnceflowError(
  error: unknown,
  code: ErrorCode,
  message: string,
  options: Omit<OnceflowErrorOptions, 'cause'> = {},
): OnceflowError {
  if (isOnceflowError(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new OnceflowError(code, reason === '' ? message : `${message}: ${reason}`, {
    ...options,
    cause: error,
  });
}

/** Throws `OF_INVALID_OPTIONS` with a message that names the option and what to change. */
export function invalidOptions(component: string, message: string): never {
  throw new OnceflowError('OF_INVALID_OPTIONS', `${component}: ${message}`);
}
