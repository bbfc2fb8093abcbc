import {
  checkDurationMs,
  defaultRetryPolicy,
  type InboundMessage,
  invalidOptions,
  isOnceflowError,
  type MessageIdExtractor,
  type MissingIdPolicy,
  messageIdHeader,
  missingIdPolicies,
  type RetryPolicy,
  retryPolicyProblems,
  type TransactionalOutbox,
} from '@onceflow/core';
import { validateIdentifier } from '@onceflow/postgres';

/**
 * Processes one message inside the transaction that also records it in the inbox. Resolving means
 * "commit", throwing means "roll back and retry".
 */
export type InboxHandler<Ctx> = (message: InboundMessage, context: Ctx) => Promise<void>;

/**
 * Processes several new messages at once inside the transaction that also records them in the
 * inbox, so that a handler can write all their effects in one statement (for example one multi-row
 * insert). It receives only messages to process: duplicates, messages below the stored position and
 * dead-lettered ones are left out; the rest come in offset order, all of one partition. Resolving
 * means "commit all of them", throwing means "roll back all of them"; the engine then isolates the
 * failing message by bisecting the run (see the README).
 */
export type InboxBatchHandler<Ctx> = (messages: readonly InboundMessage[], context: Ctx) => Promise<void>;

/** `batch`: one transaction per fetched batch and partition; `per-message`: one per message. */
export type InboxMode = 'batch' | 'per-message';

/** The modes {@link InboxMode} accepts. */
export const inboxModes: readonly InboxMode[] = ['batch', 'per-message'];

/**
 * What the consumer does when its stored position in a partition is beyond the partition's log end
 * (the topic was deleted and recreated, the database restored, the log truncated): `fail` pauses that
 * partition on this instance and reports OF_POSITION_AHEAD until an operator resets the position
 * (`onceflow inbox reset-positions`) and restarts the consumer; `reset-to-earliest` processes the
 * partition's log from its start (messages whose ids were processed before are still skipped as
 * duplicates); `reset-to-latest` skips what the log holds now and continues with new messages.
 */
export type PositionAheadPolicy = 'fail' | 'reset-to-earliest' | 'reset-to-latest';

/** The policies {@link PositionAheadPolicy} accepts. */
export const positionAheadPolicies: readonly PositionAheadPolicy[] = [
  'fail',
  'reset-to-earliest',
  'reset-to-latest',
];

/** Why a message went to the dead-letter topic (header `onceflow-dlq-reason`). */
export type DeadLetterReason = 'handler-failed' | 'invalid-id' | 'too-old';

/** Where something went wrong, for {@link InboxOptions.onError}. */
export interface InboxErrorInfo {
  topic: string;
  partition: number;
  /** First offset of the work that failed. */
  offset: string;
  /** Attempts of the message so far, when a handler failed; 0 for infrastructure errors. */
  attempts: number;
}

/** Observation points, mainly for fault tests. */
export interface InboxHooks {
  /**
   * Runs after a transaction committed and before its offset goes to the broker. A process that dies
   * here is the classic "crash between DB commit and offset commit".
   */
  beforeOffsetCommit?: (info: {
    topic: string;
    partition: number;
    nextOffset: string;
  }) => Promise<void> | void;
}

