import { createOutboxRelayEngine, type OutboxRelay, type OutboxRelayEngineOptions } from '@onceflow/outbox';
import type { Kafka } from 'kafkajs';
import { createKafkajsPublisherTransport, type KafkajsPublisherOptions } from './publisher';

/** Options of {@link createOutboxRelay}: the engine's options, with a kafkajs client instead of a transport. */
export interface OutboxRelayOptions
  extends Omit<OutboxRelayEngineOptions, 'transport'>,
    KafkajsPublisherOptions {
  /** The kafkajs client the relay publishes through (its brokers, SSL, SASL, socket factory). */
  kafka: Kafka;
}

/**
 * The outbox relay on kafkajs. Publishes every committed outbox row to Kafka at least once, in commit
 * order per key, with the event id in the `message-id` header:
 *
 * ```ts
 * const relay = await createOutboxRelay({ pool, kafka, schema: 'onceflow' }).start();
 * process.on('SIGTERM', () => void relay.stop());
 * ```
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { kafka, transactionTimeoutMs, requestRetries, requestRetryInitialDelayMs, ...engine } = options;
  const publisherOptions: KafkajsPublisherOptions = {};
  if (transactionTimeoutMs !== undefined) publisherOptions.transactionTimeoutMs = transactionTimeoutMs;
  if (requestRetries !== undefined) publisherOptions.requestRetries = requestRetries;
  if (requestRetryInitialDelayMs !== undefined)
    publisherOptions.requestRetryInitialDelayMs = requestRetryInitialDelayMs;
  const transport = createKafkajsPublisherTransport(kafka, publisherOptions);
  return createOutboxRelayEngine({ ...engine, transport });
}
