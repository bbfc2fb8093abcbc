import type { TransactionalOutbox } from '@onceflow/core';
import {
  type InboxConsumer,
  type InboxConsumerOptions,
  createInboxConsumer as inboxConsumer,
} from '@onceflow/inbox';
import type { TransactionContext } from '@onceflow/postgres';
import { createKafkajsConsumerTransport, type KafkajsConsumerTransportOptions } from './consumer-transport';

/**
 * Options of {@link createInboxConsumer}: the inbox consumer's own options (of @onceflow/inbox), with
 * the kafkajs consumer's settings in place of a transport.
 */
export interface KafkajsInboxConsumerOptions<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>
  extends Omit<InboxConsumerOptions<Ctx>, 'transport'>,
    Omit<KafkajsConsumerTransportOptions, 'groupId'> {
  /** Consumer group id. Default: the `consumer` name. */
  groupId?: string;
}

/**
 * The inbox consumer of @onceflow/inbox on kafkajs: it builds the kafkajs transport and leaves the
 * rest to the engine. Each message's handler runs in a Postgres transaction that also records the
 * message id and the partition position, so its effects commit once per consumer. Invalid options
 * throw OF_INVALID_OPTIONS here, before anything connects.
 */
export function createInboxConsumer<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>(
  options: KafkajsInboxConsumerOptions<Ctx>,
): InboxConsumer {
  const { kafka, topics, groupId, fromBeginning, partitionsConsumedConcurrently, consumerConfig, ...inbox } =
    options ?? ({} as KafkajsInboxConsumerOptions<Ctx>);
  const transport = createKafkajsConsumerTransport({
    kafka,
    topics,
    groupId: groupId ?? inbox.consumer,
    ...(fromBeginning === undefined ? {} : { fromBeginning }),
    ...(partitionsConsumedConcurrently === undefined ? {} : { partitionsConsumedConcurrently }),
    ...(consumerConfig === undefined ? {} : { consumerConfig }),
  });
  return inboxConsumer<Ctx>({ ...inbox, transport });
}
