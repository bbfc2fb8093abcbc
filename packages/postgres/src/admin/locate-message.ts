import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** A message's outbox row, while it waits for the relay or is parked. */
export interface WaitingMessage {
  lane: number;
  /** Decimal string (bigint). */
  seq: string;
  topic: string;
  key: Buffer | null;
  enqueuedAt: Date;
  /** Set when the event is parked; with `error`. */
  parkedAt: Date | null;
  error: string | null;
  /** Rows of the same lane ahead of it in the queue. */
  ahead: number;
  /** The first 64 KiB of the value (null for a tombstone); `valueBytes` tells the full size. */
  value: Buffer | null;
  valueBytes: number | null;
}

/** A message's record in the published ledger (migration 0006). */
export interface PublishedMessage {
  topic: string;
  lane: number;
  seq: string;
  /** The relay that owned the lane when the event was settled. */
  relay: string;
  enqueuedAt: Date;
  publishedAt: Date;
  /** From enqueue to settle, in milliseconds. */
  latencyMs: number;
}

/** A consumer's inbox row for the message: it was processed (or dead-lettered) by that consumer. */
export interface ConsumedMessage {
  consumer: string;
  topic: string;
  partition: number;
  /** Decimal string. */
  offset: string;
  processedAt: Date;
  /** The inbox generation that holds the row. */
  generation: string;
}

/** A consumer's stored position in one partition of the message's topic. */
export interface ConsumerPartitionPosition {
  consumer: string;
  topic: string;
  partition: number;
  /** Decimal string: the next offset the consumer will process. */
  nextOffset: string;
  updatedAt: Date;
}

/** Everything the database knows of one message id, for "where is message X?". */
export interface MessageTrace {
  messageId: string;
  /** Outbox rows with this id that are still waiting or parked. */
  waiting: WaitingMessage[];
  /** Ledger records of its publication (more than one when it was enqueued again under the same id). */
  published: PublishedMessage[];
  /** Inbox rows of each consumer that recorded it. */
  consumed: ConsumedMessage[];
  /** The stored positions of every consumer of the topics the message was enqueued to or consumed from. */
  positions: ConsumerPartitionPosition[];
}

/**
 * Follows one message id through the schema in one round trip: its outbox row (waiting or parked),
 * its published-ledger records, each consumer's inbox row, and the positions of the consumers of its
 * topics. Every probe is an index lookup except the outbox's, a queue table of rows that live seconds.
 */
