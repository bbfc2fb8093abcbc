import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** An unpublished outbox row as the relay reads it. */
export interface OutboxRow {
  /** Order value within a key; a decimal string (bigint). */
  seq: string;
  eventId: string;
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  /** Milliseconds between the row's insert and this read, by the database clock. */
  ageMs: number;
}

interface ClaimedRecord extends Record<string, unknown> {
  seq: string;
  event_id: string;
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  header_names: string[];
  header_values: Buffer[];
  age_ms: number;
}

/**
 * Reads the oldest unpublished rows of one lane in `seq` order, at most `limit`. Parked rows and
 * every later row of a parked row's (topic, key) are left out, so a poisoned key waits while the
 * others flow. There is no high-water mark: each read starts from the lowest visible `seq`, which is
 * how a transaction that took a lower seq but committed late is published instead of skipped. Only
 * the lane's lease holder publishes, so the read takes no row locks.
 */
export async function claimOutboxBatch(
  queryable: PgQueryable,
  options: { schema: string; lane: number; limit: number },
): Promise<OutboxRow[]> {
  const table = `${quoteIdentifier(options.schema)}.outbox`;
  const { rows } = await queryable.query<ClaimedRecord>(
    `SELECT o.seq, o.event_id, o.topic, o.key, o.value, o.header_names, o.header_values,
            (extract(epoch FROM clock_timestamp() - o.created_at) * 1000)::float8 AS age_ms
       FROM ${table} o
      WHERE o.lane = $1 AND o.parked_at IS NULL
        AND NOT EXISTS (
          SELECT 1 FROM ${table} p
           WHERE p.parked_at IS NOT NULL AND p.lane = $1 AND p.topic = o.topic AND p.key = o.key)
      ORDER BY o.seq
      LIMIT $2`,
    [options.lane, options.limit],
  );
  return rows.map((row) => {
    const headers: Record<string, Buffer> = {};
    row.header_names.forEach((name, i) => {
      const value = row.header_values[i];
      if (value !== undefined) headers[name] = value;
    });
    return {
      seq: row.seq,
      eventId: row.event_id,
      topic: row.topic,
      key: row.key,
      value: row.value,
      headers,
      ageMs: row.age_ms,
    };
  });
}
