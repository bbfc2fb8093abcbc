export { createInboxConsumer, type InboxConsumer, type InboxConsumerHandle } from './consumer';
export { deadLetterHeaders } from './dead-letter';
export {
  type DeadLetterReason,
  defaultInboxConsumerOptions,
  type InboxBatchHandler,
  type InboxConsumerOptions,
  type InboxHandler,
  type InboxMode,
  type InboxTestHooks,
  type MissingDeadLetterTopicPolicy,
  type PositionAheadPolicy,
} from './options';
