// Public surface of this store; re-exported from ../index.ts.
export { type InboxTables, inboxTables } from '../schema/inbox';
export type {
  DeadLetter,
  DeadLetterDetail,
  DeadLetterFilter,
  DeadLetterReasonName,
  DeadLetterRecord,
  DeadLetterState,
  RedriveOptions,
  RedriveOutcome,
  RedriveResult,
  RedriveSkipped,
} from './dead-letters';
export type { InboxPosition, InboxPositionChange, ResetPositionsOptions } from './positions';
export type { InboxConsumerStatus, InboxGeneration, InboxStatus } from './status';
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
