import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** An idempotency key as an operator sees it: its state, never the stored request or response. */
export interface IdempotencyKeyInfo {
  scope: string;
  key: string;
  route: string;
  state: 'in_progress' | 'completed';
  /** The recovery point an unfinished request stands at. */
  recoveryPoint: string;
  /** Status of the stored response; null while unfinished. */
  responseStatus: number | null;
  createdAt: Date;
  updatedAt: Date;
  /** When the key's lease runs out; null when it holds none. */
  lockedUntil: Date | null;
  /** When the key may be reaped, once completed. */
  expiresAt: Date;
}

const keyColumns = `scope, key, route, state, recovery_point, response_status, created_at, updated_at,
            locked_until, expires_at`;

type KeyRow = {
  scope: string;
  key: string;
  route: string;
  state: IdempotencyKeyInfo['state'];
  recovery_point: string;
  response_status: number | null;
  created_at: Date;
  updated_at: Date;
  locked_until: Date | null;
  expires_at: Date;
};

const keyInfo = (row: KeyRow): IdempotencyKeyInfo => ({
  scope: row.scope,
  key: row.key,
  route: row.route,
  state: row.state,
  recoveryPoint: row.recovery_point,
  responseStatus: row.response_status,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  lockedUntil: row.locked_until,
  expiresAt: row.expires_at,
});

/** One key with its request id and the size of its stored request and response, for `keys show`. */
export interface IdempotencyKeyDetail extends IdempotencyKeyInfo {
  /** The stable id of the logical request. */
  requestId: string;
  /** Headers of the stored response; null while unfinished. */
  responseHeaders: Record<string, string> | null;
  /** Size in bytes of the stored response body; null when none is stored. */
  responseBytes: number | null;
}

/** One key of `scope`, or undefined when there is none. */
export async function getIdempotencyKey(
  queryable: PgQueryable,
  options: { schema: string; scope: string; key: string },
): Promise<IdempotencyKeyDetail | undefined> {
  const { rows } = await queryable.query<
    KeyRow & {
      request_id: string;
      response_headers: Record<string, string> | null;
      response_bytes: number | null;
    }
  >(
    `SELECT ${keyColumns}, request_id::text, response_headers, octet_length(response_body) AS response_bytes
       FROM ${quoteIdentifier(options.schema)}.idempotency_keys WHERE scope = $1 AND key = $2`,
    [options.scope, options.key],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    ...keyInfo(row),
    requestId: row.request_id,
    responseHeaders: row.response_headers,
    responseBytes: row.response_bytes,
  };
}

/** What {@link purgeIdempotencyKeys} removed (or, in a dry run, would remove). */
export interface PurgeKeysResult {
  dryRun: boolean;
  /** How many keys. */
  count: number;
  /** The keys, at most the first 1000, least recently touched first. */
  keys: IdempotencyKeyInfo[];
}

/**
 * Deletes completed keys (optionally of one scope, untouched for `olderThanMs`), so that a retry with
 * one of them runs again as a new request. Keys of requests still in progress are never purged: their
 * lease and recovery point are what makes a retry safe. With `dryRun`, deletes nothing.
 */
export async function purgeIdempotencyKeys(
  queryable: PgQueryable,
  options: { schema: string; scope?: string | undefined; olderThanMs?: number | undefined; dryRun: boolean },
): Promise<PurgeKeysResult> {
  const table = `${quoteIdentifier(options.schema)}.idempotency_keys`;
  const where = `state = 'completed' AND ($1::text IS NULL OR scope = $1)
      AND ($2::float8 IS NULL OR updated_at < now() - make_interval(secs => $2::float8 / 1000))`;
  const params = [options.scope ?? null, options.olderThanMs ?? null];
  const { rows } = await queryable.query<KeyRow>(
    options.dryRun
      ? `SELECT ${keyColumns} FROM ${table} WHERE ${where} ORDER BY updated_at`
      : `DELETE FROM ${table} WHERE ${where} RETURNING ${keyColumns}`,
    params,
  );
  const keys = rows.map(keyInfo).sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime());
  return { dryRun: options.dryRun, count: keys.length, keys: keys.slice(0, 1000) };
}

/** Keys, most recently touched first, at most `limit`; optionally of one scope or state only. */
export async function listIdempotencyKeys(
  queryable: PgQueryable,
  options: {
    schema: string;
    limit: number;
    scope?: string | undefined;
    state?: IdempotencyKeyInfo['state'] | undefined;
  },
): Promise<IdempotencyKeyInfo[]> {
  const { rows } = await queryable.query<KeyRow>(
    `SELECT ${keyColumns}
       FROM ${quoteIdentifier(options.schema)}.idempotency_keys
      WHERE ($1::text IS NULL OR scope = $1) AND ($2::text IS NULL OR state = $2)
      ORDER BY updated_at DESC LIMIT $3`,
    [options.scope ?? null, options.state ?? null, options.limit],
  );
  return rows.map(keyInfo);
}
