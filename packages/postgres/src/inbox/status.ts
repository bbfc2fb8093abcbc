import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';
import type { InboxPosition } from './positions';

/** One inbox consumer as operators see it. */
export interface InboxConsumerStatus {
  consumer: string;
  /** The retention window it declared at its last start, in seconds; null when it never declared one. */
  retentionSeconds: number | null;
  /** When it last declared it (its last start); null when never. */
  declaredAt: Date | null;
  /** Its stored positions, by topic and partition. */
  positions: InboxPosition[];
  /** Its dead letters by state. */
  deadLetters: { dead: number; redriveRequested: number; redriven: number };
}

/** One generation of the inbox ring (see migrations/0001_inbox.sql). */
export interface InboxGeneration {
  generation: string;
  /** The ring slot (partition `inbox_s<slot>`) it writes. */
  slot: number;
  startedAt: Date;
  /** True for the generation being written. */
  current: boolean;
}

/** A snapshot of the inbox: consumers, their positions and dead letters, and the retention ring. */
export interface InboxStatus {
  consumers: InboxConsumerStatus[];
  /** Generations kept, newest first. */
  generations: InboxGeneration[];
  /** The longest declared retention window in seconds, which rotation honours; null when none. */
  retentionSeconds: number | null;
}

/** Reads consumers, positions, dead-letter counts and generations, in one snapshot. */
export async function readInboxStatus(
  queryable: PgQueryable,
  options: { schema: string },
): Promise<InboxStatus> {
  const schema = quoteIdentifier(options.schema);
  const { rows } = await queryable.query<{ status: InboxStatusJson }>(
    `SELECT json_build_object(
       'retention', (SELECT json_agg(r ORDER BY r.consumer) FROM ${schema}.inbox_retention r),
       'positions', (SELECT json_agg(json_build_object('consumer', p.consumer, 'topic', p.topic,
                       'partition', p.kafka_partition, 'nextOffset', p.next_offset::text, 'updatedAt', p.updated_at)
                       ORDER BY p.consumer, p.topic, p.kafka_partition) FROM ${schema}.inbox_position p),
       'deadLetters', (SELECT json_agg(d) FROM (SELECT consumer, state, count(*)::int AS count
                         FROM ${schema}.dead_letter GROUP BY consumer, state) d),
       'generations', (SELECT json_agg(g ORDER BY g.generation DESC) FROM ${schema}.inbox_generation g)
     ) AS status`,
  );
  const status = rows[0]!.status;
  const consumers = new Map<string, InboxConsumerStatus>();
  const of = (consumer: string): InboxConsumerStatus => {
    let entry = consumers.get(consumer);
    if (entry === undefined) {
      entry = {
        consumer,
        retentionSeconds: null,
        declaredAt: null,
        positions: [],
        deadLetters: { dead: 0, redriveRequested: 0, redriven: 0 },
      };
      consumers.set(consumer, entry);
    }
    return entry;
  };
  for (const row of status.retention ?? []) {
    const entry = of(row.consumer);
    entry.retentionSeconds = row.retention_seconds;
    entry.declaredAt = new Date(row.declared_at);
  }
  for (const row of status.positions ?? [])
    of(row.consumer).positions.push({ ...row, updatedAt: new Date(row.updatedAt) });
  for (const row of status.deadLetters ?? []) {
    const counts = of(row.consumer).deadLetters;
    if (row.state === 'dead') counts.dead = row.count;
    else if (row.state === 'redrive_requested') counts.redriveRequested = row.count;
    else counts.redriven = row.count;
  }
  const generations = (status.generations ?? []).map((row, index) => ({
    generation: String(row.generation),
    slot: Number(BigInt(row.generation) % 4n),
    startedAt: new Date(row.started_at),
    current: index === 0,
  }));
  const windows = (status.retention ?? []).map((row) => row.retention_seconds);
  return {
    consumers: [...consumers.values()].sort((a, b) => (a.consumer < b.consumer ? -1 : 1)),
    generations,
    retentionSeconds: windows.length === 0 ? null : Math.max(...windows),
  };
}

interface InboxStatusJson {
  retention: { consumer: string; retention_seconds: number; declared_at: string }[] | null;
  positions:
    | { consumer: string; topic: string; partition: number; nextOffset: string; updatedAt: string }[]
    | null;
  deadLetters: { consumer: string; state: string; count: number }[] | null;
  generations: { generation: number | string; started_at: string }[] | null;
}
