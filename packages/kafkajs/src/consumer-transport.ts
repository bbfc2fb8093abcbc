import {
  alreadyStarted,
  type BatchControl,
  type ConsumerTransport,
  checkDurationMs,
  invalidOptions,
  type MessageHeaders,
  type TransportMessage,
} from '@onceflow/core';
import type { Consumer, ConsumerConfig, IHeaders, Kafka, KafkaMessage } from 'kafkajs';

/** Options of {@link createKafkajsConsumerTransport}. */
export interface KafkajsConsumerTransportOptions {
  /** The kafkajs client. Required. */
  kafka: Kafka;
  /** Consumer group id. Required. */
  groupId: string;
  /** Topics to subscribe to. Required, at least one. */
  topics: readonly string[];
  /** Where a group without committed offsets starts: true for the earliest offset. Default: true. */
  fromBeginning?: boolean;
  /**
   * Partitions processed in parallel by this instance (kafkajs `partitionsConsumedConcurrently`);
   * each takes a pool connection while it runs. Default: 3.
   */
  partitionsConsumedConcurrently?: number;
  /**
   * Further kafkajs consumer settings (session timeout, fetch sizes...). `groupId` is set from the
   * option above. Default: kafkajs's defaults.
   */
  consumerConfig?: Omit<ConsumerConfig, 'groupId'>;
}

/** Defaults of {@link KafkajsConsumerTransportOptions}. */
export const defaultKafkajsConsumerTransportOptions = Object.freeze({
  fromBeginning: true,
  partitionsConsumedConcurrently: 3,
});

// Validation messages name the inbox consumer: that is what a user configures these options for.
const component = 'inbox consumer';

function checkOptions(options: KafkajsConsumerTransportOptions): void {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (options.kafka === undefined || typeof options.kafka?.consumer !== 'function')
    invalidOptions(component, 'kafka must be a kafkajs Kafka client (new Kafka({ brokers }))');
  if (
    !Array.isArray(options.topics) ||
    options.topics.length === 0 ||
    options.topics.some((topic) => typeof topic !== 'string' || topic.length === 0)
  )
    invalidOptions(component, 'topics must be a non-empty array of topic names');
  const concurrency = options.partitionsConsumedConcurrently;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
    invalidOptions(component, `partitionsConsumedConcurrently must be an integer >= 1 (got ${concurrency})`);
  // kafkajs feeds these to timers without checking them: above 2^31 - 1 ms Node fires them after 1 ms.
  const config = options.consumerConfig;
  for (const name of ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTimeInMs'] as const)
    if (config?.[name] !== undefined) checkDurationMs(component, `consumerConfig.${name}`, config[name]);
  for (const name of ['initialRetryTime', 'maxRetryTime'] as const)
    if (config?.retry?.[name] !== undefined)
      checkDurationMs(component, `consumerConfig.retry.${name}`, config.retry[name]);
  if (typeof options.groupId !== 'string' || options.groupId.length === 0)
    invalidOptions(component, 'groupId must be a non-empty string (default: the consumer name)');
}

function firstHeaderValues(headers: IHeaders | undefined): MessageHeaders {
  const result: MessageHeaders = {};
  if (headers === undefined) return result;
  // for…in rather than Object.entries: no array of pairs per message.
  for (const name in headers) {
    const value = headers[name];
    result[name] = Array.isArray(value) ? value[0] : value;
  }
  return result;
}

function toTransportMessage(message: KafkaMessage): TransportMessage {
  return {
    offset: message.offset,
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers: firstHeaderValues(message.headers),
  };
}

/**
 * The inbox's {@link ConsumerTransport} on a kafkajs consumer: `eachBatch` with auto-commit and
 * auto-resolve off. Ownership is tracked from the group's join events; offsets are committed only for
 * partitions this member owns in the current generation, and never while a rebalance is under way.
 * It implements every part of the interface, `seek` and `heartbeat` included. Options are checked
 * here: invalid ones throw OF_INVALID_OPTIONS.
 */
export function createKafkajsConsumerTransport(options: KafkajsConsumerTransportOptions): ConsumerTransport {
  checkOptions(options);
  const fromBeginning = options.fromBeginning ?? defaultKafkajsConsumerTransportOptions.fromBeginning;
  const concurrency =
    options.partitionsConsumedConcurrently ??
    defaultKafkajsConsumerTransportOptions.partitionsConsumedConcurrently;
  let consumer: Consumer | undefined;
  // topic → owned partitions; undefined while (re)joining, so nothing is committed then.
  let assignment: Map<string, Set<number>> | undefined;
  let stopping: Promise<void> | undefined;

  const owns = (topic: string, partition: number): boolean => assignment?.get(topic)?.has(partition) ?? false;

  return {
    async run(listener) {
      if (consumer) alreadyStarted('kafkajs consumer transport');
      const created = options.kafka.consumer({ ...options.consumerConfig, groupId: options.groupId });
      consumer = created;
      created.on(created.events.GROUP_JOIN, (event) => {
        assignment = new Map(
          Object.entries(event.payload.memberAssignment).map(([topic, partitions]) => [
            topic,
            new Set(partitions),
          ]),
        );
      });
      created.on(created.events.REBALANCING, () => {
        assignment = undefined;
      });
      created.on(created.events.STOP, () => {
        assignment = undefined;
      });
      await created.connect();
      await created.subscribe({ topics: [...options.topics], fromBeginning });
      await created.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: concurrency,
        eachBatch: async (payload) => {
          const { topic, partition } = payload.batch;
          const control: BatchControl = {
            isActive: () =>
              stopping === undefined && payload.isRunning() && !payload.isStale() && owns(topic, partition),
            async commit(nextOffset) {
              payload.resolveOffset((BigInt(nextOffset) - 1n).toString());
              if (!owns(topic, partition)) return;
              try {
                await payload.commitOffsetsIfNecessary({
                  topics: [{ topic, partitions: [{ partition, offset: nextOffset }] }],
                });
              } catch {
                // The database holds the position; a lost broker commit only costs a skipped redelivery.
              }
            },
            seek(nextOffset) {
              created.seek({ topic, partition, offset: nextOffset });
            },
            heartbeat: () => payload.heartbeat(),
          };
          await listener(
            { topic, partition, messages: payload.batch.messages.map(toTransportMessage) },
            control,
          );
        },
      });
    },
    stop() {
      stopping ??= (async () => {
        // disconnect() stops the runner first, which waits for the batch in flight to return.
        await consumer?.disconnect();
      })();
      return stopping;
    },
  };
}
