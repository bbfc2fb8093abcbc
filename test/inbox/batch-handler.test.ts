import type { InboundMessage } from '@onceflow/core';
import { deadLetterHeaders } from '@onceflow/inbox';
import type { TransactionContext } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopic, produceRaw, type TestDatabase, uniqueName } from '../support';
import {
  createInboxDatabase,
  deadLetterRows,
  effects,
  positionTotal,
  startConsumer,
  waitFor,
} from './helpers';

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** One multi-row insert of the messages' effects, as a user of handleBatch writes it. */
async function insertAll(
  consumer: string,
  messages: readonly InboundMessage[],
  { client }: TransactionContext,
) {
  await client.query(`INSERT INTO "${db.schema}".effects (message_id) SELECT unnest($1::text[])`, [
    messages.map((m) => `${consumer}:${m.id}`),
  ]);
}

describe('inbox consumer with a batch handler (handleBatch) on Kafka and Postgres', () => {
  it('duplicates by id, within a batch and across batches, apply one effect each, in offset order', async () => {
    const topic = uniqueName('batch_dup');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    const ids = ['a', 'b', 'a', 'c', 'b', 'd', 'a'];
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    const calls: string[][] = [];
    await using handle = await startConsumer(db, {
      consumer,
      topics: [topic],
      handleBatch: async (messages, ctx) => {
        calls.push(messages.map((m) => m.id));
        await insertAll(consumer, messages, ctx);
      },
    });
    await waitFor('the first batch', async () => (await positionTotal(db.pool, db.schema, consumer)) === 7);
    await produceRaw(topic, [
      { value: 'c again', headers: { 'message-id': 'c' } },
      { value: 'e', headers: { 'message-id': 'e' } },
    ]);
    await waitFor('the second batch', async () => (await positionTotal(db.pool, db.schema, consumer)) === 9);
    await handle.stop();
    const mine = (await effects(db.pool, db.schema)).filter((e) => e.startsWith(`${consumer}:`));
    expect(mine).toEqual(['a', 'b', 'c', 'd', 'e'].map((id) => `${consumer}:${id}`));
    // Every call got only new messages; no id was ever handed over twice.
    expect(calls.flat()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('a batch handler that throws after writing leaves no rows and no inbox row; after the retry each effect exists once, in order', async () => {
    const topic = uniqueName('batch_throw');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    const ids = ['m1', 'm2', 'flaky', 'm4', 'm5'];
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    const seenAfterFailure: number[][] = [];
    let failed = false;
    await using _handle = await startConsumer(db, {
      consumer,
      topics: [topic],
      handleBatch: async (messages, ctx) => {
        if (failed && seenAfterFailure.length === 0) {
          // Observed from another connection: what the failed call left behind.
          const { rows } = await db.pool.query<{ effects: number; inbox: number }>(
            `SELECT (SELECT count(*)::int FROM "${db.schema}".effects WHERE message_id LIKE $1) AS effects,
                    (SELECT count(*)::int FROM "${db.schema}".inbox WHERE consumer = $2) AS inbox`,
            [`${consumer}:%`, consumer],
          );
          seenAfterFailure.push([rows[0]!.effects, rows[0]!.inbox]);
        }
        await insertAll(consumer, messages, ctx);
        if (!failed && messages.some((m) => m.id === 'flaky')) {
          failed = true;
          throw new Error('fails after writing');
        }
      },
    });
    await waitFor('all five', async () => (await positionTotal(db.pool, db.schema, consumer)) === 5);
    expect(seenAfterFailure).toEqual([[0, 0]]);
    const mine = (await effects(db.pool, db.schema)).filter((e) => e.startsWith(`${consumer}:`));
    expect(mine).toEqual(ids.map((id) => `${consumer}:${id}`));
  });

  it('a poison message in a batch goes to the dead-letter topic exactly once after N attempts; the others are applied once, in order', async () => {
    const topic = uniqueName('batch_poison');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    const ids = Array.from({ length: 20 }, (_, i) => (i === 13 ? 'poison' : `m${i}`));
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    let poisonAlone = 0;
    await using handle = await startConsumer(db, {
      consumer,
      topics: [topic],
      retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20, jitter: 0 },
      handleBatch: async (messages, ctx) => {
        await insertAll(consumer, messages, ctx);
        if (messages.some((m) => m.id === 'poison')) {
          if (messages.length === 1) poisonAlone++;
          throw new Error('cannot process poison');
        }
      },
    });
    await waitFor('all twenty', async () => (await positionTotal(db.pool, db.schema, consumer)) === 20);
    // Redelivery of the same ids at new offsets changes nothing.
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    await waitFor('the replay', async () => (await positionTotal(db.pool, db.schema, consumer)) === 40);
    await handle.stop();
    expect(poisonAlone).toBe(3);
    const mine = (await effects(db.pool, db.schema)).filter((e) => e.startsWith(`${consumer}:`));
    expect(mine).toEqual(ids.filter((id) => id !== 'poison').map((id) => `${consumer}:${id}`));
    const letters = await deadLetterRows(db.pool, db.schema, `${topic}.dlq`);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.headers).toMatchObject({
      [deadLetterHeaders.reason]: 'handler-failed',
      [deadLetterHeaders.attempts]: '3',
      [deadLetterHeaders.originOffset]: '13',
      [deadLetterHeaders.messageId]: 'poison',
    });
    expect(letters[0]!.headers[deadLetterHeaders.error]).toContain('cannot process poison');
  });
});
