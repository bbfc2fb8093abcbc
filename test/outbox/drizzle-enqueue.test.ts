// enqueue(tx, …) inside a drizzle node-postgres transaction: the README's "publish from a transaction"
// program. drizzle's sql template turns a JS array into a parenthesised parameter list, so the header
// arrays must reach Postgres as one array parameter each.
import { enqueue } from '@onceflow/postgres';
import { drizzle } from 'drizzle-orm/node-postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, readTopic, type TestDatabase, uniqueName } from '../support';
import { startRelay, waitForDrain } from './helpers';

describe('enqueue through a drizzle transaction', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    return db;
  }

  it('an event enqueued in a committed drizzle transaction, with and without headers, is published with its headers and message id', async () => {
    const db = await database();
    const topic = uniqueName('drizzle-enqueue');
    await createTopic(topic, 1);
    const orm = drizzle(db.pool);
    const ids = await orm.transaction(async (tx) => [
      await enqueue(tx, { topic, key: 'order-1', value: { step: 1 } }, { schema: db.schema }),
      await enqueue(
        tx,
        {
          topic,
          key: 'order-1',
          value: { step: 2 },
          headers: { 'content-type': 'application/json', trace: 'a' },
        },
        { schema: db.schema },
      ),
    ]);

    const stored = await db.pool.query<{ event_id: string; header_names: string[] }>(
      `SELECT event_id, header_names FROM "${db.schema}".outbox ORDER BY seq`,
    );
    expect(stored.rows.map((row) => row.event_id)).toEqual(ids);

    const relay = await startRelay(db);
    cleanup.push(() => relay.stop());
    await waitForDrain(db);
    const records = await readTopic(topic, { minMessages: 2 });
    expect(records.map((record) => JSON.parse(record.value!.toString()))).toEqual([{ step: 1 }, { step: 2 }]);
    expect(records.map((record) => record.headers['message-id']?.toString())).toEqual(ids);
    expect(records[0]!.headers['content-type']).toBeUndefined();
    expect(records[1]!.headers['content-type']?.toString()).toBe('application/json');
    expect(records[1]!.headers.trace?.toString()).toBe('a');
  });

  it('an event enqueued in a rolled-back drizzle transaction leaves no outbox row', async () => {
    const db = await database();
    const orm = drizzle(db.pool);
    const rollback = new Error('roll back');
    await expect(
      orm.transaction(async (tx) => {
        await enqueue(
          tx,
          { topic: 'unused', key: 'k', value: 'v', headers: { a: 'b' } },
          { schema: db.schema },
        );
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM "${db.schema}".outbox`);
    expect(rows[0]).toEqual({ n: 0 });
  });
});
