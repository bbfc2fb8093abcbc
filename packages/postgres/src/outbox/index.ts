// Public surface of the outbox storage; re-exported from ../index.ts. Lease, claim and settle
// functions stay internal: the relay reaches them through an OutboxStore.
export type { OutboxRow } from './claim-batch';
export { enqueue } from './enqueue';
export type { AcquiredLane, LaneLease } from './lane-leases';
export type { SettleResult } from './settle-batch';
export type {
  OutboxLaneStatus,
  OutboxStatus,
  OutboxTopicStatus,
  ParkedEvent,
  ParkedEventFilter,
} from './status';
export {
  createPgOutboxStore,
  defaultPgOutboxStoreOptions,
  type OutboxListenOptions,
  type OutboxSettlement,
  type OutboxStore,
  type PgOutboxStoreOptions,
} from './store';
