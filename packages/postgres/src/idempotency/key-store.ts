import { backoffDelayMs, defaultRetryPolicy, isTransientDatabaseError, sleep } from '@onceflow/core';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { createTransactionContext, type TransactionContext } from '../context';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from '../identifier';
import { runInTransaction, type TransactionOptions } from '../transaction';

/** A response as stored for replay: exactly the bytes that were sent the first time. */
export interface StoredResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** What a completer needs to rebuild a request it finishes on its own (multi-phase routes only). */
export interface StoredRequest {
  method: string;
  url: string;
  params: Record<string, string>;
  /** The headers kept for the completer: content type and the fingerprinted ones, lower case. */
  headers: Record<string, string>;
  /** How `request_body` is to be read back: JSON text, UTF-8 text, opaque bytes, or no body. */
  bodyType: 'json' | 'text' | 'bytes' | 'none';
}

/** One idempotency key as a claiming transaction sees it; the lease is judged by the database clock. */
export interface IdempotencyKeyRecord {
  requestId: string;
  scope: string;
  key: string;
  fingerprint: Buffer;
  route: string;
  state: 'in_progress' | 'completed';
  recoveryPoint: string;
  phaseData: unknown;
  request: StoredRequest | null;
  requestBody: Buffer | null;
  response: StoredResponse | null;
  leaseToken: string | null;
  /** True while another process may still be working on this key. */
  leaseLive: boolean;
  /** Milliseconds until the lease runs out; 0 when it has. */
  leaseRemainingMs: number;
}

/**
 * What claiming a key found, with the key's lock held: `busy` when another transaction holds the
 * lock (only when not waiting for it), `absent` for a key never seen or whose completed record
 * expired (deleted in this transaction), `found` with the record otherwise.
 */
export type KeyClaim =
  | { status: 'busy' }
  | { status: 'absent' }
  | { status: 'found'; record: IdempotencyKeyRecord };

/** A key written by the first phase of a request. */
export interface NewIdempotencyKey {
  requestId: string;
  scope: string;
  key: string;
  fingerprint: Buffer;
  route: string;
  recoveryPoint: string;
  phaseData: unknown;
  request: StoredRequest | null;
  requestBody: Buffer | null;
  /** Set when the first phase already produced the response: the key is written completed. */
  response: StoredResponse | null;
  /** Lease of an unfinished request; ignored when `response` is set. */
  leaseToken: string;
  /** Lease length in milliseconds. */
  leaseMs: number;
  /** Time to live of the key in milliseconds, counted from now. */
  retentionMs: number;
}

/**
 * The key writes of one claiming transaction. Each records the key's new state; it is sent in one
 * round trip together with COMMIT, after the phase's own writes, so it is the transaction's last
 * statement and at most one may be made per transaction.
 */
export interface IdempotencyKeyTransaction {
  /** The handler's view of the same transaction (drizzle, raw client, outbox). */
  readonly context: TransactionContext;
  /** Writes the key's first record: completed when it carries a response, else in progress under a lease. */
  insert(row: NewIdempotencyKey): void;
  /** Commits a recovery point and extends the lease of `leaseToken`. */
  advance(next: { recoveryPoint: string; phaseData: unknown; leaseToken: string; leaseMs: number }): void;
  /** Marks the key completed with its response and drops the lease. */
  complete(response: StoredResponse): void;
}

/** A key that is unfinished and whose lease ran out: a completer may take it over. */
export interface AbandonedKey {
  scope: string;
  key: string;
}

/** Whether {@link IdempotencyKeyStore.claim} waits for a key's lock. */
export interface ClaimOptions {
  /** Wait for the lock instead of reporting `busy`. */
  wait: boolean;
}

