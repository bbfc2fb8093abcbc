export {
  defaultOutboxRelayOptions,
  type OutboxRelayObserver,
  type OutboxRelayOptions,
  type OutboxRelayTestHooks,
  type PublishedBatch,
} from './options';
export { createOutboxRelay, type OutboxRelay, type OutboxRelayHandle } from './relay';
