import { defaultRetryPolicy, resolveRetryPolicy } from '@onceflow/core';
import type { Pool, QueryResult } from 'pg';
import { createTransactionContext } from '../context';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from '../identifier';
import { beginStatement, retryTransaction, type TransactionOptions } from '../transaction';
import { type ClaimRow, createKeyStatements, literal, toClaim } from './key-statements';
import type { AbandonedKey, IdempotencyKeyStore } from './key-store';

/** Options of {@link createPgIdempotencyKeyStore}: the schema and how its transactions run. */
export interface PgIdempotencyKeyStoreOptions extends TransactionOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
}

/** The Postgres store of idempotency keys, in the table created by migration 0003. */
export function createPgIdempotencyKeyStore(
  pool: Pool,
  options: PgIdempotencyKeyStoreOptions = {},
): IdempotencyKeyStore {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const table = `${quoteIdentifier(schema)}.idempotency_keys`;
  const claimFunction = `${quoteIdentifier(schema)}.idempotency_claim`;
  const begin = beginStatement(options.isolation);
  const retry = resolveRetryPolicy('idempotency key store', options.retry, defaultRetryPolicy);
  const statements = createKeyStatements(schema);

  return {
    transaction: (work) =>
      retryTransaction(pool, retry, async (client, sendingCommit) => {
        await client.query(begin);
        const result = await work(createTransactionContext(client, { schema }));
        sendingCommit();
        await client.query('COMMIT');
        return result;
      }),
    claim: (scope, key, claimOptions, work) =>
      retryTransaction(
        pool,
        retry,
        async (client, sendingCommit) => {
          await statements.ensurePrepared(client);
          // BEGIN and the claim share one round trip, the key write and COMMIT another: a keyed
          // request costs the round trips of an unprotected transaction.
          const results = (await client.query(
            `${begin}; SELECT * FROM ${claimFunction}(${literal(client, scope)}, ${literal(client, key)}, ${claimOptions.wait})`,
          )) as unknown as Array<QueryResult<ClaimRow>>;
          const tx = statements.bind(client, scope, key);
          const result = await work(toClaim(scope, key, results[1]?.rows[0]), tx);
          const commit = tx.commitStatement();
          sendingCommit();
          await client.query(commit);
          return result;
        },
        (error, client) => {
          // A session reset (DISCARD ALL) dropped the prepared statements: prepare them again.
          if ((error as { code?: unknown }).code === '26000') statements.forget(client);
        },
      ),
    async peek(scope, key) {
      const { rows } = await pool.query<{
        state: 'in_progress' | 'completed';
        fingerprint: Buffer;
        response_status: number | null;
        response_headers: Record<string, string> | null;
        response_body: Buffer | null;
        lease_remaining_ms: number;
      }>(
        `SELECT state, fingerprint, response_status, response_headers, response_body,
                greatest(0, coalesce(extract(epoch FROM (locked_until - now())) * 1000, 0))::float8 AS lease_remaining_ms
           FROM ${table}
          WHERE scope = $1 AND key = $2 AND NOT (state = 'completed' AND expires_at <= now())`,
        [scope, key],
      );
      const row = rows[0];
      if (row === undefined) return undefined;
      const leaseRemainingMs = Math.max(0, Math.ceil(Number(row.lease_remaining_ms)));
      return {
        state: row.state,
        fingerprint: row.fingerprint,
        response:
          row.response_status === null
            ? null
            : {
                status: row.response_status,
                headers: row.response_headers ?? {},
                body: row.response_body ?? Buffer.alloc(0),
              },
        leaseLive: leaseRemainingMs > 0,
        leaseRemainingMs,
      };
    },
    async releaseLease(scope, key, leaseToken) {
      await pool.query(
        `UPDATE ${table} SET locked_until = now(), updated_at = now()
          WHERE scope = $1 AND key = $2 AND lease_token = $3 AND state = 'in_progress'`,
        [scope, key, leaseToken],
      );
    },
    async findAbandoned(limit, idleMs) {
      const { rows } = await pool.query<AbandonedKey>(
        `SELECT scope, key FROM ${table}
          WHERE state = 'in_progress'
            AND (locked_until IS NULL OR locked_until <= now() - make_interval(secs => $2::double precision / 1000))
          ORDER BY locked_until NULLS FIRST LIMIT $1`,
        [limit, idleMs],
      );
      return rows;
    },
    async reapExpired(batchSize) {
      // SKIP LOCKED: a key being reused right now is left for the next pass instead of waited on.
      const result = await pool.query(
        `DELETE FROM ${table} WHERE (scope, key) IN (
           SELECT scope, key FROM ${table}
            WHERE state = 'completed' AND expires_at <= now()
            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`,
        [batchSize],
      );
      return result.rowCount ?? 0;
    },
  };
}
