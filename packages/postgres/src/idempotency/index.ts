// Public surface of this store; re-exported from ../index.ts.
export { idempotencyTables } from '../schema/idempotency';
export type {
  AbandonedKey,
  ClaimOptions,
  IdempotencyKeyRecord,
  IdempotencyKeySnapshot,
  IdempotencyKeyStore,
  IdempotencyKeyTransaction,
  KeyClaim,
  NewIdempotencyKey,
  StoredRequest,
  StoredResponse,
} from './key-store';
export { createPgIdempotencyKeyStore, type PgIdempotencyKeyStoreOptions } from './pg-key-store';
