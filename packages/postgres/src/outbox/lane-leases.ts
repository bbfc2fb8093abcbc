import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** A relay's hold on one lane. `epoch` grows with every change of owner. */
export interface LaneLease {
  lane: number;
  owner: string;
  epoch: number;
}

interface LeaseRecord extends Record<string, unknown> {
  lane: number;
  owner: string;
  epoch: string;
}

const toLease = (row: LeaseRecord): LaneLease => ({
  lane: row.lane,
  owner: row.owner,
  epoch: Number(row.epoch),
});

/**
 * Records that relay `relayId` is alive for `ttlMs` more milliseconds and returns how many relays are
 * alive, itself included. Long-dead entries are removed on the way.
 */
export async function heartbeatRelay(
  queryable: PgQueryable,
  options: { schema: string; relayId: string; ttlMs: number },
): Promise<number> {
  const schema = quoteIdentifier(options.schema);
  const { rows } = await queryable.query<{ others: number }>(
    `WITH me AS (
       INSERT INTO ${schema}.outbox_relays (relay_id, expires_at)
       VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
       ON CONFLICT (relay_id) DO UPDATE SET expires_at = EXCLUDED.expires_at),
     gone AS (
       DELETE FROM ${schema}.outbox_relays WHERE expires_at < clock_timestamp() - interval '10 minutes')
     SELECT count(*)::int AS others FROM ${schema}.outbox_relays
      WHERE relay_id <> $1 AND expires_at > clock_timestamp()`,
    [options.relayId, options.ttlMs],
  );
  return rows[0]!.others + 1;
}

/** Removes a stopping relay from the live set, so the others rebalance at once. */
export async function unregisterRelay(
  queryable: PgQueryable,
  options: { schema: string; relayId: string },
): Promise<void> {
  await queryable.query(`DELETE FROM ${quoteIdentifier(options.schema)}.outbox_relays WHERE relay_id = $1`, [
    options.relayId,
  ]);
}

/**
 * Extends the leases `owner` still holds by `ttlMs` and returns them; a lease missing from the
 * result was taken over (its owner or epoch changed) and must not be used any more. With
 * `fencingId`, also records it as the publisher of those lanes, for a later owner to fence.
 */
export async function renewLaneLeases(
  queryable: PgQueryable,
  options: { schema: string; leases: readonly LaneLease[]; ttlMs: number; fencingId?: string },
): Promise<LaneLease[]> {
  if (options.leases.length === 0) return [];
  const { rows } = await queryable.query<LeaseRecord>(
    `UPDATE ${quoteIdentifier(options.schema)}.outbox_lanes l
        SET expires_at = clock_timestamp() + $4 * interval '1 millisecond',
            fencing_id = coalesce($5, l.fencing_id)
       FROM unnest($1::smallint[], $2::text[], $3::bigint[]) AS h(lane, owner, epoch)
      WHERE l.lane = h.lane AND l.owner = h.owner AND l.epoch = h.epoch
      RETURNING l.lane, l.owner, l.epoch`,
    [
      options.leases.map((l) => l.lane),
      options.leases.map((l) => l.owner),
      options.leases.map((l) => l.epoch),
      options.ttlMs,
      options.fencingId ?? null,
    ],
  );
  return rows.map(toLease);
}

/** A lane just taken, with the publisher its previous owner may still hold. */
export interface AcquiredLane extends LaneLease {
  /**
   * Fencing id recorded by the previous owner, whose lease expired without a clean release: it must
   * be fenced before this lane's rows are published. Null when the lane was released or never owned.
   */
  previousFencingId: string | null;
}

/**
 * Takes up to `max` lanes that are free or whose lease expired, for `ttlMs`. Each taken lane's epoch
 * is incremented, which stops the previous owner from settling. The previous owner's publisher stays
 * recorded and is returned: fence it, then record your own with {@link renewLaneLeases}, before
 * publishing the lane (until then, whoever takes the lane next fences the previous one again).
 */
export async function acquireLaneLeases(
  queryable: PgQueryable,
  options: { schema: string; owner: string; max: number; ttlMs: number },
): Promise<AcquiredLane[]> {
  if (options.max <= 0) return [];
  const table = `${quoteIdentifier(options.schema)}.outbox_lanes`;
  const { rows } = await queryable.query<LeaseRecord & { previous_fencing_id: string | null }>(
    `UPDATE ${table} l
        SET owner = $1, epoch = l.epoch + 1, expires_at = clock_timestamp() + $3 * interval '1 millisecond'
       FROM (
        SELECT lane, fencing_id FROM ${table}
         WHERE owner IS NULL OR expires_at IS NULL OR expires_at < clock_timestamp()
         ORDER BY owner IS NOT NULL, random()
         LIMIT $2
         FOR UPDATE SKIP LOCKED) AS free
      WHERE l.lane = free.lane
      RETURNING l.lane, l.owner, l.epoch, free.fencing_id AS previous_fencing_id`,
    [options.owner, options.max, options.ttlMs],
  );
  return rows.map((row) => ({ ...toLease(row), previousFencingId: row.previous_fencing_id }));
}

/**
 * Gives lanes back so another relay can take them without waiting for expiry. Call it only once
 * nothing of these lanes is in flight: the next owner does not fence a released lane's publisher.
 */
export async function releaseLaneLeases(
  queryable: PgQueryable,
  options: { schema: string; leases: readonly LaneLease[] },
): Promise<void> {
  if (options.leases.length === 0) return;
  await queryable.query(
    `UPDATE ${quoteIdentifier(options.schema)}.outbox_lanes l
        SET owner = NULL, expires_at = NULL, fencing_id = NULL
       FROM unnest($1::smallint[], $2::text[], $3::bigint[]) AS h(lane, owner, epoch)
      WHERE l.lane = h.lane AND l.owner = h.owner AND l.epoch = h.epoch`,
    [
      options.leases.map((l) => l.lane),
      options.leases.map((l) => l.owner),
      options.leases.map((l) => l.epoch),
    ],
  );
}
