// Public surface of this store; re-exported from ../index.ts.
export { type InboxTables, inboxTables } from '../schema/inbox';
export {
  type InboxPosition,
  type InboxPositionChange,
  type ListInboxPositionsOptions,
  listInboxPositions,
  type ResetInboxPositionsOptions,
  resetInboxPositions,
} from './positions';
export {
  createPgInboxStore,
  type InboxClaim,
  type InboxClaimEntry,
  type InboxClaimInput,
  type InboxPositionReset,
  type InboxRotation,
  type InboxStore,
  type InboxTransaction,
  type PgInboxStoreOptions,
} from './store';
