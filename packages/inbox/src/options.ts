import {
  type BaseOptions,
  type ConsumerTransport,
  checkDurationMs,
  defaultRetryPolicy,
  type ErrorHook,
  type InboundMessage,
  invalidOptions,
  isOnceflowError,
  type Logger,
  type MessageIdExtractor,
  type MissingIdPolicy,
  messageIdHeader,
  missingIdPolicies,
  type RetryPolicy,
  resolveLogger,
  resolveRetryPolicy,
  type TransactionalOutbox,
} from '@onceflow/core';
import {
  defaultSchemaName,
  type InboxStore,
  type TransactionContext,
  validateIdentifier,
} from '@onceflow/postgres';
import type { Pool } from 'pg';

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
const inboxModes: readonly InboxMode[] = ['batch', 'per-message'];

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
const positionAheadPolicies: readonly PositionAheadPolicy[] = [
  'fail',
  'reset-to-earliest',
  'reset-to-latest',
];

/**
 * What an inbox consumer does at start when a dead-letter topic is missing: `fail` (start rejects with
 * OF_TOPIC_MISSING naming the topics and how to create them), `create` (create them, with as many
 * partitions as their source topic and the broker's default replication), or `ignore` (do not look,
 * for clients that may not list topics). Needs a transport that can check topics (`ensureTopics`);
 * without one there is nothing to look with.
 */
export type MissingDeadLetterTopicPolicy = 'fail' | 'create' | 'ignore';

/** The policies {@link MissingDeadLetterTopicPolicy} accepts. */
const missingDeadLetterTopicPolicies: readonly MissingDeadLetterTopicPolicy[] = ['fail', 'create', 'ignore'];

/** Why a message went to the dead-letter topic (header `onceflow-dlq-reason`). */
export type DeadLetterReason = 'handler-failed' | 'invalid-id' | 'too-old';

/** Seams for tests; awaited by the engine at an exact point. Not for production use. */
export interface InboxTestHooks {
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

/**
 * Options of `createInboxConsumer`: where the inbox is (a pg `pool`, or any `store`), the Kafka side
 * (`transport`), the handler and how it runs. `retry` is the handler's: after `maxAttempts` failed
 * attempts the message is dead-lettered; serialization failures and deadlocks (40001, 40P01) and a
 * lost database connection (server restart, terminated backend, network) are retried with the same
 * backoff without counting, as long as it takes. `onError` and the logger receive every failure
 * (handler failures, database outages, a restarted Kafka consumer, dead letters) and those that need
 * an operator (OF_POSITION_AHEAD), with `consumer`, `topic`, `partition`, `offset` and (for handler
 * failures) `attempts` in its details.
 */
export interface InboxConsumerOptions<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>
  extends BaseOptions {
  /** The Kafka side, for example `createKafkajsConsumerTransport` from @onceflow/kafkajs. Required. */
  transport: ConsumerTransport;
  /**
   * Pool for the inbox in `schema` and the handler's transactions (the context is then a
   * `TransactionContext`). Give exactly one of `pool` and `store`.
   */
  pool?: Pool;
  /** The inbox store, instead of `pool` (its schema is the store's; `schema` must not be given then). */
  store?: InboxStore<Ctx>;
  /** Consumer name: the dedup namespace (ids are unique per consumer). 1-200 characters. Required. */
  consumer: string;
  /** The message handler, called once per new message. Give exactly one of `handler` and `handleBatch`. */
  handler?: InboxHandler<Ctx>;
  /**
   * The batch handler, called with the new messages of a transaction (at most `batchSize`; one in
   * `per-message` mode). Give exactly one of `handler` and `handleBatch`.
   */
  handleBatch?: InboxBatchHandler<Ctx>;
  /** Transaction granularity. Default: `batch`. */
  mode?: InboxMode;
  /** In batch mode, most messages per transaction. Default: 500. */
  batchSize?: number;
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
   * Time limit of one `handler` or `handleBatch` call in milliseconds; on expiry its transaction is
   * killed. Default: 30000.
   */
  handlerTimeoutMs?: number;
  /** Dead-letter topic for a source topic. Default: `${topic}.dlq`. */
  deadLetterTopic?: string | ((topic: string) => string);
  /**
   * When the dead-letter topic of a consumed topic does not exist at `start()`: `fail` rejects with
   * OF_TOPIC_MISSING naming the topics and the command that creates them; `create` creates them (as
   * many partitions as the source topic, the broker's default replication); `ignore` does not look
   * (for clients that may not list topics). Default: `fail`.
   */
  onMissingDeadLetterTopic?: MissingDeadLetterTopicPolicy;
  /**
   * Duplicate-protection horizon in milliseconds (kept in whole seconds): inbox rows are kept at
   * least this long, and messages with a timestamp older than this are dead-lettered as `too-old`
   * instead of processed. Default: 604800000 (7 days).
   */
  retentionMs?: number;
  /** How often this consumer tries to rotate inbox generations, in milliseconds; 0 disables. Default: 60000. */
  pruneIntervalMs?: number;
  /**
   * When the stored position of a partition is beyond its log end: pause that partition and report
   * OF_POSITION_AHEAD (`fail`), or move the position to the log's start or end and report that
   * (`reset-to-earliest`, `reset-to-latest`). See {@link PositionAheadPolicy}. Default: `fail`.
   */
  onPositionAhead?: PositionAheadPolicy;
  /**
   * How long `start()` waits for Postgres when it cannot be reached (not up yet, restarting), in
   * milliseconds: it retries with backoff and reports each attempt through the logger and `onError`,
   * then rejects with OF_UNAVAILABLE. 0 tries once. Default: no limit, it keeps trying until Postgres
   * answers or `stop()` is called.
   */
  startupTimeoutMs?: number;
  /** Seams for tests. Default: none. */
  testHooks?: InboxTestHooks;
}

/** The settings of {@link InboxConsumerOptions}, without the transport and the store. */
export type InboxSettings<Ctx extends { outbox: TransactionalOutbox }> = Omit<
  InboxConsumerOptions<Ctx>,
  'transport' | 'pool' | 'store'
>;

/** The defaults of {@link InboxConsumerOptions}. */
export const defaultInboxConsumerOptions = Object.freeze({
  schema: defaultSchemaName,
  mode: 'batch' as InboxMode,
  batchSize: 500,
  messageIdHeader,
  onMissingId: 'dead-letter' as MissingIdPolicy,
  onPositionAhead: 'fail' as PositionAheadPolicy,
  onMissingDeadLetterTopic: 'fail' as MissingDeadLetterTopicPolicy,
  retry: defaultRetryPolicy,
  handlerTimeoutMs: 30_000,
  retentionMs: 7 * 24 * 3_600_000,
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
  batchSize: number;
  messageIdHeader: string;
  extractMessageId: MessageIdExtractor | undefined;
  onMissingId: MissingIdPolicy;
  onPositionAhead: PositionAheadPolicy;
  onMissingDeadLetterTopic: MissingDeadLetterTopicPolicy;
  retry: RetryPolicy;
  handlerTimeoutMs: number;
  deadLetterTopic: (topic: string) => string;
  retentionMs: number;
  pruneIntervalMs: number;
  /** Undefined: no limit. */
  startupTimeoutMs: number | undefined;
  /** Bound to `component: 'inbox consumer'` and the consumer name; silent by default. */
  logger: Logger;
  onError: ErrorHook | undefined;
  testHooks: InboxTestHooks;
}

const component = 'inbox consumer';

function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max)
    invalidOptions(component, `${name} must be an integer between 1 and ${max} (got ${String(value)})`);
  return value;
}

