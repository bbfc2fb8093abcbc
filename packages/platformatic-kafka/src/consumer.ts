import type { TransactionalOutbox } from '@onceflow/core';
import {
  type InboxConsumer,
  type InboxConsumerOptions,
  createInboxConsumer as inboxConsumer,
} from '@onceflow/inbox';
import type { TransactionContext } from '@onceflow/postgres';
import {
  createPlatformaticConsumerTransport,
  type PlatformaticConsumerTransportOptions,
} from './consumer-transport';

/**
 * Options of {@link createInboxConsumer}: the inbox consumer's own options (of @onceflow/inbox), with
 * the @platformatic/kafka consumer's settings in place of a transport.
 */
export interface PlatformaticInboxConsumerOptions<
  Ctx extends { outbox: TransactionalOutbox } = TransactionContext,
> extends Omit<InboxConsumerOptions<Ctx>, 'transport'>,
    Omit<PlatformaticConsumerTransportOptions, 'groupId'> {
  /** Consumer group id. Default: the `consumer` name. */
  groupId?: string;
}

/**
 * The inbox consumer of @onceflow/inbox on @platformatic/kafka: it builds the transport and leaves
 * the rest to the engine. Each message's handler runs in a Postgres transaction that also records the
 * message id and the partition position, so its effects commit once per consumer. Invalid options
 * throw OF_INVALID_OPTIONS here, before anything connects.
 */
export function createInboxConsumer<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>(
  options: PlatformaticInboxConsumerOptions<Ctx>,
): InboxConsumer {
  const {
    kafka,
    topics,
    groupId,
    fromBeginning,
    partitionsConsumedConcurrently,
    groupInstanceId,
    consumerConfig,
    ...inbox
  } = options ?? ({} as PlatformaticInboxConsumerOptions<Ctx>);
  const transport = createPlatformaticConsumerTransport({
    kafka,
    topics,
    groupId: groupId ?? inbox.consumer,
    ...(fromBeginning === undefined ? {} : { fromBeginning }),
    ...(partitionsConsumedConcurrently === undefined ? {} : { partitionsConsumedConcurrently }),
    ...(groupInstanceId === undefined ? {} : { groupInstanceId }),
    ...(consumerConfig === undefined ? {} : { consumerConfig }),
  });
  return inboxConsumer<Ctx>({ ...inbox, transport });
}