/** Options shared by every inbox consumer, whatever its Kafka client. */
export interface InboxOptions<Ctx extends { outbox: TransactionalOutbox }> {
  /** Consumer name: the dedup namespace (ids are unique per consumer). 1-200 characters. Required. */
  consumer: string;
  /** The message handler, called once per new message. Give exactly one of `handler` and `handleBatch`. */
  handler?: InboxHandler<Ctx>;
  /**
   * The batch handler, called with the new messages of a transaction (at most `maxBatchSize`; one in
   * `per-message` mode). Give exactly one of `handler` and `handleBatch`.
   */
  handleBatch?: InboxBatchHandler<Ctx>;
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** Transaction granularity. Default: `batch`. */
  mode?: InboxMode;
  /** In batch mode, most messages per transaction. Default: 500. */
  maxBatchSize?: number;
  /** Header that carries the message id. Default: `message-id` (CloudEvents `ce_id` is always recognised). */
  messageIdHeader?: string;
  /** Custom id extraction, tried before the headers. Default: none. */
  extractMessageId?: MessageIdExtractor;
  /**
   * For messages without an id: `dead-letter` them, or `derive-from-position` (`topic/partition/offset`,
   * which protects against redelivery only, not against a producer sending an event twice).
   * Default: `dead-letter`.
   */
  onMissingId?: MissingIdPolicy;
  /**
   * Retries of a failing handler; after `maxAttempts` the message is dead-lettered. Serialization
   * failures and deadlocks (40001, 40P01) and a lost database connection (server restart, terminated
   * backend, network) are retried without counting, as long as it takes. Default: core's defaultRetryPolicy.
   */
  retry?: Partial<RetryPolicy>;
  /**
   * Time limit of one `handler` or `handleBatch` call in milliseconds; on expiry its transaction is
   * killed. Default: 30000.
   */
  handlerTimeoutMs?: number;
  /** Dead-letter topic for a source topic. Default: `${topic}.dlq`. */
  deadLetterTopic?: string | ((topic: string) => string);
  /**
   * Duplicate-protection horizon in seconds: inbox rows are kept at least this long, and messages
   * with a timestamp older than this are dead-lettered as `too-old` instead of processed.
   * Default: 604800 (7 days).
   */
  retentionSeconds?: number;
  /** How often this consumer tries to rotate inbox generations, in milliseconds; 0 disables. Default: 60000. */
  pruneIntervalMs?: number;
  /**
   * How long `start()` waits for Postgres when it cannot be reached (not up yet, restarting), in
   * milliseconds: it retries with backoff and reports each attempt through `onError`, then rejects with
   * OF_UNAVAILABLE. 0 tries once. Default: no limit, it keeps trying until Postgres answers or `stop()`
   * is called.
   */
  startupTimeoutMs?: number;
  /**
   * When the stored position of a partition is beyond its log end: pause that partition and report
   * OF_POSITION_AHEAD (`fail`), or move the position to the log's start or end and report that
   * (`reset-to-earliest`, `reset-to-latest`). See {@link PositionAheadPolicy}. Default: `fail`.
   */
  onPositionAhead?: PositionAheadPolicy;
  /**
   * Reports errors that are retried (handler failures, database outages, a restarted Kafka consumer)
   * and those that need an operator (OF_POSITION_AHEAD). Default: logs to stderr.
   */
  onError?: (error: unknown, info: InboxErrorInfo) => void;
  /** Observation hooks. Default: none. */
  hooks?: InboxHooks;
}

/** The defaults of {@link InboxOptions}. */
export const defaultInboxOptions = Object.freeze({
  schema: 'onceflow',
  mode: 'batch' as InboxMode,
  maxBatchSize: 500,
  messageIdHeader,
  onMissingId: 'dead-letter' as MissingIdPolicy,
  onPositionAhead: 'fail' as PositionAheadPolicy,
  retry: defaultRetryPolicy,
  handlerTimeoutMs: 30_000,
  retentionSeconds: 7 * 24 * 3600,
  pruneIntervalMs: 60_000,
});

/** Options after validation and defaults. */
export interface ResolvedInboxOptions<Ctx extends { outbox: TransactionalOutbox }> {
  consumer: string;
  /** Exactly one of `handler` and `handleBatch` is set. */
  handler: InboxHandler<Ctx> | undefined;
  handleBatch: InboxBatchHandler<Ctx> | undefined;
  schema: string;
  mode: InboxMode;
  maxBatchSize: number;
  messageIdHeader: string;
  extractMessageId: MessageIdExtractor | undefined;
  onMissingId: MissingIdPolicy;
  onPositionAhead: PositionAheadPolicy;
  retry: RetryPolicy;
  handlerTimeoutMs: number;
  deadLetterTopic: (topic: string) => string;
  retentionSeconds: number;
  pruneIntervalMs: number;
  /** Undefined: no limit. */
  startupTimeoutMs: number | undefined;
  onError: (error: unknown, info: InboxErrorInfo) => void;
  hooks: InboxHooks;
}

const component = 'inbox consumer';

function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max)
    invalidOptions(component, `${name} must be an integer between 1 and ${max} (got ${String(value)})`);
  return value;
}

function defaultOnError(error: unknown, info: InboxErrorInfo): void {
  const text = error instanceof Error ? error.message : String(error);
  console.error(
    `onceflow inbox: ${info.topic}[${info.partition}]@${info.offset} attempt ${info.attempts}: ${text}`,
  );
}

