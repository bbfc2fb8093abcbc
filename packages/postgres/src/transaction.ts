import {
  backoffDelayMs,
  defaultRetryPolicy,
  isTransientDatabaseError,
  type RetryPolicy,
  sleep,
} from '@onceflow/core';
import type { Pool, PoolClient } from 'pg';

/** Options of {@link runInTransaction}. */
export interface TransactionOptions {
  /** Isolation level. Default: `read committed`. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * Retry policy for serialization failures and deadlocks (40001, 40P01), which are always retried.
   * Default: {@link defaultRetryPolicy}.
   */
  retry?: RetryPolicy;
}

/**
 * Runs `work` in one transaction on a pooled client: commit when it resolves, rollback when it
 * throws. Serialization failures and deadlocks re-run `work` from the start with backoff.
 */
export async function runInTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retry = options.retry ?? defaultRetryPolicy;
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query(options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation}` : 'BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (!isTransientDatabaseError(error) || attempt >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempt));
    } finally {
      client.release(broken);
    }
  }
}
