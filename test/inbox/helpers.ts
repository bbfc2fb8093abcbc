import type { StartedHandle } from '@onceflow/core';
import { createInboxConsumer, type InboxConsumerOptions } from '@onceflow/kafkajs';
import type { Pool } from 'pg';
import { createTestDatabase, type TestDatabase, testKafka } from '../support';

/** A migrated schema plus an effects table without unique constraint, so a double effect shows. */
export async function createInboxDatabase(poolSize = 10): Promise<TestDatabase> {
  const db = await createTestDatabase({ poolSize });
  await db.pool.query(
    `CREATE TABLE "${db.schema}".effects (seq bigserial PRIMARY KEY, message_id text NOT NULL, instance text)`,
  );
  return db;
}

/** Starts an inbox consumer with fast retries and quick fetches. */
export function startConsumer(
  db: TestDatabase,
  options: Omit<InboxConsumerOptions, 'kafka' | 'pool' | 'schema'> & { schema?: string },
): Promise<StartedHandle> {
  return createInboxConsumer({
    kafka: testKafka(),
    pool: db.pool,
    schema: db.schema,
    retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 50, jitter: 0 },
    pruneIntervalMs: 0,
    onError: () => undefined,
    // These tests are about processing; the start-up check of dead-letter topics has tests of its own.
    onMissingDeadLetterTopic: 'create',
    ...options,
    consumerConfig: { maxWaitTimeInMs: 100, ...options.consumerConfig },
  }).start();
}

/** Polls `probe` until it returns true, failing after `timeoutMs`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sum of the stored next offsets of a consumer: equals the number of records once it caught up. */
export async function positionTotal(pool: Pool, schema: string, consumer: string): Promise<number> {
  const { rows } = await pool.query<{ total: string | null }>(
    `SELECT sum(next_offset)::text AS total FROM "${schema}".inbox_position WHERE consumer = $1`,
    [consumer],
  );
  return Number(rows[0]?.total ?? 0);
}

/** Effects by message id, in the order they were written. */
export async function effects(pool: Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ message_id: string }>(
    `SELECT message_id FROM "${schema}".effects ORDER BY seq`,
  );
  return rows.map((row) => row.message_id);
}

/** The dead-letter rows in the outbox, headers decoded as text. */
export async function deadLetterRows(pool: Pool, schema: string, topic: string) {
  const { rows } = await pool.query<{
    header_names: string[];
    header_values: Buffer[];
    value: Buffer | null;
  }>(`SELECT header_names, header_values, value FROM "${schema}".outbox WHERE topic = $1 ORDER BY seq`, [
    topic,
  ]);
  return rows.map((row) => ({
    value: row.value?.toString('utf8') ?? null,
    headers: Object.fromEntries(
      row.header_names.map((name, i) => [name, row.header_values[i]!.toString('utf8')]),
    ),
  }));
}
