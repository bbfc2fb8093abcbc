import { randomInt } from 'node:crypto';
import type { StartedHandle } from '@onceflow/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInboxDatabase, positionTotal, waitFor } from '../inbox/helpers';
import { createTopic, produceRaw, type RawMessage, type TestDatabase, uniqueName } from '../support';
import { adapter, adaptersUnderTest, startConsumer } from './support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase(12);
});
afterAll(async () => {
  await db?.drop();
});

async function effectCount(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".effects`,
  );
  return rows[0]!.n;
}

describe.each(adaptersUnderTest())('inbox rebalances (%s)', (name) => {
  it('two instances with rebalances amid 10,000 messages over 6 partitions with random duplicates: effects = distinct ids, none twice', async () => {
    await db.pool.query(`TRUNCATE "${db.schema}".effects`);
    const topic = uniqueName('inbox_rebalance');
    const consumer = uniqueName('c');
    await createTopic(topic, 6);
    // Random duplicates with random keys, so copies of one id usually land in different partitions.
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) ids.push(i > 0 && randomInt(100) < 15 ? ids[randomInt(i)]! : `id-${i}`);
    const distinct = new Set(ids);
    const records: RawMessage[] = ids.map((id, i) => ({
      key: `key-${randomInt(1_000_000)}`,
      value: JSON.stringify({ i }),
      headers: { 'message-id': id },
    }));

    const start = (instance: string): Promise<StartedHandle> =>
      startConsumer(adapter(name), db, {
        consumer,
        topics: [topic],
        batchSize: 200,
        tuning: {
          partitionsConsumedConcurrently: 3,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 500,
          maxBytesPerPartition: 32 * 1024,
        },
        handler: async (message, { client }) => {
          await client.query(`INSERT INTO "${db.schema}".effects (message_id, instance) VALUES ($1, $2)`, [
            message.id,
            instance,
          ]);
        },
      });

    await produceRaw(topic, records.slice(0, 5_000));
    const first = await start('first');
    let second: StartedHandle | undefined;
    try {
      await waitFor('the first instance to be mid-stream', async () => (await effectCount()) >= 1_000);
      // Joining forces a rebalance while the first instance has batches in flight.
      second = await start('second');
      await produceRaw(topic, records.slice(5_000));
      await waitFor(
        'progress on the second half',
        async () => (await positionTotal(db.pool, db.schema, consumer)) >= 7_000,
      );
      // Leaving forces another: the second instance takes over partitions the first was working on.
      await first.stop();
      await waitFor(
        'all records',
        async () => (await positionTotal(db.pool, db.schema, consumer)) === 10_000,
        150_000,
      );
    } finally {
      await first.stop();
      await second?.stop();
    }

    const { rows } = await db.pool.query<{ message_id: string; n: number }>(
      `SELECT message_id, count(*)::int AS n FROM "${db.schema}".effects GROUP BY message_id`,
    );
    expect(rows.filter((row) => row.n > 1).map((row) => row.message_id)).toEqual([]);
    expect(new Set(rows.map((row) => row.message_id))).toEqual(distinct);
    const { rows: byInstance } = await db.pool.query<{ instance: string }>(
      `SELECT DISTINCT instance FROM "${db.schema}".effects ORDER BY instance`,
    );
    expect(byInstance.map((row) => row.instance)).toEqual(['first', 'second']);
  });
});
