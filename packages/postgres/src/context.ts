import type { TransactionalOutbox } from '@onceflow/core';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PoolClient } from 'pg';
import { defaultSchemaName } from './identifier';
import { enqueue } from './outbox/enqueue';

/**
 * What a handler gets for its writes: everything bound to one open transaction, which onceflow
 * commits when the handler returns and rolls back when it throws.
 */
export interface TransactionContext {
  /** drizzle over the transaction's connection; use it for the handler's own tables. */
  readonly db: NodePgDatabase;
  /** The raw pg client, inside the same transaction. Do not COMMIT or ROLLBACK on it. */
  readonly client: PoolClient;
  /** The outbox of this transaction: events are published only if it commits. */
  readonly outbox: TransactionalOutbox;
}

/** Binds a transaction context to a client on which a transaction is open. */
export function createTransactionContext(
  client: PoolClient,
  options: { schema?: string } = {},
): TransactionContext {
  const schema = options.schema ?? defaultSchemaName;
  return {
    db: drizzle({ client }),
    client,
    outbox: { enqueue: (event) => enqueue(client, event, { schema }) },
  };
}
