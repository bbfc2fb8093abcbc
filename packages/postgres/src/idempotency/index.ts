// Public surface of this store; re-exported from ../index.ts.
export { idempotencyTables } from '../schema/idempotency';
export {
  type AbandonedKey,
  createPgIdempotencyKeyStore,
  type IdempotencyKeyRecord,
  type IdempotencyKeyStore,
  type IdempotencyKeyTransaction,
  type NewIdempotencyKey,
  type PgIdempotencyKeyStoreOptions,
  type StoredRequest,
  type StoredResponse,
} from './key-store';