/** Storage of idempotency keys. The Postgres one is {@link createPgIdempotencyKeyStore}; tests use fakes. */
export interface IdempotencyKeyStore {
  /** Runs `work` in one transaction without a key: commit when it resolves, rollback when it throws. */
  transaction<T>(work: (context: TransactionContext) => Promise<T>): Promise<T>;
  /**
   * Opens a transaction, takes the key's transaction-scoped lock, reads the key and runs `work`
   * with what it found; commits (with the key write `work` made, if any) when `work` resolves and
   * rolls back when it throws. The lock is held until then, so `work` is the key's only writer.
   */
  claim<T>(
    scope: string,
    key: string,
    options: ClaimOptions,
    work: (claim: KeyClaim, tx: IdempotencyKeyTransaction) => Promise<T>,
  ): Promise<T>;
  /** Ends the lease of `leaseToken` at once, so a retry may resume without waiting for it to run out. */
  releaseLease(scope: string, key: string, leaseToken: string): Promise<void>;
  /** Unfinished keys whose lease ran out at least `idleMs` ago, oldest first. */
  findAbandoned(limit: number, idleMs: number): Promise<AbandonedKey[]>;
  /** Deletes one batch of expired completed keys; resolves to the number deleted. Never touches unfinished keys. */
  reapExpired(batchSize: number): Promise<number>;
}

/** Options of {@link createPgIdempotencyKeyStore}. */
export interface PgIdempotencyKeyStoreOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** Transaction options (isolation, retry of serialization failures). Default: read committed, default retry. */
  transaction?: TransactionOptions;
}

interface ClaimRow {
  claim: 'busy' | 'absent' | 'found';
  request_id: string;
  fingerprint: Buffer;
  route: string;
  state: 'in_progress' | 'completed';
  recovery_point: string;
  phase_data: unknown;
  request: StoredRequest | null;
  request_body: Buffer | null;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: Buffer | null;
  lease_token: string | null;
  lease_remaining_ms: number | null;
}

function toClaim(scope: string, key: string, row: ClaimRow | undefined): KeyClaim {
  if (row === undefined) throw new Error('idempotency_claim returned no row');
  if (row.claim !== 'found') return { status: row.claim };
  const leaseRemainingMs = Math.max(0, Math.ceil(Number(row.lease_remaining_ms ?? 0)));
  return {
    status: 'found',
    record: {
      requestId: row.request_id,
      scope,
      key,
      fingerprint: row.fingerprint,
      route: row.route,
      state: row.state,
      recoveryPoint: row.recovery_point,
      phaseData: row.phase_data,
      request: row.request,
      requestBody: row.request_body,
      response:
        row.response_status === null
          ? null
          : {
              status: row.response_status,
              headers: row.response_headers ?? {},
              body: row.response_body ?? Buffer.alloc(0),
            },
      leaseToken: row.lease_token,
      leaseLive: leaseRemainingMs > 0,
      leaseRemainingMs,
    },
  };
}

/** A value written into SQL text as a literal. */
type Literal = string | number | boolean | Buffer | null | { json: unknown };

/**
 * Renders a value as a SQL literal, for the statements that travel in one simple-protocol round
 * trip with BEGIN or COMMIT (that protocol takes no parameters). Strings go through pg's own
 * escaping, bytes as hex digits, numbers only when finite.
 */
function literal(client: PoolClient, value: Literal): string {
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
    return String(value);
  }
  if (Buffer.isBuffer(value)) return `decode('${value.toString('hex')}', 'hex')`;
  if (typeof value === 'string') {
    // The protocol ends a query at NUL; refuse rather than send a cut statement.
    if (value.includes('\u0000')) throw new TypeError('a NUL character cannot be stored in text');
    return client.escapeLiteral(value);
  }
  return value.json === undefined || value.json === null
    ? 'NULL'
    : `${literal(client, JSON.stringify(value.json))}::jsonb`;
}