export async function traceMessage(
  queryable: PgQueryable,
  options: { schema: string; messageId: string },
): Promise<MessageTrace> {
  const schema = quoteIdentifier(options.schema);
  const { rows } = await queryable.query<{ trace: RawTrace }>(
    `WITH waiting AS (
       SELECT o.lane, o.seq::text AS seq, o.topic, encode(o.key, 'base64') AS key, o.created_at AS enqueued_at,
              o.parked_at, o.last_error AS error, encode(substring(o.value FROM 1 FOR 65536), 'base64') AS value,
              octet_length(o.value) AS value_bytes,
              (SELECT count(*) FROM ${schema}.outbox a WHERE a.lane = o.lane AND a.seq < o.seq)::int AS ahead
         FROM ${schema}.outbox o WHERE o.event_id = $1),
     published AS (
       SELECT p.topic, p.lane, p.seq::text AS seq, p.relay, p.enqueued_at, p.published_at,
              (extract(epoch FROM p.published_at - p.enqueued_at) * 1000)::float8 AS latency_ms
         FROM ${schema}.outbox_published p WHERE p.event_id = $1),
     consumers AS (SELECT DISTINCT consumer FROM ${schema}.inbox_position),
     consumed AS (
       SELECT i.consumer, i.topic, i.kafka_partition AS partition, i.kafka_offset::text AS "offset",
              i.processed_at, i.generation::text AS generation
         FROM consumers c JOIN ${schema}.inbox i ON i.consumer = c.consumer AND i.message_id = $1),
     topics AS (SELECT topic FROM waiting UNION SELECT topic FROM published UNION SELECT topic FROM consumed),
     positions AS (
       SELECT p.consumer, p.topic, p.kafka_partition AS partition, p.next_offset::text AS next_offset, p.updated_at
         FROM ${schema}.inbox_position p WHERE p.topic IN (SELECT topic FROM topics))
     SELECT json_build_object(
       'waiting', coalesce((SELECT json_agg(w ORDER BY w.seq) FROM waiting w), '[]'),
       'published', coalesce((SELECT json_agg(p ORDER BY p.published_at) FROM published p), '[]'),
       'consumed', coalesce((SELECT json_agg(c ORDER BY c.consumer) FROM consumed c), '[]'),
       'positions', coalesce((SELECT json_agg(p ORDER BY p.consumer, p.topic, p.partition) FROM positions p), '[]')
     ) AS trace`,
    [options.messageId],
  );
  const raw = rows[0]!.trace;
  return {
    messageId: options.messageId,
    waiting: raw.waiting.map((row) => ({
      lane: row.lane,
      seq: row.seq,
      topic: row.topic,
      key: row.key === null ? null : Buffer.from(row.key, 'base64'),
      enqueuedAt: new Date(row.enqueued_at),
      parkedAt: row.parked_at === null ? null : new Date(row.parked_at),
      error: row.error,
      ahead: row.ahead,
      value: row.value === null ? null : Buffer.from(row.value, 'base64'),
      valueBytes: row.value_bytes,
    })),
    published: raw.published.map((row) => ({
      topic: row.topic,
      lane: row.lane,
      seq: row.seq,
      relay: row.relay,
      enqueuedAt: new Date(row.enqueued_at),
      publishedAt: new Date(row.published_at),
      latencyMs: row.latency_ms,
    })),
    consumed: raw.consumed.map((row) => ({
      consumer: row.consumer,
      topic: row.topic,
      partition: row.partition,
      offset: row.offset,
      processedAt: new Date(row.processed_at),
      generation: row.generation,
    })),
    positions: raw.positions.map((row) => ({
      consumer: row.consumer,
      topic: row.topic,
      partition: row.partition,
      nextOffset: row.next_offset,
      updatedAt: new Date(row.updated_at),
    })),
  };
}

interface RawTrace {
  waiting: {
    lane: number;
    seq: string;
    topic: string;
    key: string | null;
    enqueued_at: string;
    parked_at: string | null;
    error: string | null;
    ahead: number;
    value: string | null;
    value_bytes: number | null;
  }[];
  published: {
    topic: string;
    lane: number;
    seq: string;
    relay: string;
    enqueued_at: string;
    published_at: string;
    latency_ms: number;
  }[];
  consumed: {
    consumer: string;
    topic: string;
    partition: number;
    offset: string;
    processed_at: string;
    generation: string;
  }[];
  positions: {
    consumer: string;
    topic: string;
    partition: number;
    next_offset: string;
    updated_at: string;
  }[];
}

/**
 * Cumulative counts of rows written to the published ledger and to the inbox, from Postgres's table
 * statistics (free to read; they lag the writes by up to a second). Two samples make a throughput.
 */
export async function readFlowCounters(
  queryable: PgQueryable,
  options: { schema: string },
): Promise<{ published: number; consumed: number }> {
  const { rows } = await queryable.query<{ published: string | null; consumed: string | null }>(
    `SELECT sum(n_tup_ins) FILTER (WHERE relname LIKE 'outbox\\_published\\_s_')::text AS published,
            sum(n_tup_ins) FILTER (WHERE relname LIKE 'inbox\\_s_')::text AS consumed
       FROM pg_stat_user_tables WHERE schemaname = $1`,
    [options.schema],
  );
  return { published: Number(rows[0]?.published ?? 0), consumed: Number(rows[0]?.consumed ?? 0) };
}
