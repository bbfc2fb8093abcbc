export { createTransactionContext, type TransactionContext } from './context';
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
export * from './idempotency/index';
export * from './inbox/index';
export { loadMigrations, type MigrateOptions, type MigrateResult, type Migration, migrate } from './migrate';
export * from './outbox/index';
export { type DrizzleExecutor, isPgQueryable, type PgQueryable, type TransactionExecutor } from './queryable';
export { runInTransaction, type TransactionOptions } from './transaction';
