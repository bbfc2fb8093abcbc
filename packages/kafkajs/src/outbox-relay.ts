import {
  type OutboxRelay,
  type OutboxRelayOptions,
  createOutboxRelay as outboxRelay,
} from '@onceflow/outbox';
import type { Kafka } from 'kafkajs';
import { createKafkajsPublisherTransport, type KafkajsPublisherTransportOptions } from './publisher';

/**
 * Options of {@link createOutboxRelay}: the relay's own options (of @onceflow/outbox), with a kafkajs
 * client in place of a transport. The publisher's settings go under `publisher`, since the relay has
 * a `retry` of its own.
 */
export interface KafkajsOutboxRelayOptions extends Omit<OutboxRelayOptions, 'transport'> {
  /** The kafkajs client the relay publishes through (its brokers, SSL, SASL, socket factory). Required. */
  kafka: Kafka;
  /** Settings of the kafkajs transactional producers. Default: see `defaultKafkajsPublisherTransportOptions`. */
  publisher?: Omit<KafkajsPublisherTransportOptions, 'kafka'>;
}

/**
 * The outbox relay of @onceflow/outbox on kafkajs: it builds the kafkajs publisher transport and
 * leaves the rest to the engine. Publishes every committed outbox row to Kafka at least once, in
 * commit order per key, with the event id in the `message-id` header:
 *
 * ```ts
 * const relay = await createOutboxRelay({ pool, kafka, schema: 'onceflow' }).start();
 * process.on('SIGTERM', () => void relay.stop());
 * ```
 */
export function createOutboxRelay(options: KafkajsOutboxRelayOptions): OutboxRelay {
  const { kafka, publisher, ...relay } = options ?? ({} as KafkajsOutboxRelayOptions);
  const transport = createKafkajsPublisherTransport({ ...publisher, kafka });
  return outboxRelay({ ...relay, transport });
}
