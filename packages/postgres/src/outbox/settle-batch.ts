import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';
import type { LaneLease } from './lane-leases';

/** What {@link settleOutboxBatch} did. */
export interface SettleResult {
  /** False when the lease was lost: nothing was deleted or parked. */
  leaseHeld: boolean;
  deleted: number;
  parked: number;
}

/**
 * Settles a published batch in one statement: deletes the published rows and parks the failed ones
 * with their error, but only while `lease` (owner and epoch) still holds the lane. The lane row is
 * share-locked for the statement, so a takeover cannot slip in between the check and the delete.
 */
export async function settleOutboxBatch(
  queryable: PgQueryable,
  options: {
    schema: string;
    lease: LaneLease;
    /** `seq` of rows the broker acknowledged. */
    published: readonly string[];
    /** Rows that can never be published, with the error to keep. */
    parked?: readonly { seq: string; error: string }[];
  },
): Promise<SettleResult> {
  const schema = quoteIdentifier(options.schema);
  const parked = options.parked ?? [];
  const { rows } = await queryable.query<{ held: number; deleted: number; parked: number }>(
    `WITH lease AS (
       SELECT lane FROM ${schema}.outbox_lanes
        WHERE lane = $1 AND owner = $2 AND epoch = $3
        FOR SHARE),
     deleted AS (
       DELETE FROM ${schema}.outbox o
        WHERE o.seq = ANY($4::bigint[]) AND o.lane IN (SELECT lane FROM lease)
       RETURNING 1),
     parked AS (
       UPDATE ${schema}.outbox o
          SET parked_at = clock_timestamp(), last_error = p.error, attempts = o.attempts + 1
         FROM unnest($5::bigint[], $6::text[]) AS p(seq, error)
        WHERE o.seq = p.seq AND o.lane IN (SELECT lane FROM lease)
       RETURNING 1)
     SELECT (SELECT count(*) FROM lease)::int AS held,
            (SELECT count(*) FROM deleted)::int AS deleted,
            (SELECT count(*) FROM parked)::int AS parked`,
    [
      options.lease.lane,
      options.lease.owner,
      options.lease.epoch,
      options.published,
      parked.map((row) => row.seq),
      parked.map((row) => row.error),
    ],
  );
  const row = rows[0]!;
  return { leaseHeld: row.held > 0, deleted: row.deleted, parked: row.parked };
}
