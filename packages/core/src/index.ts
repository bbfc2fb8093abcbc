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
export {
  type InboxBatchMessage,
  type InboxDeadLetterMessage,
  type InboxPartitionRef,
  type InboxPositionAheadMessage,
  type InboxRetryMessage,
  type InboxTransactionMessage,
  inboxBatchChannel,
  inboxDeadLetterChannel,
  inboxPositionAheadChannel,
  inboxRetryChannel,
  inboxTransactionChannel,
  type OutboxEnqueueMessage,
  outboxEnqueueChannel,
  type RelayBacklogMessage,
  type RelayBatchMessage,
  type RelayLaneMessage,
  type RelayParkedMessage,
  type RelayRef,
  relayBacklogChannel,
  relayBatchChannel,
  relayLaneChannel,
  relayParkedChannel,
  type StatusChangeMessage,
  statusChannel,
} from './diagnostics';
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
export {
  type ComponentState,
  type ComponentStatus,
  createStatusTracker,
  type StatusTracker,
} from './status';
export {
  type HttpRequestContext,
  httpRequestChannel,
  type IdempotencyOutcome,
  type InboxHandleContext,
  inboxHandleChannel,
  type RelaySendContext,
  relaySendChannel,
  type TracedCallContext,
  type TracedCallWrapper,
  traceCall,
} from './tracing-channels';
export { type WaitForServiceOptions, waitForService } from './wait-for-service';
