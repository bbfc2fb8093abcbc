import {
  type OutboxRelay,
  type OutboxRelayOptions,
  createOutboxRelay as outboxRelay,
} from '@onceflow/outbox';
import type { PlatformaticKafkaConnection } from './client';
import {
  createPlatformaticPublisherTransport,
  type PlatformaticPublisherTransportOptions,
} from './publisher';

/**
 * Options of {@link createOutboxRelay}: the relay's own options (of @onceflow/outbox), with the
 * @platformatic/kafka connection in place of a transport. The publisher's settings go under
 * `publisher`, since the relay has a `retry` of its own.
 */
export interface PlatformaticOutboxRelayOptions extends Omit<OutboxRelayOptions, 'transport'> {
  /** How to reach the cluster (`bootstrapBrokers`, `tls`, `sasl`...). Required. */
  kafka: PlatformaticKafkaConnection;
  /** Settings of the transactional producers. Default: see `defaultPlatformaticPublisherTransportOptions`. */
  publisher?: Omit<PlatformaticPublisherTransportOptions, 'kafka'>;
}

/**
 * The outbox relay of @onceflow/outbox on @platformatic/kafka. Publishes every committed outbox row to
 * Kafka at least once, in commit order per key, with the event id in the `message-id` header:
 *
 * ```ts
 * const relay = await createOutboxRelay({ pool, kafka: { bootstrapBrokers }, schema: 'onceflow' }).start();
 * process.on('SIGTERM', () => void relay.stop());
 * ```
 */
export function createOutboxRelay(options: PlatformaticOutboxRelayOptions): OutboxRelay {
  const { kafka, publisher, ...relay } = options ?? ({} as PlatformaticOutboxRelayOptions);
  const transport = createPlatformaticPublisherTransport({ ...publisher, kafka });
  return outboxRelay({ ...relay, transport });
}
