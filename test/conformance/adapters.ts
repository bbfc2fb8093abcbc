// The adapter descriptors of the transport conformance suite: every scenario is written once against
// these factories and runs for each adapter. A new Kafka client is done when the suite passes for it.
// Child processes pick theirs from ONCEFLOW_TEST_ADAPTER (see adapterFromEnv).
import type { TransactionalOutbox } from '@onceflow/core';
import type { InboxConsumer, InboxConsumerOptions } from '@onceflow/inbox';
import * as kafkajsAdapter from '@onceflow/kafkajs';
import type { OutboxRelay, OutboxRelayOptions } from '@onceflow/outbox';
import * as platformaticAdapter from '@onceflow/platformatic-kafka';
import type { TransactionContext } from '@onceflow/postgres';
import { Kafka, logLevel } from 'kafkajs';

/** Consumer settings the scenarios vary, in adapter-neutral words. */
export interface ConsumerTuning {
  /** Milliseconds an idle fetch waits on the broker. */
  maxWaitMs?: number;
  /** Group session in milliseconds. */
  sessionTimeoutMs?: number;
  /** Milliseconds between heartbeats. */
  heartbeatIntervalMs?: number;
  /** Partitions processed in parallel. */
  partitionsConsumedConcurrently?: number;
  /** Most bytes one fetch returns per partition. */
  maxBytesPerPartition?: number;
  /** Static membership name (adapters without it ignore it). */
  groupInstanceId?: string;
}

/** What the inbox scenarios pass: the engine's options, with the transport left to the adapter. */
export type ScenarioInboxOptions<Ctx extends { outbox: TransactionalOutbox } = TransactionContext> = Omit<
  InboxConsumerOptions<Ctx>,
  'transport'
> & { topics: readonly string[]; groupId?: string; tuning?: ConsumerTuning };

/** What the relay scenarios pass: the engine's options, with the transport left to the adapter. */
export type ScenarioRelayOptions = Omit<OutboxRelayOptions, 'transport'> & {
  /** Broker-side transaction timeout of the lane publishers, milliseconds. */
  transactionTimeoutMs?: number;
};

/** One Kafka client adapter under test. */
export interface AdapterDescriptor {
  readonly name: 'kafkajs' | 'platformatic';
  /** The inbox consumer of the adapter (consumer transport + engine). */
  createInboxConsumer<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>(
    options: ScenarioInboxOptions<Ctx>,
  ): InboxConsumer;
  /** The outbox relay of the adapter; it also publishes the inbox's dead letters. */
  createOutboxRelay(options: ScenarioRelayOptions): OutboxRelay;
}

function kafkajsClient(brokers: readonly string[]): Kafka {
  return new Kafka({ brokers: [...brokers], clientId: 'onceflow-conformance', logLevel: logLevel.NOTHING });
}

/** The kafkajs adapter on `brokers`. */
export function kafkajsDescriptor(brokers: readonly string[]): AdapterDescriptor {
  const kafka = kafkajsClient(brokers);
  return {
    name: 'kafkajs',
    createInboxConsumer(options) {
      const { tuning = {}, ...rest } = options;
      return kafkajsAdapter.createInboxConsumer({
        ...rest,
        kafka,
        ...(tuning.partitionsConsumedConcurrently === undefined
          ? {}
          : { partitionsConsumedConcurrently: tuning.partitionsConsumedConcurrently }),
        consumerConfig: {
          maxWaitTimeInMs: tuning.maxWaitMs ?? 100,
          ...(tuning.sessionTimeoutMs === undefined ? {} : { sessionTimeout: tuning.sessionTimeoutMs }),
          ...(tuning.heartbeatIntervalMs === undefined
            ? {}
            : { heartbeatInterval: tuning.heartbeatIntervalMs }),
        },
      });
    },
    createOutboxRelay(options) {
      const { transactionTimeoutMs, ...relay } = options;
      return kafkajsAdapter.createOutboxRelay({
        ...relay,
        kafka,
        ...(transactionTimeoutMs === undefined ? {} : { publisher: { transactionTimeoutMs } }),
      });
    },
  };
}

/** The @platformatic/kafka adapter on `brokers`. */
export function platformaticDescriptor(brokers: readonly string[]): AdapterDescriptor {
  const kafka = { bootstrapBrokers: [...brokers], clientId: 'onceflow-conformance' };
  return {
    name: 'platformatic',
    createInboxConsumer(options) {
      const { tuning = {}, ...rest } = options;
      return platformaticAdapter.createInboxConsumer({
        ...rest,
        kafka,
        ...(tuning.partitionsConsumedConcurrently === undefined
          ? {}
          : { partitionsConsumedConcurrently: tuning.partitionsConsumedConcurrently }),
        ...(tuning.groupInstanceId === undefined ? {} : { groupInstanceId: tuning.groupInstanceId }),
        consumerConfig: {
          maxWaitTime: tuning.maxWaitMs ?? 100,
          ...(tuning.sessionTimeoutMs === undefined ? {} : { sessionTimeout: tuning.sessionTimeoutMs }),
          ...(tuning.heartbeatIntervalMs === undefined
            ? {}
            : { heartbeatInterval: tuning.heartbeatIntervalMs }),
        },
      });
    },
    createOutboxRelay(options) {
      const { transactionTimeoutMs, ...relay } = options;
      return platformaticAdapter.createOutboxRelay({
        ...relay,
        kafka,
        ...(transactionTimeoutMs === undefined ? {} : { publisher: { transactionTimeoutMs } }),
      });
    },
  };
}

/** Names of the adapters under test, in the order the suite runs them. */
export const adapterNames = ['kafkajs', 'platformatic'] as const;
export type AdapterName = (typeof adapterNames)[number];

/** The descriptor named `name` on `brokers`. */
export function descriptor(name: AdapterName, brokers: readonly string[]): AdapterDescriptor {
  return name === 'kafkajs' ? kafkajsDescriptor(brokers) : platformaticDescriptor(brokers);
}

/** In a child process: the adapter named by ONCEFLOW_TEST_ADAPTER (kafkajs by default), on KAFKA_BROKERS. */
export function adapterFromEnv(): AdapterDescriptor {
  const name = (process.env.ONCEFLOW_TEST_ADAPTER ?? 'kafkajs') as AdapterName;
  if (!adapterNames.includes(name))
    throw new Error(`ONCEFLOW_TEST_ADAPTER must be one of ${adapterNames.join(', ')}`);
  const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter((b) => b.length > 0);
  if (brokers.length === 0) throw new Error('KAFKA_BROKERS is required');
  return descriptor(name, brokers);
}

/** Environment naming `adapter` for a child process. */
export function adapterEnv(adapter: AdapterDescriptor): Record<string, string> {
  return { ONCEFLOW_TEST_ADAPTER: adapter.name };
}
