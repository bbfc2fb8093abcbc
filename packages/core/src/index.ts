export type {
  BatchControl,
  BatchListener,
  ConsumerTransport,
  LogOffsets,
  TransportBatch,
  TransportMessage,
} from './consumer-transport';
export { checkDurationMs, type DurationLimits, durationMsProblem, maxTimerDelayMs } from './durations';
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
  isConnectionError,
  isTransientDatabaseError,
  type RetryPolicy,
  retryPolicyProblems,
  sleep,
  transientSqlStates,
} from './retry';
export { type WaitForServiceOptions, waitForService } from './wait-for-service';
