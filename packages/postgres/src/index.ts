export { createTransactionContext, type TransactionContext } from './context';
export * from './idempotency/index';
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
export * from './inbox/index';
export { loadMigrations, type MigrateOptions, type MigrateResult, type Migration, migrate } from './migrate';
export * from './outbox/index';
export { type DrizzleExecutor, isPgQueryable, type PgQueryable, type TransactionExecutor } from './queryable';
export { type OutboxTables, outboxTables } from './schema/outbox';
export { runInTransaction, type TransactionOptions } from './transaction';
