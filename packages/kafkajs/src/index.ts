export { createInboxConsumer, type KafkajsInboxConsumerOptions } from './consumer';
export {
  createKafkajsConsumerTransport,
  defaultKafkajsConsumerConfig,
  defaultKafkajsConsumerTransportOptions,
  type KafkajsConsumerTransportOptions,
} from './consumer-transport';
export { createKafkajsLogCreator } from './log-creator';
export { createOutboxRelay, type KafkajsOutboxRelayOptions } from './outbox-relay';
export {
  createKafkajsPublisherTransport,
  defaultKafkajsPublisherTransportOptions,
  type KafkajsPublisherTransportOptions,
} from './publisher';
