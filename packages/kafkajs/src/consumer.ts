import { checkDurationMs, invalidOptions, type StartedHandle } from '@onceflow/core';
import { createInboxEngine, type InboxOptions, resolveInboxOptions } from '@onceflow/inbox';
import { createPgInboxStore, missingPoolErrorListener, type TransactionContext } from '@onceflow/postgres';
import type { ConsumerConfig, Kafka } from 'kafkajs';
import type { Pool } from 'pg';
import { createKafkajsConsumerTransport } from './consumer-transport';
import {
  ensureDeadLetterTopics,
  type MissingDeadLetterTopicPolicy,
  missingDeadLetterTopicPolicies,
} from './dead-letter-topics';

/** Options of {@link createInboxConsumer}: the inbox options plus the kafkajs and pg clients. */
export interface InboxConsumerOptions extends InboxOptions<TransactionContext> {
  /** The kafkajs client. Required. */
  kafka: Kafka;
  /** The pg pool for the inbox and the handler's transactions. Required. */
  pool: Pool;
  /** Topics to consume. Required, at least one. */
  topics: readonly string[];
  /** Consumer group id. Default: the `consumer` name. */
  groupId?: string;
  /** Where a group without committed offsets starts: true for the earliest offset. Default: true. */
  fromBeginning?: boolean;
  /** Partitions processed in parallel by this instance; each takes a pool connection. Default: 3. */
  partitionsConsumedConcurrently?: number;
  /**
   * Further kafkajs consumer settings (session timeout, fetch sizes...), merged over
   * `defaultKafkajsConsumerConfig` (6 s session, 1 s heartbeats and fetch waits, retries capped at 2 s:
   * see there why). Default: `defaultKafkajsConsumerConfig`.
   */
  consumerConfig?: Omit<ConsumerConfig, 'groupId'>;
  /**
   * When the dead-letter topic of a consumed topic does not exist at `start()`: `fail` rejects with
   * OF_TOPIC_MISSING naming the topics and the command that creates them; `create` creates them (as
   * many partitions as the source topic, the broker's default replication); `ignore` does not look
   * (for clients that may not list topics). Default: `fail`.
   */
  onMissingDeadLetterTopic?: MissingDeadLetterTopicPolicy;
}

/** A configured inbox consumer; {@link InboxConsumer.start} joins the group. */
export interface InboxConsumer {
  /**
   * Starts consuming; the handle's `stop()` finishes or rolls back work in flight and leaves the group.
   * While Postgres cannot be reached it waits with backoff, reporting each attempt through `onError`,
   * up to `startupTimeoutMs` (then OF_UNAVAILABLE naming the server). Call once.
   */
  start(): Promise<StartedHandle>;
  /**
   * Stops the consumer: interrupts a `start()` still waiting for Postgres (it then rejects with
   * OF_STOPPED), or does what the started handle's `stop()` does. Idempotent.
   */
  stop(): Promise<void>;
}

/**
 * An effectively-once kafkajs consumer: each message's handler runs in a Postgres transaction that
 * also records the message id and the partition position, so its effects commit once per consumer.
 * Invalid options throw OF_INVALID_OPTIONS here, before anything connects.
 */
export function createInboxConsumer(options: InboxConsumerOptions): InboxConsumer {
  const component = 'inbox consumer';
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (options.kafka === undefined || typeof options.kafka.consumer !== 'function')
    invalidOptions(component, 'kafka must be a kafkajs Kafka client (new Kafka({ brokers }))');
  if (options.pool === undefined || typeof options.pool.connect !== 'function')
    invalidOptions(component, 'pool must be a pg Pool');
  if (
    !Array.isArray(options.topics) ||
    options.topics.length === 0 ||
    options.topics.some((topic) => typeof topic !== 'string' || topic.length === 0)
  )
    invalidOptions(component, 'topics must be a non-empty array of topic names');
  const concurrency = options.partitionsConsumedConcurrently ?? 3;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    invalidOptions(component, `partitionsConsumedConcurrently must be an integer >= 1 (got ${concurrency})`);
  // kafkajs feeds these to timers without checking them: above 2^31 - 1 ms Node fires them after 1 ms.
  const config = options.consumerConfig;
  for (const name of ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTimeInMs'] as const)
    if (config?.[name] !== undefined) checkDurationMs(component, `consumerConfig.${name}`, config[name]);
  for (const name of ['initialRetryTime', 'maxRetryTime'] as const)
    if (config?.retry?.[name] !== undefined)
      checkDurationMs(component, `consumerConfig.retry.${name}`, config.retry[name]);
  const onMissingDeadLetterTopic = options.onMissingDeadLetterTopic ?? 'fail';
  if (!missingDeadLetterTopicPolicies.includes(onMissingDeadLetterTopic))
    invalidOptions(
      component,
      `onMissingDeadLetterTopic must be one of ${missingDeadLetterTopicPolicies.join(', ')} (got ${JSON.stringify(onMissingDeadLetterTopic)})`,
    );
  const groupId = options.groupId ?? options.consumer;
  if (typeof groupId !== 'string' || groupId.length === 0)
    invalidOptions(component, 'groupId must be a non-empty string (default: the consumer name)');
  const {
    kafka,
    pool,
    topics,
    fromBeginning,
    consumerConfig,
    groupId: _,
    partitionsConsumedConcurrently: __,
    onMissingDeadLetterTopic: ___,
    ...rest
  } = options;
  // Validates the inbox options (schema, limits, policies) before any connection exists.
  const validated = resolveInboxOptions(rest);
  const engine = createInboxEngine({
    ...rest,
    transport: createKafkajsConsumerTransport({
      kafka,
      groupId,
      topics,
      fromBeginning: fromBeginning ?? true,
      partitionsConsumedConcurrently: concurrency,
      ...(consumerConfig ? { consumerConfig } : {}),
      // A crashed Kafka consumer is restarted; the user hears of it like of any other outage.
      onError: (error) => validated.onError(error, { topic: '', partition: -1, offset: '-1', attempts: 0 }),
    }),
    store: createPgInboxStore(pool, { schema: validated.schema }),
  });
  return {
    async start() {
      const warning = missingPoolErrorListener(pool, `${component} ${validated.consumer}`);
      if (warning !== undefined)
        try {
          validated.onError(warning, { topic: '', partition: -1, offset: '-1', attempts: 0 });
        } catch {
          // A failing reporter must not stop the start.
        }
      await ensureDeadLetterTopics({
        kafka,
        consumer: validated.consumer,
        topics,
        deadLetterTopic: validated.deadLetterTopic,
        policy: onMissingDeadLetterTopic,
      });
      return engine.start();
    },
    stop: () => engine.stop(),
  };
}
