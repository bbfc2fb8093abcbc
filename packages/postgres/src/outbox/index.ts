export { claimOutboxBatch, type OutboxRow } from './claim-batch';
export { encodeOutboxEvent, enqueue, laneOf, outboxLaneCount } from './enqueue';
export {
  type AcquiredLane,
  acquireLaneLeases,
  heartbeatRelay,
  type LaneLease,
  releaseLaneLeases,
  renewLaneLeases,
  unregisterRelay,
} from './lane-leases';
export { type SettleResult, settleOutboxBatch } from './settle-batch';
export {
  listParkedOutboxEvents,
  type OutboxStatus,
  type ParkedOutboxEvent,
  readOutboxStatus,
  unparkOutboxEvents,
} from './status';
