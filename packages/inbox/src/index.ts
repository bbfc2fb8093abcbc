export { deadLetterEvent, deadLetterHeaders } from './dead-letter';
export { createInboxEngine, type InboxEngine, type InboxEngineOptions } from './engine';
export {
  type DeadLetterReason,
  defaultInboxOptions,
  type InboxBatchHandler,
  type InboxErrorInfo,
  type InboxHandler,
  type InboxHooks,
  type InboxMode,
  type InboxOptions,
  inboxModes,
  type PositionAheadPolicy,
  positionAheadPolicies,
  type ResolvedInboxOptions,
  resolveInboxOptions,
} from './options';
