import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';
import type { LaneLease } from './lane-leases';

// A batch holds up to thousands of rows: one array literal costs far less than pg's per-element
// parameter preparation. Only for integers (and decimal strings of them), which need no quoting.
const numericArray = (values: readonly (number | string)[]): string => `{${values.join(',')}}`;

// The published ledger (migration 0006), written in the generation's slot, for "where is message X?".
// The slot, the relay and the publish time are the same for every row of a batch: each is computed once
// (an init plan), not joined or called per row, which made the ledger cost about a third more.
const ledgerInsert = (schema: string): string => `
     ledger AS (
       INSERT INTO ${schema}.outbox_published (event_id, slot, topic, lane, seq, relay, enqueued_at, published_at)
       SELECT d.event_id,
              (SELECT (g.generation % 4)::smallint FROM ${schema}.outbox_published_generation g
                ORDER BY g.generation DESC LIMIT 1),
              d.topic, d.lane, d.seq, (SELECT min(owner) FROM lease), d.created_at, (SELECT clock_timestamp())
         FROM deleted d),`;

/** What {@link settleOutboxBatch} did. */
export interface SettleResult {
  /** Lanes whose lease still held: their rows were deleted or parked. */
  heldLanes: number[];
  /** Lanes whose lease was lost: nothing of theirs was deleted or parked. */
  lostLanes: number[];
  deleted: number;
  parked: number;
  /** When the parked rows were parked, by the database clock; null when none was. */
  parkedAt: Date | null;
}

/**
 * Settles a published batch of one or more lanes in one statement: deletes the published rows (keeping
 * a compact record of each in the published ledger, unless `ledger` is false) and parks the failed ones
 * with their error, each lane only while its `lease` (owner and epoch) still holds. The lane rows are
 * share-locked for the statement, so a takeover cannot slip in between the check and the delete.
 */
export async function settleOutboxBatch(
  queryable: PgQueryable,
  options: {
    schema: string;
    /** The leases of every lane the rows belong to. */
    leases: readonly LaneLease[];
    /** Rows the broker acknowledged. */
    published: readonly { lane: number; seq: string }[];
    /** Rows that can never be published, with the error to keep. */
    parked?: readonly { lane: number; seq: string; error: string }[];
    /** Whether published rows are recorded in the published ledger (migration 0006). Default: true. */
    ledger?: boolean;
  },
): Promise<SettleResult> {
  const schema = quoteIdentifier(options.schema);
  const parked = options.parked ?? [];
  const ledger = options.ledger !== false;
  const { rows } = await queryable.query<{
    held: number[];
    deleted: number;
    parked: number;
    parked_at: Date | null;
  }>(
    `WITH lease AS (
       SELECT l.lane, l.owner FROM ${schema}.outbox_lanes l
         JOIN unnest($1::smallint[], $2::text[], $3::bigint[]) AS h(lane, owner, epoch)
           ON l.lane = h.lane AND l.owner = h.owner AND l.epoch = h.epoch
        FOR SHARE OF l),
     deleted AS (
       DELETE FROM ${schema}.outbox o
        USING unnest($4::smallint[], $5::bigint[]) AS d(lane, seq)
        WHERE o.lane = d.lane AND o.seq = d.seq AND d.lane IN (SELECT lane FROM lease)
       RETURNING o.event_id, o.topic, o.lane, o.seq, o.created_at),
${ledger ? ledgerInsert(schema) : ''}
     parked AS (
       UPDATE ${schema}.outbox o
          SET parked_at = clock_timestamp(), last_error = p.error, attempts = o.attempts + 1
         FROM unnest($6::smallint[], $7::bigint[], $8::text[]) AS p(lane, seq, error)
        WHERE o.lane = p.lane AND o.seq = p.seq AND p.lane IN (SELECT lane FROM lease)
       RETURNING o.parked_at)
     SELECT coalesce((SELECT array_agg(lane::int) FROM lease), '{}') AS held,
            (SELECT count(*) FROM deleted)::int AS deleted,
            (SELECT count(*) FROM parked)::int AS parked,
            (SELECT max(parked_at) FROM parked) AS parked_at`,
    [
      options.leases.map((lease) => lease.lane),
      options.leases.map((lease) => lease.owner),
      options.leases.map((lease) => lease.epoch),
      numericArray(options.published.map((row) => row.lane)),
      numericArray(options.published.map((row) => row.seq)),
      parked.map((row) => row.lane),
      parked.map((row) => row.seq),
      parked.map((row) => row.error),
    ],
  );
  const row = rows[0]!;
  const held = new Set(row.held);
  return {
    heldLanes: [...held],
    lostLanes: options.leases.map((lease) => lease.lane).filter((lane) => !held.has(lane)),
    deleted: row.deleted,
    parked: row.parked,
    parkedAt: row.parked_at,
  };
}
