import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** A snapshot of the outbox for operators and metrics. */
export interface OutboxStatus {
  /** Rows waiting to be published (parked rows not included). */
  backlog: number;
  /** Age in milliseconds of the oldest waiting row, by the database clock; null when none waits. */
  oldestAgeMs: number | null;
  /** Rows parked because they can never be published. */
  parked: number;
  /** Relays that heartbeated within their lease time. */
  liveRelays: number;
  /** Lanes currently held by a relay with an unexpired lease. */
  ownedLanes: number;
}

/** Reads backlog, oldest age, parked count and lane ownership in one round trip. */
export async function readOutboxStatus(
  queryable: PgQueryable,
  options: { schema: string },
): Promise<OutboxStatus> {
  const schema = quoteIdentifier(options.schema);
  const { rows } = await queryable.query<{
    backlog: number;
    oldest_age_ms: number | null;
    parked: number;
    live_relays: number;
    owned_lanes: number;
  }>(
    `SELECT
       (SELECT count(*) FROM ${schema}.outbox WHERE parked_at IS NULL)::int AS backlog,
       (SELECT (extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::float8
          FROM ${schema}.outbox WHERE parked_at IS NULL) AS oldest_age_ms,
       (SELECT count(*) FROM ${schema}.outbox WHERE parked_at IS NOT NULL)::int AS parked,
       (SELECT count(*) FROM ${schema}.outbox_relays WHERE expires_at > clock_timestamp())::int AS live_relays,
       (SELECT count(*) FROM ${schema}.outbox_lanes
         WHERE owner IS NOT NULL AND expires_at > clock_timestamp())::int AS owned_lanes`,
  );
  const row = rows[0]!;
  return {
    backlog: row.backlog,
    oldestAgeMs: row.oldest_age_ms,
    parked: row.parked,
    liveRelays: row.live_relays,
    ownedLanes: row.owned_lanes,
  };
}

/**
 * An event that can never be published as it is (too large, refused by the broker) and was parked:
 * it and every later event of its (topic, key) wait until it is unparked. The relay reports it as
 * it parks it; operators list it through the admin library.
 */
export interface ParkedEvent {
  /** The lane of its (topic, key). */
  lane: number;
  /** Its order value within the key, a decimal string (bigint). */
  seq: string;
  eventId: string;
  topic: string;
  key: Buffer | null;
  /** What the broker said when it refused the event. */
  error: string;
  /** When it was parked, by the database clock. */
  parkedAt: Date;
}

/** Which parked events a verb selects: by ids, by key (UTF-8 text), by topic; every field narrows it. */
export interface ParkedEventFilter {
  /** Only these events. */
  eventIds?: readonly string[] | undefined;
  /** Only events with this key (compared as UTF-8 bytes). */
  key?: string | undefined;
  /** Only events of this topic. */
  topic?: string | undefined;
}

const parkedWhere = `parked_at IS NOT NULL AND ($1::text[] IS NULL OR event_id = ANY($1::text[]))
   AND ($2::text IS NULL OR key = convert_to($2, 'UTF8')) AND ($3::text IS NULL OR topic = $3)`;

const filterParams = (filter: ParkedEventFilter): unknown[] => [
  filter.eventIds === undefined ? null : [...filter.eventIds],
  filter.key ?? null,
  filter.topic ?? null,
];

type ParkedRow = {
  lane: number;
  seq: string;
  event_id: string;
  topic: string;
  key: Buffer | null;
  last_error: string | null;
  parked_at: Date;
};

const parkedEvent = (row: ParkedRow): ParkedEvent => ({
  lane: row.lane,
  seq: row.seq,
  eventId: row.event_id,
  topic: row.topic,
  key: row.key,
  error: row.last_error ?? '',
  parkedAt: row.parked_at,
});

/** Lists parked events, oldest first, at most `limit`; optionally only those `filter` selects. */
export async function listParkedEvents(
  queryable: PgQueryable,
  options: ParkedEventFilter & { schema: string; limit: number },
): Promise<ParkedEvent[]> {
  const { rows } = await queryable.query<ParkedRow>(
    `SELECT lane, seq, event_id, topic, key, last_error, parked_at FROM ${quoteIdentifier(options.schema)}.outbox
      WHERE ${parkedWhere} ORDER BY parked_at, seq LIMIT $4`,
    [...filterParams(options), options.limit],
  );
  return rows.map(parkedEvent);
}

/**
 * Returns parked events to the queue (after the cause was fixed, e.g. the topic's size limit raised):
 * all of them, or those `options` selects. Resolves to the number of events unparked.
 */
