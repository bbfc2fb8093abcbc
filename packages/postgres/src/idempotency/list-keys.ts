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
  const { rows } = await queryable.query<{
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
  }>(
    `SELECT scope, key, route, state, recovery_point, response_status, created_at, updated_at,
            locked_until, expires_at
       FROM ${quoteIdentifier(options.schema)}.idempotency_keys
      WHERE ($1::text IS NULL OR scope = $1) AND ($2::text IS NULL OR state = $2)
      ORDER BY updated_at DESC LIMIT $3`,
    [options.scope ?? null, options.state ?? null, options.limit],
  );
  return rows.map((row) => ({
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
  }));
}
