import { messageIdHeader } from '@onceflow/core';
import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** An unpublished outbox row as the relay reads it. */
export interface OutboxRow {
  /** The lane the row belongs to (all rows of one (topic, key) share it). */
  lane: number;
  /** Order value within a key; a decimal string (bigint). */
  seq: string;
  eventId: string;
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Always contains `message-id` (the event id). */
  headers: Record<string, Buffer>;
  /** Milliseconds between the row's insert and this read, by the database clock. */
  ageMs: number;
}

interface ClaimedRecord extends Record<string, unknown> {
  lane: number;
  seq: string;
  event_id: string;
  topic: string;
  key: Buffer | null;
  /** Base64: a third less to transfer than bytea's hex text, and decoded natively. */
  value: string | null;
  header_names: string[] | null;
  header_values: Buffer[] | null;
  age_ms: number;
}

function toRow(record: ClaimedRecord): OutboxRow {
  const headers: Record<string, Buffer> = {};
  if (record.header_names !== null && record.header_values !== null) {
    const values = record.header_values;
    record.header_names.forEach((name, i) => {
      const value = values[i];
      if (value !== undefined && value !== null) headers[name] = value;
    });
  }
  headers[messageIdHeader] ??= Buffer.from(record.event_id, 'utf8');
  return {
    lane: record.lane,
    seq: record.seq,
    eventId: record.event_id,
    topic: record.topic,
    key: record.key,
    value: record.value === null ? null : Buffer.from(record.value, 'base64'),
    headers,
    ageMs: record.age_ms,
  };
}

/**
 * Reads the oldest unpublished rows of each of `lanes`, in `seq` order per lane, at most `limit` per
 * lane, in one round trip. Parked rows and every later row of a parked row's (topic, key) are left
 * out, so a poisoned key waits while the others flow. There is no high-water mark: each read starts
 * from the lowest visible `seq` of the lane (minus `exclude`, rows already in flight, and the rows of
 * `excludeTopics`), which is how a
 * transaction that took a lower seq but committed late is published instead of skipped. Only the
 * lane's lease holder publishes, so the read takes no row locks.
 */
export async function claimOutboxBatch(
  queryable: PgQueryable,
  options: {
    schema: string;
    lanes: readonly number[];
    limit: number;
    exclude?: readonly Pick<OutboxRow, 'seq'>[];
    /** Topics whose rows are left out (topics the broker refused, not yet due for another try). */
    excludeTopics?: readonly string[];
  },
): Promise<OutboxRow[]> {
  if (options.lanes.length === 0) return [];
  const exclude = options.exclude ?? [];
  // The query lives in the migrations (claim_outbox_topics, 0007, planned with its arguments since
  // 0008), where it can pin its plan: per lane, a range scan of the (lane, seq) primary key that
  // stops after `limit` rows, checking each row against the in-flight seqs through a hash table.
  const { rows } = await queryable.query<ClaimedRecord>(
    `SELECT lane, seq, event_id, topic, key, value, header_names, header_values, age_ms
       FROM ${quoteIdentifier(options.schema)}.claim_outbox_topics($1::smallint[], $2::integer, $3::bigint[], $4::text[])`,
    [
      `{${options.lanes.join(',')}}`,
      options.limit,
      `{${exclude.map((row) => row.seq).join(',')}}`,
      [...(options.excludeTopics ?? [])],
    ],
  );
  return rows.map(toRow);
}
