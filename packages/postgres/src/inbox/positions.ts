import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** Where a consumer stands in one partition: the next offset it will process. */
export interface InboxPosition {
  consumer: string;
  topic: string;
  partition: number;
  /** The next offset to process, a decimal string (offsets exceed 2^53). */
  nextOffset: string;
  /** When the position last moved, by the database clock. */
  updatedAt: Date;
}

/** The stored positions, by consumer, topic and partition; optionally of one consumer or topic only. */
export async function listInboxPositions(
  queryable: PgQueryable,
  options: { schema: string; consumer?: string | undefined; topic?: string | undefined },
): Promise<InboxPosition[]> {
  const { rows } = await queryable.query<{
    consumer: string;
    topic: string;
    kafka_partition: number;
    next_offset: string;
    updated_at: Date;
  }>(
    `SELECT consumer, topic, kafka_partition, next_offset::text AS next_offset, updated_at
       FROM ${quoteIdentifier(options.schema)}.inbox_position
      WHERE ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR topic = $2)
      ORDER BY consumer, topic, kafka_partition`,
    [options.consumer ?? null, options.topic ?? null],
  );
  return rows.map((row) => ({
    consumer: row.consumer,
    topic: row.topic,
    partition: row.kafka_partition,
    nextOffset: row.next_offset,
    updatedAt: row.updated_at,
  }));
}
