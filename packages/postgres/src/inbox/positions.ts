import { OnceflowError } from '@onceflow/core';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** A stored inbox position: the next offset a consumer processes in a partition. */
export interface InboxPosition {
  consumer: string;
  topic: string;
  partition: number;
  /** Decimal string (offsets exceed 2^53). */
  nextOffset: string;
  updatedAt: Date;
}

/** Options of {@link listInboxPositions}. */
export interface ListInboxPositionsOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** The consumer name. Required. */
  consumer: string;
  /** Only this topic. Default: every topic of the consumer. */
  topic?: string;
}

/** The positions a consumer stored, by topic and partition. */
export async function listInboxPositions(
  queryable: PgQueryable,
  options: ListInboxPositionsOptions,
): Promise<InboxPosition[]> {
  const schema = quoteIdentifier(validateIdentifier(options.schema ?? defaultSchemaName));
  const { rows } = await queryable.query<{
    consumer: string;
    topic: string;
    partition: number;
    next_offset: string;
    updated_at: Date;
  }>(
    `SELECT consumer, topic, kafka_partition AS partition, next_offset::text, updated_at
       FROM ${schema}.inbox_position
      WHERE consumer = $1 AND ($2::text IS NULL OR topic = $2)
      ORDER BY topic, kafka_partition`,
    [options.consumer, options.topic ?? null],
  );
  return rows.map((row) => ({
    consumer: row.consumer,
    topic: row.topic,
    partition: row.partition,
    nextOffset: row.next_offset,
    updatedAt: row.updated_at,
  }));
}

/** Options of {@link resetInboxPositions}. */
export interface ResetInboxPositionsOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** The consumer name. Required. */
  consumer: string;
  /** The topic. Required. */
  topic: string;
  /** The next offset to store per partition (decimal strings). Required, may be empty. */
  positions: readonly { partition: number; nextOffset: string }[];
  /**
   * Also delete the topic's stored positions of partitions not in `positions` (a recreated topic with
   * fewer partitions). Default: false.
   */
  removeOthers?: boolean;
}

/** What {@link resetInboxPositions} changed: each partition's position before and after. */
export interface InboxPositionChange {
  partition: number;
  /** The stored next offset before, or null when there was none. */
  before: string | null;
  /** The stored next offset after, or null when it was deleted. */
  after: string | null;
}

/**
 * Sets a consumer's stored positions in a topic, in one transaction, for an operator: after a topic
 * was deleted and recreated, a database restore, or to skip or replay part of a topic. The inbox rows
 * stay, so messages already processed are still recognised as duplicates. Consumers running meanwhile
 * may overwrite the change with their own progress: stop them first (the CLI checks the group).
 */
export async function resetInboxPositions(
  queryable: PgQueryable,
  options: ResetInboxPositionsOptions,
): Promise<InboxPositionChange[]> {
  const schema = quoteIdentifier(validateIdentifier(options.schema ?? defaultSchemaName));
  for (const { partition, nextOffset } of options.positions)
    if (!Number.isInteger(partition) || partition < 0 || !/^\d{1,19}$/.test(nextOffset))
      throw new OnceflowError(
        'OF_INVALID_OPTIONS',
        `resetInboxPositions: partition ${partition} and next offset ${nextOffset} must be non-negative integers`,
      );
  const { rows } = await queryable.query<{ partition: number; before: string | null; after: string | null }>(
    `WITH wanted AS (
       SELECT * FROM unnest($3::int[], $4::bigint[]) AS w(kafka_partition, next_offset)),
     old AS (
       SELECT kafka_partition, next_offset FROM ${schema}.inbox_position WHERE consumer = $1 AND topic = $2),
     upserted AS (
       INSERT INTO ${schema}.inbox_position AS p (consumer, topic, kafka_partition, next_offset)
       SELECT $1, $2, w.kafka_partition, w.next_offset FROM wanted w
       ON CONFLICT (consumer, topic, kafka_partition)
       DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
       RETURNING p.kafka_partition, p.next_offset),
     deleted AS (
       DELETE FROM ${schema}.inbox_position p
        WHERE $5 AND p.consumer = $1 AND p.topic = $2
          AND p.kafka_partition NOT IN (SELECT kafka_partition FROM wanted)
       RETURNING p.kafka_partition)
     SELECT u.kafka_partition AS partition, o.next_offset::text AS before, u.next_offset::text AS after
       FROM upserted u LEFT JOIN old o USING (kafka_partition)
     UNION ALL
     SELECT d.kafka_partition, o.next_offset::text, NULL
       FROM deleted d LEFT JOIN old o USING (kafka_partition)
     ORDER BY 1`,
    [
      options.consumer,
      options.topic,
      options.positions.map((p) => p.partition),
      options.positions.map((p) => p.nextOffset),
      options.removeOthers ?? false,
    ],
  );
  return rows.map((row) => ({ partition: row.partition, before: row.before, after: row.after }));
}
