import type { OutboxEvent } from '@onceflow/core';
import { createOutboxRelay, type KafkajsOutboxRelayOptions } from '@onceflow/kafkajs';
import type { OutboxRelayHandle } from '@onceflow/outbox';
import { createOnceflowAdmin, enqueue } from '@onceflow/postgres';
import type { Kafka } from 'kafkajs';
import type { Pool, PoolClient } from 'pg';
import { type TestDatabase, testKafka, uniqueName } from '../support';

/** Relay settings for tests: short leases and polling so takeovers and fallbacks happen within seconds. */
export const fastRelaySettings = {
  pollIntervalMs: 200,
  leaseMs: 2_000,
  heartbeatIntervalMs: 400,
  retry: { initialDelayMs: 100, maxDelayMs: 1_000 },
  metricsIntervalMs: 0,
} as const;

/** Starts an in-process relay on the test database with {@link fastRelaySettings}. */
export function startRelay(
  db: TestDatabase,
  overrides: Partial<KafkajsOutboxRelayOptions> = {},
): Promise<OutboxRelayHandle> {
  return createOutboxRelay({
    pool: db.pool,
    kafka: testKafka(),
    schema: db.schema,
    ...fastRelaySettings,
    ...overrides,
  }).start();
}

/** Enqueues `events` in one committed transaction. */
export async function enqueueCommitted(db: TestDatabase, events: OutboxEvent[]): Promise<string[]> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const ids: string[] = [];
    for (const event of events) ids.push(await enqueue(client, event, { schema: db.schema }));
    await client.query('COMMIT');
    return ids;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Opens a transaction on its own connection; the caller commits or rolls back and releases. */
export async function openTransaction(pool: Pool): Promise<PoolClient & { pid: number }> {
  const client = await pool.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  await client.query('BEGIN');
  return Object.assign(client, { pid: rows[0]!.pid });
}

/** Resolves once the backend `pid` waits for an advisory lock (the per-key enqueue lock). */
export async function waitUntilBlockedOnAdvisoryLock(
  pool: Pool,
  pid: number,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ waiting: number }>(
      `SELECT count(*)::int AS waiting FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND NOT granted`,
      [pid],
    );
    if (rows[0]!.waiting > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`backend ${pid} never waited for an advisory lock`);
}

/** Polls until `check` returns true. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Resolves once the outbox holds no unpublished row (parked rows do not count). */
export async function waitForDrain(db: TestDatabase, timeoutMs = 90_000): Promise<void> {
  await eventually(
    async () =>
      (await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).backlog === 0,
    'the outbox to drain',
    timeoutMs,
  );
}

/** A published record in the terms of the test: id, key and value as text. */
export interface Published {
  id: string;
  key: string | null;
  value: string;
  partition: number;
  offset: bigint;
}

/**
 * Reads the whole topic as a read_committed consumer, up to its end offsets and at least
 * `minMessages` records. Unlike a plain reader it also counts batches that held nothing visible
 * (aborted transactions and their markers, which the relay's fenced or failed transactions leave at
 * the end of a partition), so it ends instead of waiting for records that will never be visible.
 */
export async function readPublished(
  topic: string,
  minMessages = 0,
  timeoutMs = 90_000,
  kafka: Kafka = testKafka(),
): Promise<Published[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  const reached = new Map<number, bigint>();
  const records: Published[] = [];
  const done = (): boolean =>
    records.length >= minMessages &&
    [...ends].every(([partition, end]) => end === 0n || (reached.get(partition) ?? -1n) + 1n >= end);
  if (done()) return records;
  const consumer = kafka.consumer({
    groupId: uniqueName('outbox-read'),
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `readPublished(${topic}): ${records.length} records after ${timeoutMs} ms, expected ${minMessages}`,
            ),
          ),
        timeoutMs,
      );
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const last = BigInt(payload.lastOffset);
        if (last > (reached.get(payload.partition) ?? -1n)) reached.set(payload.partition, last);
        if (done()) {
          clearTimeout(timer);
          resolve();
        }
      });
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages)
              records.push({
                id: m.headers?.['message-id']?.toString() ?? '',
                key: m.key?.toString('utf8') ?? null,
                value: m.value?.toString('utf8') ?? '',
                partition: batch.partition,
                offset: BigInt(m.offset),
              });
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/**
 * Per key, the values in the order Kafka holds them (one key lives in one partition), keeping only
 * the first occurrence of each id: republishing after a crash repeats ids, which downstream inboxes drop.
 */
export function orderByKey(published: readonly Published[]): Map<string | null, string[]> {
  const sorted = [...published].sort(
    (a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
  );
  const seen = new Set<string>();
  const byKey = new Map<string | null, string[]>();
  for (const record of sorted) {
    if (seen.has(record.id)) continue;
    seen.add(record.id);
    const values = byKey.get(record.key) ?? [];
    if (values.length === 0) byKey.set(record.key, values);
    values.push(record.value);
  }
  return byKey;
}

/** How many times each id was published. */
export function idCounts(published: readonly Published[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of published) counts.set(record.id, (counts.get(record.id) ?? 0) + 1);
  return counts;
}
