export { createInboxConsumer, type InboxConsumer, type InboxConsumerOptions } from './consumer';
export { createKafkajsConsumerTransport, type KafkajsConsumerTransportOptions } from './consumer-transport';
