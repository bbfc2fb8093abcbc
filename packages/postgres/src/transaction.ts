import {
  backoffDelayMs,
  defaultRetryPolicy,
  isTransientDatabaseError,
  type RetryPolicy,
  resolveRetryPolicy,
  sleep,
} from '@onceflow/core';
import type { Pool, PoolClient } from 'pg';

/** Options of {@link runInTransaction}. */
export interface TransactionOptions {
  /** Isolation level. Default: `read committed`. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * Retries of serialization failures and deadlocks (40001, 40P01), which are always retried; an
   * attempt is one run of the transaction. Fields left out keep the defaults. Default:
   * core's `defaultRetryPolicy`.
   */
  retry?: Partial<RetryPolicy>;
}

/** The statement that opens a transaction with the given isolation. */
export function beginStatement(isolation: TransactionOptions['isolation']): string {
  return isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN';
}

/**
 * Runs `attempt` on a pooled client until it does not fail with a serialization failure or deadlock,
 * at most `retry.maxAttempts` times with backoff. `attempt` opens and commits its transaction itself
 * (so it may send BEGIN or COMMIT together with other statements); on a failure the transaction is
 * rolled back here, and a client whose rollback fails is discarded instead of returned to the pool.
 * `onFailure` sees each failure first, with the client it happened on.
 */
export async function retryTransaction<T>(
  pool: Pool,
  retry: RetryPolicy,
  attempt: (client: PoolClient) => Promise<T>,
  onFailure?: (error: unknown, client: PoolClient) => void,
): Promise<T> {
  for (let attempts = 1; ; attempts++) {
    const client = await pool.connect();
    let broken = false;
    try {
      return await attempt(client);
    } catch (error) {
      onFailure?.(error, client);
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (!isTransientDatabaseError(error) || attempts >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempts));
    } finally {
      client.release(broken);
    }
  }
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
  const retry = resolveRetryPolicy('runInTransaction', options.retry, defaultRetryPolicy);
  const begin = beginStatement(options.isolation);
  return retryTransaction(pool, retry, async (client) => {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  });
}