export async function unparkEvents(
  queryable: PgQueryable,
  options: ParkedEventFilter & { schema: string },
): Promise<number> {
  const { rowCount } = await queryable.query(
    `UPDATE ${quoteIdentifier(options.schema)}.outbox SET parked_at = NULL WHERE ${parkedWhere}`,
    filterParams(options),
  );
  return rowCount ?? 0;
}

/**
 * Deletes parked events for good (events nobody will ever need published): those `options` selects,
 * of which there must be at least one criterion. With `dryRun`, lists them and deletes nothing.
 * Later events of their keys, held back behind them, are then published. Resolves to the events.
 */
export async function dropParkedEvents(
  queryable: PgQueryable,
  options: ParkedEventFilter & { schema: string; dryRun: boolean },
): Promise<ParkedEvent[]> {
  const table = `${quoteIdentifier(options.schema)}.outbox`;
  const { rows } = await queryable.query<ParkedRow>(
    options.dryRun
      ? `SELECT lane, seq, event_id, topic, key, last_error, parked_at FROM ${table}
          WHERE ${parkedWhere} ORDER BY parked_at, seq`
      : `DELETE FROM ${table} WHERE ${parkedWhere}
         RETURNING lane, seq, event_id, topic, key, last_error, parked_at`,
    filterParams(options),
  );
  return rows.map(parkedEvent).sort((a, b) => a.parkedAt.getTime() - b.parkedAt.getTime());
}

/** The outbox's waiting events of one topic. */
export interface OutboxTopicStatus {
  topic: string;
  /** Rows waiting to be published (parked rows not included). */
  backlog: number;
  /** Age in milliseconds of its oldest waiting row; null when none waits. */
  oldestAgeMs: number | null;
  /** Its parked rows. */
  parked: number;
}

/** One outbox lane: its waiting rows and the relay holding it. */
export interface OutboxLaneStatus {
  lane: number;
  /** Rows waiting in it (parked rows not included). */
  backlog: number;
  /** Age in milliseconds of its oldest waiting row; null when none waits. */
  oldestAgeMs: number | null;
  /** The relay holding its lease, null when nobody holds an unexpired one. */
  owner: string | null;
  /** When the owner's lease runs out; null without owner. */
  leaseExpiresAt: Date | null;
  /** Takeovers so far (the lease epoch), a decimal string. */
  epoch: string;
}

/** Backlog per topic and per lane with the lanes' owners, for `onceflow outbox status`. */
export async function readOutboxBreakdown(
  queryable: PgQueryable,
  options: { schema: string },
): Promise<{ topics: OutboxTopicStatus[]; lanes: OutboxLaneStatus[] }> {
  const schema = quoteIdentifier(options.schema);
  const age =
    '(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE parked_at IS NULL)) * 1000)::float8';
  const [topics, lanes] = await Promise.all([
    queryable.query<{ topic: string; backlog: number; oldest_age_ms: number | null; parked: number }>(
      `SELECT topic, (count(*) FILTER (WHERE parked_at IS NULL))::int AS backlog, ${age} AS oldest_age_ms,
              (count(*) FILTER (WHERE parked_at IS NOT NULL))::int AS parked
         FROM ${schema}.outbox GROUP BY topic ORDER BY topic`,
    ),
    queryable.query<{
      lane: number;
      backlog: number;
      oldest_age_ms: number | null;
      owner: string | null;
      expires_at: Date | null;
      epoch: string;
    }>(
      `SELECT l.lane, coalesce(o.backlog, 0)::int AS backlog, o.oldest_age_ms,
              CASE WHEN l.expires_at > clock_timestamp() THEN l.owner END AS owner,
              CASE WHEN l.expires_at > clock_timestamp() AND l.owner IS NOT NULL THEN l.expires_at END AS expires_at,
              l.epoch::text AS epoch
         FROM ${schema}.outbox_lanes l
         LEFT JOIN (SELECT lane, count(*) FILTER (WHERE parked_at IS NULL) AS backlog, ${age} AS oldest_age_ms
                      FROM ${schema}.outbox GROUP BY lane) o USING (lane)
        ORDER BY l.lane`,
    ),
  ]);
  return {
    topics: topics.rows.map((row) => ({
      topic: row.topic,
      backlog: row.backlog,
      oldestAgeMs: row.oldest_age_ms,
      parked: row.parked,
    })),
    lanes: lanes.rows.map((row) => ({
      lane: row.lane,
      backlog: row.backlog,
      oldestAgeMs: row.oldest_age_ms,
      owner: row.owner,
      leaseExpiresAt: row.expires_at,
      epoch: row.epoch,
    })),
  };
}
