export { createInboxConsumer, type InboxConsumer, type InboxConsumerOptions } from './consumer';
export {
  createKafkajsConsumerTransport,
  defaultKafkajsConsumerConfig,
  type KafkajsConsumerTransportOptions,
} from './consumer-transport';
export { type MissingDeadLetterTopicPolicy, missingDeadLetterTopicPolicies } from './dead-letter-topics';
export { createOutboxRelay, type OutboxRelayOptions } from './outbox-relay';
export {
  classifyPublishError,
  createKafkajsPublisherTransport,
  defaultKafkajsPublisherOptions,
  type KafkajsPublisherOptions,
} from './publisher';
