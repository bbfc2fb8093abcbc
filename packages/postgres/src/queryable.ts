import type { SQL } from 'drizzle-orm';

/** A pg client, pool client or pool: anything with `query(text, values)`. */
export interface PgQueryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** A drizzle node-postgres database or transaction: anything with `execute(sql)`. */
export interface DrizzleExecutor {
  execute(query: SQL): PromiseLike<unknown>;
}

/** Where onceflow may write inside the caller's transaction: a pg client or a drizzle transaction. */
export type TransactionExecutor = PgQueryable | DrizzleExecutor;

/** True when `executor` speaks pg's `query(text, values)`. */
export function isPgQueryable(executor: TransactionExecutor): executor is PgQueryable {
  return typeof (executor as PgQueryable).query === 'function';
}
