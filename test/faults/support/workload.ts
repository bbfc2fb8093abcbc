// The fault suite's workload, shared by the producer process and the test process: traceable events
// enqueued through onceflow's outbox, with the truth about what committed kept in the same
// transactions, so that the checks after a run compare Kafka and the consumers' effects with what
// Postgres says was committed, whatever the faults did to the clients' view of it.
import { enqueue, migrate, quoteIdentifier } from '@onceflow/postgres';
import type { Pool, PoolClient } from 'pg';
// Internal: the row enqueue() would write, to enqueue a backlog in a few statements.
import { encodeOutboxEvent } from '../../../packages/postgres/src/outbox/enqueue';

/**
 * Workload tables beside onceflow's, in the scenario's schema:
 * - `produced`: one row per event of a committed transaction (written in that transaction), with the
 *   event's per-key ordinal: the key's counter row is locked until commit, so for one key the
 *   ordinals count up in commit order.
 * - `key_counter`: that counter, one row per key.
 * - `effects`: one row per handled message, written by the consumers' handlers. No unique constraint,
 *   so a message handled twice leaves two rows.
 */
export async function createWorkloadSchema(pool: Pool, schema: string): Promise<void> {
  await migrate(pool, { schema });
  const s = quoteIdentifier(schema);
  await pool.query(`
    CREATE TABLE ${s}.produced (
      event_id text PRIMARY KEY,
      topic text NOT NULL,
      key text NOT NULL,
      ordinal integer NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE TABLE ${s}.key_counter (key text PRIMARY KEY, n integer NOT NULL DEFAULT 0);
    CREATE TABLE ${s}.effects (
      consumer text NOT NULL,
      message_id text NOT NULL,
      key text,
      value text,
      pid integer NOT NULL,
      at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX ON ${s}.effects (message_id);
  `);
}

/** The value every workload event carries: enough to trace it back to its transaction. */
export interface EventValue {
  id: string;
  key: string;
  ordinal: number;
}

/** One event to enqueue: its id and key. The ordinal is taken inside the transaction. */
export interface PlannedEvent {
  id: string;
  key: string;
}

/**
 * Enqueues `events` in one transaction on `client` and commits it, or rolls it back when `rollback`
 * is set (its events must then never be seen anywhere). Keys are locked in sorted order, so two
 * transactions never deadlock on their counters. Returns nothing: whether a COMMIT that failed with
 * a lost connection took effect is for the `produced` table to say.
 */
export async function enqueueTransaction(
  client: PoolClient,
  schema: string,
  topic: string,
  events: readonly PlannedEvent[],
  options: { rollback?: boolean; holdMs?: number } = {},
): Promise<void> {
  const s = quoteIdentifier(schema);
  const sorted = [...events].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  await client.query('BEGIN');
  try {
    for (const event of sorted) {
      const { rows } = await client.query<{ n: number }>(
        `INSERT INTO ${s}.key_counter AS c (key, n) VALUES ($1, 1)
           ON CONFLICT (key) DO UPDATE SET n = c.n + 1 RETURNING c.n`,
        [event.key],
      );
      const ordinal = rows[0]!.n;
      const value: EventValue = { id: event.id, key: event.key, ordinal };
      await enqueue(client, { id: event.id, topic, key: event.key, value }, { schema });
      await client.query(
        `INSERT INTO ${s}.produced (event_id, topic, key, ordinal) VALUES ($1, $2, $3, $4)`,
        [event.id, topic, event.key, ordinal],
      );
    }
    // Holding the transaction open a little lets others that started later commit first.
    if (options.holdMs) await new Promise((resolve) => setTimeout(resolve, options.holdMs));
    await client.query(options.rollback ? 'ROLLBACK' : 'COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Enqueues many events in one committed transaction with three statements instead of three per
 * event, for backlogs built quickly: the key counters are advanced by each key's count at once (the
 * transaction holds them, so the ordinals it hands out in array order are the commit order), then
 * onceflow's enqueue function runs once per event in array order, then `produced` is written.
 */
export async function enqueueBurst(
  client: PoolClient,
  schema: string,
  topic: string,
  events: readonly PlannedEvent[],
): Promise<void> {
  const s = quoteIdentifier(schema);
  const counts = new Map<string, number>();
  for (const event of events) counts.set(event.key, (counts.get(event.key) ?? 0) + 1);
  const keys = [...counts.keys()].sort();
  await client.query('BEGIN');
  try {
    const next = new Map<string, number>();
    for (const key of keys) {
      const count = counts.get(key)!;
      const { rows } = await client.query<{ n: number }>(
        `INSERT INTO ${s}.key_counter AS c (key, n) VALUES ($1, $2)
           ON CONFLICT (key) DO UPDATE SET n = c.n + $2 RETURNING c.n`,
        [key, count],
      );
      next.set(key, rows[0]!.n - count + 1);
    }
    const ordinals = events.map((event) => {
      const ordinal = next.get(event.key)!;
      next.set(event.key, ordinal + 1);
      return ordinal;
    });
    const rows = events.map((event, i) =>
      encodeOutboxEvent({ id: event.id, topic, key: event.key, value: { ...event, ordinal: ordinals[i] } }),
    );
    await client.query(
      `SELECT count(${s}.enqueue(u.id, u.lane, u.lock_key, $4, u.key, u.value, ARRAY['message-id'], ARRAY[convert_to(u.id, 'UTF8')]))
         FROM unnest($1::text[], $2::smallint[], $3::integer[], $5::bytea[], $6::bytea[]) AS u(id, lane, lock_key, key, value)`,
      [
        rows.map((r) => r.eventId),
        rows.map((r) => r.lane),
        rows.map((r) => r.lockKey),
        topic,
        rows.map((r) => r.key),
        rows.map((r) => r.value),
      ],
    );
    await client.query(
      `INSERT INTO ${s}.produced (event_id, topic, key, ordinal)
         SELECT u.id, $2, u.key, u.ordinal FROM unnest($1::text[], $3::text[], $4::int[]) AS u(id, key, ordinal)`,
      [events.map((e) => e.id), topic, events.map((e) => e.key), ordinals],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Ids of rolled-back transactions start with this, so a leak of one is recognisable anywhere. */
export const rolledBackPrefix = 'rb-';
