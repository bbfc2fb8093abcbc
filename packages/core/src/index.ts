export type {
  BatchControl,
  BatchListener,
  ConsumerTransport,
  TransportBatch,
  TransportMessage,
} from './consumer-transport';
export {
  cloudEventsIdHeader,
  type HeaderValue,
  headerText,
  type InboundMessage,
  type MessageHeaders,
  messageIdHeader,
  type OutboxEvent,
  type TransactionalOutbox,
  valueAsJson,
} from './envelope';
export {
  type ErrorCode,
  errorCodes,
  invalidOptions,
  isOnceflowError,
  OnceflowError,
  type OnceflowErrorOptions,
} from './errors';
export { createStoppable, type StartedHandle } from './handle';
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
export { newEventId } from './ids';
export {
  type IdSourceMessage,
  type InvalidIdReason,
  type MessageIdExtractor,
  type MessageIdResult,
  type MissingIdPolicy,
  maxMessageIdLength,
  missingIdPolicies,
  type ResolveMessageIdOptions,
  resolveMessageId,
} from './message-id';
export type { LanePublisher, PublisherTransport, PublishRecord } from './publisher-transport';
export {
  backoffDelayMs,
  defaultRetryPolicy,
  isTransientDatabaseError,
  type RetryPolicy,
  retryPolicyProblems,
  sleep,
  transientSqlStates,
} from './retry';
