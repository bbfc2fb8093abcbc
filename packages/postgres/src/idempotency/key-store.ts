import { createHash } from 'node:crypto';
import { backoffDelayMs, defaultRetryPolicy, isTransientDatabaseError, sleep } from '@onceflow/core';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { holdConnection } from '../connection';
import { createTransactionContext, type TransactionContext } from '../context';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from '../identifier';
import { checkTransactionRetry, runInTransaction, type TransactionOptions } from '../transaction';

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

/**
 * The key statements each pooled connection has prepared; a connection keeps them for the life of
 * its session. Shared by every store of this process, since stores may share a pool.
 */
const preparedOn = new WeakMap<PoolClient, Set<string>>();

/** A value written into SQL text as a literal. */
type Literal = string | number | boolean | Buffer | null;

/** A statement that writes a key, prepared per connection. */
interface KeyStatement {
  name: string;
  /** Parameter types, in order. */
  types: string;
  text: string;
}

/** A key write: a prepared statement and the values to run it with. */
interface KeyWrite {
  statement: KeyStatement;
  values: Literal[];
}

// jsonb values travel as their JSON text, which the statement's jsonb parameter parses.
function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

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
  // The protocol ends a query at NUL; refuse rather than send a cut statement.
  if (value.includes('\u0000')) throw new TypeError('a NUL character cannot be stored in text');
  return client.escapeLiteral(value);
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
  checkTransactionRetry('createPgIdempotencyKeyStore', options.transaction?.retry);
  const retry = options.transaction?.retry ?? defaultRetryPolicy;

  // The key writes are prepared once per connection (SQL PREPARE, which outlives a rollback), so
  // the round trip that carries COMMIT only binds values to an already planned statement.
  const statementPrefix = `onceflow_idem_${createHash('sha1').update(schema).digest('hex').slice(0, 12)}`;
  const statements = {
    insert: {
      name: `${statementPrefix}_insert`,
      types:
        'uuid, text, text, bytea, text, text, text, jsonb, jsonb, bytea, integer, jsonb, bytea, uuid, double precision, double precision',
      text: `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, phase_data,
                        request, request_body, response_status, response_headers, response_body, lease_token,
                        locked_until, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
             CASE WHEN $14 IS NULL THEN NULL ELSE now() + make_interval(secs => $15 / 1000) END,
             now() + make_interval(secs => $16 / 1000))`,
    },
    advance: {
      name: `${statementPrefix}_advance`,
      types: 'text, text, text, jsonb, uuid, double precision',
      text: `UPDATE ${table}
        SET recovery_point = $3, phase_data = $4, lease_token = $5,
            locked_until = now() + make_interval(secs => $6 / 1000), updated_at = now()
      WHERE scope = $1 AND key = $2`,
    },
    complete: {
      name: `${statementPrefix}_complete`,
      types: 'text, text, integer, jsonb, bytea',
      text: `UPDATE ${table}
        SET state = 'completed', response_status = $3, response_headers = $4, response_body = $5,
            lease_token = NULL, locked_until = NULL, request_body = NULL, updated_at = now()
      WHERE scope = $1 AND key = $2`,
    },
  } satisfies Record<string, KeyStatement>;

  /**
   * Prepares the key writes on a connection that has not got them yet, outside any transaction.
   * What a session holds is read from the server the first time this process sees the connection,
   * so several stores sharing a pool never prepare a name twice.
   */
  async function ensurePrepared(client: PoolClient): Promise<void> {
    let names = preparedOn.get(client);
    if (names === undefined) {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_prepared_statements');
      names = new Set(rows.map((row) => row.name));
      preparedOn.set(client, names);
    }
    const missing = Object.values(statements).filter((statement) => !names.has(statement.name));
    if (missing.length === 0) return;
    await client.query(
      missing.map(({ name, types, text }) => `PREPARE ${name} (${types}) AS ${text}`).join('; '),
    );
    for (const { name } of missing) names.add(name);
  }

  /** The key writes of one transaction; `write` holds the statement sent before COMMIT. */
  function bind(
    client: PoolClient,
    scope: string,
    key: string,
  ): IdempotencyKeyTransaction & { write: KeyWrite | undefined } {
    const tx = {
      context: createTransactionContext(client, { schema }),
      write: undefined as KeyWrite | undefined,
      insert(row: NewIdempotencyKey): void {
        const done = row.response !== null;
        stage({
          statement: statements.insert,
          values: [
            row.requestId,
            row.scope,
            row.key,
            row.fingerprint,
            row.route,
            done ? 'completed' : 'in_progress',
            row.recoveryPoint,
            jsonParam(row.phaseData),
            jsonParam(row.request),
            row.requestBody,
            row.response?.status ?? null,
            jsonParam(row.response?.headers),
            row.response?.body ?? null,
            done ? null : row.leaseToken,
            row.leaseMs,
            row.retentionMs,
          ],
        });
      },
      advance(next: {
        recoveryPoint: string;
        phaseData: unknown;
        leaseToken: string;
        leaseMs: number;
      }): void {
        stage({
          statement: statements.advance,
          values: [scope, key, next.recoveryPoint, jsonParam(next.phaseData), next.leaseToken, next.leaseMs],
        });
      },
      complete(response: StoredResponse): void {
        stage({
          statement: statements.complete,
          values: [scope, key, response.status, jsonParam(response.headers), response.body],
        });
      },
    };
    function stage(write: KeyWrite): void {
      if (tx.write !== undefined) throw new Error('one key write per transaction');
      tx.write = write;
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
      const held = await holdConnection(pool);
      const { client } = held;
      let broken = false;
      try {
        await ensurePrepared(client);
        // BEGIN and the claim share one round trip, the key write and COMMIT another: a keyed
        // request costs the round trips of an unprotected transaction.
        const results = (await client.query(
          `${begin}; SELECT * FROM ${claimFunction}(${literal(client, scope)}, ${literal(client, key)}, ${claimOptions.wait})`,
        )) as unknown as Array<QueryResult<ClaimRow>>;
        const tx = bind(client, scope, key);
        const result = await work(toClaim(scope, key, results[1]?.rows[0]), tx);
        await client.query(
          tx.write === undefined
            ? 'COMMIT'
            : `EXECUTE ${tx.write.statement.name}(${tx.write.values.map((value) => literal(client, value)).join(', ')}); COMMIT`,
        );
        return result;
      } catch (error) {
        // A session reset (DISCARD ALL) dropped the prepared statements: prepare them again.
        if ((error as { code?: unknown }).code === '26000') preparedOn.delete(client);
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if (!isTransientDatabaseError(error) || attempt >= retry.maxAttempts) throw error;
        await sleep(backoffDelayMs(retry, attempt));
      } finally {
        held.release(broken);
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
