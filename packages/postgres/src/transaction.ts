import {
  backoffDelayMs,
  defaultRetryPolicy,
  isConnectionError,
  isTransientDatabaseError,
  type RetryPolicy,
  resolveRetryPolicy,
  sleep,
} from '@onceflow/core';
import type { Pool, PoolClient } from 'pg';
import { type HeldConnection, holdConnection } from './connection';

/** Options of {@link runInTransaction}. */
export interface TransactionOptions {
  /** Isolation level. Default: `read committed`. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * Retries of serialization failures and deadlocks (40001, 40P01) and of connections lost before
   * COMMIT was sent, which are always retried; an attempt is one run of the transaction. Fields left
   * out keep the defaults. Default: core's `defaultRetryPolicy`.
   */
  retry?: Partial<RetryPolicy>;
}

/** The statement that opens a transaction with the given isolation. */
export function beginStatement(isolation: TransactionOptions['isolation']): string {
  return isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN';
}

/**
 * Runs `attempt` on a held pooled connection (see holdConnection) until it does not fail for a
 * reason the transaction may be run again for, at most `retry.maxAttempts` times with backoff: a
 * serialization failure or deadlock, a failed connect, or a connection lost before COMMIT was sent
 * (the server rolled the transaction back). A connection lost during COMMIT is not retried, since
 * the transaction may have committed: its error is thrown. `attempt` opens and commits its
 * transaction itself (so that it may send BEGIN or COMMIT together with other statements) and calls
 * `sendingCommit()` just before the round trip that carries COMMIT; on a failure the transaction is
 * rolled back here, and a connection that fails to roll back is dropped instead of pooled.
 * `onFailure` sees each failure first, with the client it happened on.
 */
export async function retryTransaction<T>(
  pool: Pool,
  retry: RetryPolicy,
  attempt: (client: PoolClient, sendingCommit: () => void) => Promise<T>,
  onFailure?: (error: unknown, client: PoolClient) => void,
): Promise<T> {
  for (let attempts = 1; ; attempts++) {
    let held: HeldConnection;
    try {
      held = await holdConnection(pool);
    } catch (error) {
      if (!isConnectionError(error) || attempts >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempts));
      continue;
    }
    const { client } = held;
    let broken = false;
    let committing = false;
    try {
      return await attempt(client, () => {
        committing = true;
      });
    } catch (error) {
      onFailure?.(error, client);
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      const retriable =
        isTransientDatabaseError(error) ||
        (!committing && (held.lost() !== undefined || isConnectionError(error)));
      if (!retriable || attempts >= retry.maxAttempts) throw error;
      await sleep(backoffDelayMs(retry, attempts));
    } finally {
      held.release(broken);
    }
  }
}

/**
 * Runs `work` in one transaction on a pooled client: commit when it resolves, rollback when it
 * throws. Serialization failures and deadlocks re-run `work` from the start with backoff, and so do a
 * failed connect and a connection lost before COMMIT (the server rolled the transaction back), up to
 * `retry.maxAttempts` attempts in all; a connection lost during COMMIT is not retried, since the
 * transaction may have committed: its error is thrown. An impossible `retry` throws OF_INVALID_OPTIONS.
 */
export async function runInTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retry =
    options.retry === undefined
      ? defaultRetryPolicy
      : resolveRetryPolicy('runInTransaction', options.retry, defaultRetryPolicy);
  const begin = beginStatement(options.isolation);
  return retryTransaction(pool, retry, async (client, sendingCommit) => {
    await client.query(begin);
    const result = await work(client);
    sendingCommit();
    await client.query('COMMIT');
    return result;
  });
}
