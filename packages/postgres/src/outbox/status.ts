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

/** Lists parked events, oldest first, at most `limit`. */
export async function listParkedEvents(
  queryable: PgQueryable,
  options: { schema: string; limit: number },
): Promise<ParkedEvent[]> {
  const { rows } = await queryable.query<{
    lane: number;
    seq: string;
    event_id: string;
    topic: string;
    key: Buffer | null;
    last_error: string | null;
    parked_at: Date;
  }>(
    `SELECT lane, seq, event_id, topic, key, last_error, parked_at FROM ${quoteIdentifier(options.schema)}.outbox
      WHERE parked_at IS NOT NULL ORDER BY parked_at, seq LIMIT $1`,
    [options.limit],
  );
  return rows.map((row) => ({
    lane: row.lane,
    seq: row.seq,
    eventId: row.event_id,
    topic: row.topic,
    key: row.key,
    error: row.last_error ?? '',
    parkedAt: row.parked_at,
  }));
}

/**
 * Returns parked events to the queue (after the cause was fixed, e.g. the topic's size limit raised);
 * with `eventIds`, only those. Resolves to the number of events unparked.
 */
export async function unparkEvents(
  queryable: PgQueryable,
  options: { schema: string; eventIds?: readonly string[] | undefined },
): Promise<number> {
  const { rowCount } = await queryable.query(
    `UPDATE ${quoteIdentifier(options.schema)}.outbox SET parked_at = NULL
      WHERE parked_at IS NOT NULL AND ($1::text[] IS NULL OR event_id = ANY($1::text[]))`,
    [options.eventIds ?? null],
  );
  return rowCount ?? 0;
}
