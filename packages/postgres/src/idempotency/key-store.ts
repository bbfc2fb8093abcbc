import type { Pool, PoolClient } from 'pg';
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

/** One idempotency key as a transaction sees it; the lease and expiry flags are judged by the database clock. */
export interface IdempotencyKeyRecord {
  id: string;
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
  /** True once `expires_at` has passed: the key is then treated as never seen. */
  expired: boolean;
}

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

/** The key operations available inside one open transaction. */
export interface IdempotencyKeyTransaction {
  /** The handler's view of the same transaction (drizzle, raw client, outbox). */
  readonly context: TransactionContext;
  /** Takes the key's transaction-scoped lock without waiting; false when another transaction holds it. */
  tryLock(scope: string, key: string): Promise<boolean>;
  /** Takes the key's transaction-scoped lock, waiting for it. */
  lock(scope: string, key: string): Promise<void>;
  find(scope: string, key: string): Promise<IdempotencyKeyRecord | undefined>;
  remove(id: string): Promise<void>;
  /** Inserts the key and resolves to its id. */
  insert(row: NewIdempotencyKey): Promise<string>;
  /** Commits a recovery point and extends the lease of `leaseToken`. */
  advance(
    id: string,
    next: { recoveryPoint: string; phaseData: unknown; leaseToken: string; leaseMs: number },
  ): Promise<void>;
  /** Marks the key completed with its response and drops the lease. */
  complete(id: string, response: StoredResponse): Promise<void>;
  /** Hands the lease of an unfinished key to `leaseToken`. */
  takeLease(id: string, leaseToken: string, leaseMs: number): Promise<void>;
}

/** A key that is unfinished and whose lease ran out: a completer may take it over. */
export interface AbandonedKey {
  scope: string;
  key: string;
}

/** Storage of idempotency keys. The Postgres one is {@link createPgIdempotencyKeyStore}; tests use fakes. */
export interface IdempotencyKeyStore {
  /** Runs `work` in one transaction: commit when it resolves, rollback when it throws. */
  transaction<T>(work: (tx: IdempotencyKeyTransaction) => Promise<T>): Promise<T>;
  /** Ends the lease of `leaseToken` at once, so a retry may resume without waiting for it to run out. */
  releaseLease(id: string, leaseToken: string): Promise<void>;
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

interface KeyRow {
  id: string;
  request_id: string;
  scope: string;
  key: string;
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
  lease_live: boolean;
  lease_remaining_ms: string | number | null;
  expired: boolean;
}

function toRecord(row: KeyRow): IdempotencyKeyRecord {
  return {
    id: String(row.id),
    requestId: row.request_id,
    scope: row.scope,
    key: row.key,
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
    leaseLive: row.lease_live,
    leaseRemainingMs: Math.max(0, Math.ceil(Number(row.lease_remaining_ms ?? 0))),
    expired: row.expired,
  };
}

// jsonb parameters go through JSON.stringify so that strings and arrays are not mistaken for
// Postgres text or array literals by pg's parameter encoding.
function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

/** The Postgres store of idempotency keys, in the table created by migration 0003. */
export function createPgIdempotencyKeyStore(
  pool: Pool,
  options: PgIdempotencyKeyStoreOptions = {},
): IdempotencyKeyStore {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const table = `${quoteIdentifier(schema)}.idempotency_keys`;
  const lockClass = `hashtext('onceflow:idempotency:${schema}')`;
  const lockName = (scope: string, key: string): string => `${scope.length}:${scope}:${key}`;

  function bind(client: PoolClient): IdempotencyKeyTransaction {
    return {
      context: createTransactionContext(client, { schema }),
      async tryLock(scope, key) {
        const { rows } = await client.query<{ locked: boolean }>(
          `SELECT pg_try_advisory_xact_lock(${lockClass}, hashtext($1)) AS locked`,
          [lockName(scope, key)],
        );
        return rows[0]?.locked === true;
      },
      async lock(scope, key) {
        await client.query(`SELECT pg_advisory_xact_lock(${lockClass}, hashtext($1))`, [
          lockName(scope, key),
        ]);
      },
      async find(scope, key) {
        const { rows } = await client.query<KeyRow>(
          `SELECT id, request_id, scope, key, fingerprint, route, state, recovery_point, phase_data, request, request_body,
                  response_status, response_headers, response_body, lease_token,
                  coalesce(locked_until > now(), false) AS lease_live,
                  greatest(0, extract(epoch FROM (locked_until - now())) * 1000) AS lease_remaining_ms,
                  expires_at <= now() AS expired
             FROM ${table} WHERE scope = $1 AND key = $2`,
          [scope, key],
        );
        return rows[0] ? toRecord(rows[0]) : undefined;
      },
      async remove(id) {
        await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      },
      async insert(row) {
        const done = row.response !== null;
        const { rows } = await client.query<{ id: string }>(
          `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, phase_data, request,
                                 request_body, response_status, response_headers, response_body, lease_token,
                                 locked_until, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12::jsonb, $13, $14,
                   CASE WHEN $14::uuid IS NULL THEN NULL ELSE now() + make_interval(secs => $15::double precision / 1000) END,
                   now() + make_interval(secs => $16::double precision / 1000))
           RETURNING id`,
          [
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
        );
        return String(rows[0]!.id);
      },
      async advance(id, next) {
        await client.query(
          `UPDATE ${table}
              SET recovery_point = $2, phase_data = $3::jsonb, lease_token = $4,
                  locked_until = now() + make_interval(secs => $5::double precision / 1000), updated_at = now()
            WHERE id = $1`,
          [id, next.recoveryPoint, jsonParam(next.phaseData), next.leaseToken, next.leaseMs],
        );
      },
      async complete(id, response) {
        await client.query(
          `UPDATE ${table}
              SET state = 'completed', response_status = $2, response_headers = $3::jsonb, response_body = $4,
                  lease_token = NULL, locked_until = NULL, request_body = NULL, updated_at = now()
            WHERE id = $1`,
          [id, response.status, jsonParam(response.headers), response.body],
        );
      },
      async takeLease(id, leaseToken, leaseMs) {
        await client.query(
          `UPDATE ${table}
              SET lease_token = $2, locked_until = now() + make_interval(secs => $3::double precision / 1000), updated_at = now()
            WHERE id = $1`,
          [id, leaseToken, leaseMs],
        );
      },
    };
  }

  return {
    transaction: (work) => runInTransaction(pool, (client) => work(bind(client)), options.transaction),
    async releaseLease(id, leaseToken) {
      await pool.query(
        `UPDATE ${table} SET locked_until = now(), updated_at = now()
          WHERE id = $1 AND lease_token = $2 AND state = 'in_progress'`,
        [id, leaseToken],
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
