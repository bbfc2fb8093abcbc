export {
  createOnceflowAdmin,
  type OnceflowAdmin,
  type OnceflowAdminOptions,
  type OutboxStatusDetail,
} from './admin/admin';
export type {
  ConsumedMessage,
  ConsumerPartitionPosition,
  MessageTrace,
  PublishedMessage,
  WaitingMessage,
} from './admin/locate-message';
export { guardPoolConnections } from './connection';
export { createTransactionContext, type TransactionContext } from './context';
export { describePool } from './describe-pool';
export * from './idempotency/index';
export type { IdempotencyKeyDetail, IdempotencyKeyInfo, PurgeKeysResult } from './idempotency/list-keys';
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
export * from './inbox/index';
export { loadMigrations, type MigrateOptions, type MigrateResult, type Migration, migrate } from './migrate';
export * from './outbox/index';
export { missingPoolErrorListener } from './pool-warning';
export type { DrizzleExecutor, PgQueryable, TransactionExecutor } from './queryable';
export { type OutboxTables, outboxTables } from './schema/outbox';
export { runInTransaction, type TransactionOptions } from './transaction';