/** Validates options and applies defaults; throws OF_INVALID_OPTIONS saying what to change. */
export function resolveInboxOptions<Ctx extends { outbox: TransactionalOutbox }>(
  options: InboxOptions<Ctx>,
): ResolvedInboxOptions<Ctx> {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  const d = defaultInboxOptions;
  if (typeof options.consumer !== 'string' || options.consumer.length === 0 || options.consumer.length > 200)
    invalidOptions(component, 'consumer must be a name of 1-200 characters (it namespaces the dedup ids)');
  if (options.handler !== undefined && typeof options.handler !== 'function')
    invalidOptions(component, 'handler must be an async function of (message, context)');
  if (options.handleBatch !== undefined && typeof options.handleBatch !== 'function')
    invalidOptions(component, 'handleBatch must be an async function of (messages, context)');
  if ((options.handler === undefined) === (options.handleBatch === undefined))
    invalidOptions(
      component,
      options.handler === undefined
        ? 'give a handler (one message at a time) or a handleBatch (the new messages of a batch at once)'
        : 'give either handler or handleBatch, not both',
    );
  const schema = options.schema ?? d.schema;
  try {
    validateIdentifier(schema, 'schema');
  } catch (error) {
    if (isOnceflowError(error)) invalidOptions(component, error.message);
    throw error;
  }
  const mode = options.mode ?? d.mode;
  if (!inboxModes.includes(mode))
    invalidOptions(component, `mode must be one of ${inboxModes.join(', ')} (got ${JSON.stringify(mode)})`);
  const onMissingId = options.onMissingId ?? d.onMissingId;
  if (!missingIdPolicies.includes(onMissingId))
    invalidOptions(
      component,
      `onMissingId must be one of ${missingIdPolicies.join(', ')} (got ${JSON.stringify(onMissingId)})`,
    );
  const onPositionAhead = options.onPositionAhead ?? d.onPositionAhead;
  if (!positionAheadPolicies.includes(onPositionAhead))
    invalidOptions(
      component,
      `onPositionAhead must be one of ${positionAheadPolicies.join(', ')} (got ${JSON.stringify(onPositionAhead)})`,
    );
  const header = options.messageIdHeader ?? d.messageIdHeader;
  if (typeof header !== 'string' || header.length === 0)
    invalidOptions(component, 'messageIdHeader must be a non-empty header name');
  if (options.extractMessageId !== undefined && typeof options.extractMessageId !== 'function')
    invalidOptions(component, 'extractMessageId must be a function returning the id or undefined');
  const retry: RetryPolicy = { ...d.retry, ...options.retry };
  const problems = retryPolicyProblems(retry);
  if (problems.length > 0) invalidOptions(component, `retry: ${problems.join('; ')}`);
  const dlq = options.deadLetterTopic;
  if (dlq !== undefined && typeof dlq !== 'function' && (typeof dlq !== 'string' || dlq.length === 0))
    invalidOptions(component, 'deadLetterTopic must be a topic name or a function of the source topic');
  const pruneIntervalMs = checkDurationMs(
    component,
    'pruneIntervalMs',
    options.pruneIntervalMs ?? d.pruneIntervalMs,
    {
      zeroMeans: 'no pruning',
    },
  );
  const startupTimeoutMs =
    options.startupTimeoutMs === undefined
      ? undefined
      : checkDurationMs(component, 'startupTimeoutMs', options.startupTimeoutMs, {
          zeroMeans: 'one attempt, no wait',
        });
  if (options.onError !== undefined && typeof options.onError !== 'function')
    invalidOptions(component, 'onError must be a function');
  return {
    consumer: options.consumer,
    handler: options.handler,
    handleBatch: options.handleBatch,
    schema,
    mode,
    maxBatchSize: positiveInteger('maxBatchSize', options.maxBatchSize ?? d.maxBatchSize, 100_000),
    messageIdHeader: header,
    extractMessageId: options.extractMessageId,
    onMissingId,
    onPositionAhead,
    retry,
    handlerTimeoutMs: checkDurationMs(
      component,
      'handlerTimeoutMs',
      options.handlerTimeoutMs ?? d.handlerTimeoutMs,
    ),
    deadLetterTopic:
      typeof dlq === 'function'
        ? dlq
        : typeof dlq === 'string'
          ? () => dlq
          : (topic: string) => `${topic}.dlq`,
    retentionSeconds: positiveInteger(
      'retentionSeconds',
      options.retentionSeconds ?? d.retentionSeconds,
      2 ** 31 - 1,
    ),
    pruneIntervalMs,
    startupTimeoutMs,
    onError: options.onError ?? defaultOnError,
    hooks: options.hooks ?? {},
  };
}
