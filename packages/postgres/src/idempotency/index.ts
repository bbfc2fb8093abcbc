// Public surface of this store; re-exported from ../index.ts.
export { idempotencyTables } from '../schema/idempotency';
export {
  type AbandonedKey,
  type ClaimOptions,
  createPgIdempotencyKeyStore,
  type IdempotencyKeyRecord,
  type IdempotencyKeySnapshot,
  type IdempotencyKeyStore,
  type IdempotencyKeyTransaction,
  type KeyClaim,
  type NewIdempotencyKey,
  type PgIdempotencyKeyStoreOptions,
  type StoredRequest,
  type StoredResponse,
} from './key-store';