/** Validates options and applies defaults; throws OF_INVALID_OPTIONS saying what to change. */
export function resolveInboxOptions<Ctx extends { outbox: TransactionalOutbox }>(
  options: InboxSettings<Ctx>,
): ResolvedInboxOptions<Ctx> {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  const d = defaultInboxConsumerOptions;
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
  const onMissingDeadLetterTopic = options.onMissingDeadLetterTopic ?? d.onMissingDeadLetterTopic;
  if (!missingDeadLetterTopicPolicies.includes(onMissingDeadLetterTopic))
    invalidOptions(
      component,
      `onMissingDeadLetterTopic must be one of ${missingDeadLetterTopicPolicies.join(', ')} (got ${JSON.stringify(onMissingDeadLetterTopic)})`,
    );
  const header = options.messageIdHeader ?? d.messageIdHeader;
  if (typeof header !== 'string' || header.length === 0)
    invalidOptions(component, 'messageIdHeader must be a non-empty header name');
  if (options.extractMessageId !== undefined && typeof options.extractMessageId !== 'function')
    invalidOptions(component, 'extractMessageId must be a function returning the id or undefined');
  const retry = resolveRetryPolicy(component, options.retry, d.retry);
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
  const retentionMs = options.retentionMs ?? d.retentionMs;
  // Kept in an integer column of seconds; at least a second, so that a message is ever recognised.
  if (
    typeof retentionMs !== 'number' ||
    !Number.isInteger(retentionMs) ||
    retentionMs < 1_000 ||
    retentionMs > (2 ** 31 - 1) * 1_000
  )
    invalidOptions(
      component,
      `retentionMs must be an integer of milliseconds between 1000 and ${(2 ** 31 - 1) * 1_000} (got ${String(retentionMs)})`,
    );
  return {
    consumer: options.consumer,
    handler: options.handler,
    handleBatch: options.handleBatch,
    schema,
    mode,
    batchSize: positiveInteger('batchSize', options.batchSize ?? d.batchSize, 100_000),
    messageIdHeader: header,
    extractMessageId: options.extractMessageId,
    onMissingId,
    onPositionAhead,
    onMissingDeadLetterTopic,
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
    retentionMs,
    pruneIntervalMs,
    startupTimeoutMs,
    logger: resolveLogger(component, options.logger, { component, consumer: options.consumer }),
    onError: options.onError,
    testHooks: options.testHooks ?? {},
  };
}
