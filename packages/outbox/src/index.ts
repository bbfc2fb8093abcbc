export { enqueue, type OutboxRow, type OutboxStatus, readOutboxStatus } from '@onceflow/postgres';
export {
  defaultOutboxRelayOptions,
  type OutboxRelayEngineOptions,
  type OutboxRelayObserver,
  type OutboxRelayTestHooks,
  type ParkedEvent,
  type PublishedBatch,
} from './options';
export { type BatchOutcome, publishBatch } from './publish-batch';
export { createOutboxRelayEngine, type OutboxRelay, type OutboxRelayHandle } from './relay';
export { outboxChannel } from './wakeups';
