export type {
  BatchControl,
  BatchListener,
  ConsumerTransport,
  LogOffsets,
  MissingTopic,
  RequiredTopic,
  TransportBatch,
  TransportMessage,
  TransportReporter,
} from './consumer-transport';
export { type OutboxEnqueueMessage, outboxEnqueueChannel } from './diagnostics';
export { checkDurationMs, type DurationLimits, durationMsProblem, maxTimerDelayMs } from './durations';
export {
  cloudEventsIdHeader,
  type HeaderValue,
  headerText,
  type InboundMessage,
  type MessageHeaders,
  messageIdHeader,
  type OutboxEvent,
  redriveHeader,
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
  toOnceflowError,
} from './errors';
export { alreadyStarted, createStoppable, type StartedHandle } from './handle';
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
export { newEventId } from './ids';
export { type LogFn, type Logger, silentLogger } from './logger';
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
export {
  type BaseOptions,
  type ErrorHook,
  reportError,
  resolveLogger,
  resolveRetryPolicy,
} from './options';
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