/** The Postgres store of idempotency keys, in the table created by migration 0003. */
export function createPgIdempotencyKeyStore(
  pool: Pool,
  options: PgIdempotencyKeyStoreOptions = {},
): IdempotencyKeyStore {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const table = `${quoteIdentifier(schema)}.idempotency_keys`;
  const claimFunction = `${quoteIdentifier(schema)}.idempotency_claim`;
  const isolation = options.transaction?.isolation;
  const begin = isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN';
  const retry = options.transaction?.retry ?? defaultRetryPolicy;
  const interval = (client: PoolClient, ms: number): string =>
    `make_interval(secs => ${literal(client, ms)}::double precision / 1000)`;

  /** The key writes of one transaction; `write` holds the statement sent with COMMIT. */
  function bind(
    client: PoolClient,
    scope: string,
    key: string,
  ): IdempotencyKeyTransaction & { write: string | undefined } {
    const where = (): string => `WHERE scope = ${literal(client, scope)} AND key = ${literal(client, key)}`;
    const tx = {
      context: createTransactionContext(client, { schema }),
      write: undefined as string | undefined,
      insert(row: NewIdempotencyKey): void {
        const done = row.response !== null;
        const values: Literal[] = [
          row.requestId,
          row.scope,
          row.key,
          row.fingerprint,
          row.route,
          done ? 'completed' : 'in_progress',
          row.recoveryPoint,
          { json: row.phaseData },
          { json: row.request },
          row.requestBody,
          row.response?.status ?? null,
          { json: row.response?.headers },
          row.response?.body ?? null,
          done ? null : row.leaseToken,
        ];
        stage(
          `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, phase_data, request,
                                 request_body, response_status, response_headers, response_body, lease_token,
                                 locked_until, expires_at)
           VALUES (${values.map((value) => literal(client, value)).join(', ')},
                   ${done ? 'NULL' : `now() + ${interval(client, row.leaseMs)}`}, now() + ${interval(client, row.retentionMs)})`,
        );
      },
      advance(next: {
        recoveryPoint: string;
        phaseData: unknown;
        leaseToken: string;
        leaseMs: number;
      }): void {
        stage(
          `UPDATE ${table}
              SET recovery_point = ${literal(client, next.recoveryPoint)}, phase_data = ${literal(client, { json: next.phaseData })},
                  lease_token = ${literal(client, next.leaseToken)}, locked_until = now() + ${interval(client, next.leaseMs)},
                  updated_at = now()
            ${where()}`,
        );
      },
      complete(response: StoredResponse): void {
        stage(
          `UPDATE ${table}
              SET state = 'completed', response_status = ${literal(client, response.status)},
                  response_headers = ${literal(client, { json: response.headers })}, response_body = ${literal(client, response.body)},
                  lease_token = NULL, locked_until = NULL, request_body = NULL, updated_at = now()
            ${where()}`,
        );
      },
    };
    function stage(statement: string): void {
      if (tx.write !== undefined) throw new Error('one key write per transaction');
      tx.write = statement;
    }
    return tx;
  }

  async function claim<T>(
    scope: string,
    key: string,
    claimOptions: ClaimOptions,
    work: (claim: KeyClaim, tx: IdempotencyKeyTransaction) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      let broken = false;
      try {
        // BEGIN and the claim share one round trip, the key write and COMMIT another: a keyed
        // request costs the round trips of an unprotected transaction.
        const results = (await client.query(
          `${begin}; SELECT * FROM ${claimFunction}(${literal(client, scope)}, ${literal(client, key)}, ${claimOptions.wait})`,
        )) as unknown as Array<QueryResult<ClaimRow>>;
        const tx = bind(client, scope, key);
        const result = await work(toClaim(scope, key, results[1]?.rows[0]), tx);
        await client.query(tx.write === undefined ? 'COMMIT' : `${tx.write}; COMMIT`);
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

  return {
    transaction: (work) =>
      runInTransaction(
        pool,
        (client) => work(createTransactionContext(client, { schema })),
        options.transaction,
      ),
    claim,
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
        `DELETE FROM ${table} WHERE id IN (
           SELECT id FROM ${table}
            WHERE state = 'completed' AND expires_at <= now()
            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)`,
        [batchSize],
      );
      return result.rowCount ?? 0;
    },
  };
}
