import {
  backoffDelayMs,
  defaultRetryPolicy,
  invalidOptions,
  isConnectionError,
  isTransientDatabaseError,
  type RetryPolicy,
  retryPolicyProblems,
  sleep,
} from '@onceflow/core';
import type { Pool, PoolClient } from 'pg';
import { type HeldConnection, holdConnection } from './connection';

/** Options of {@link runInTransaction}. */
export interface TransactionOptions {
  /** Isolation level. Default: `read committed`. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * Retry policy for serialization failures and deadlocks (40001, 40P01) and for connections lost
   * before COMMIT was sent, which are always retried. Default: {@link defaultRetryPolicy}.
   */
  retry?: RetryPolicy;
}

/** Throws OF_INVALID_OPTIONS when `retry` cannot work (for example a delay above the timer limit). */
export function checkTransactionRetry(component: string, retry: RetryPolicy | undefined): void {
  if (retry === undefined) return;
  const problems = retryPolicyProblems(retry);
  if (problems.length > 0) invalidOptions(component, `transaction retry: ${problems.join('; ')}`);
}

/**
 * Runs `work` in one transaction on a pooled client: commit when it resolves, rollback when it
 * throws. Serialization failures and deadlocks re-run `work` from the start with backoff, and so do a
 * failed connect and a connection lost before COMMIT (the server rolled the transaction back), up to
 * `retry.maxAttempts` attempts in all; a connection lost during
 * COMMIT is not retried, since the transaction may have committed: its error is thrown.
 */
export async function runInTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  checkTransactionRetry('runInTransaction', options.retry);
  const retry = options.retry ?? defaultRetryPolicy;
  for (let attempt = 1; ; attempt++) {
    let held: HeldConnection;
    try {
      held = await holdConnection(pool);
    } catch (error) {
      if (!isConnectionError(error) || attempt >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempt));
      continue;
    }
    const { client } = held;
    let broken = false;
    let committing = false;
    try {
      await client.query(options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation}` : 'BEGIN');
      const result = await work(client);
      committing = true;
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      const retriable =
        isTransientDatabaseError(error) ||
        (!committing && (held.lost() !== undefined || isConnectionError(error)));
      if (!retriable || attempt >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempt));
    } finally {
      held.release(broken);
    }
  }
}
