export type { PlatformaticKafkaConnection } from './client';
export { createInboxConsumer, type PlatformaticInboxConsumerOptions } from './consumer';
export {
  createPlatformaticConsumerTransport,
  defaultPlatformaticConsumerConfig,
  defaultPlatformaticConsumerTransportOptions,
  type PlatformaticConsumerConfig,
  type PlatformaticConsumerTransportOptions,
} from './consumer-transport';
export { classifyPublishError } from './errors';
export { createOutboxRelay, type PlatformaticOutboxRelayOptions } from './outbox-relay';
export {
  createPlatformaticPublisherTransport,
  defaultPlatformaticPublisherTransportOptions,
  type PlatformaticPublisherTransportOptions,
} from './publisher';
