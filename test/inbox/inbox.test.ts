import { isOnceflowError } from '@onceflow/core';
import { deadLetterHeaders } from '@onceflow/inbox';
import { createInboxConsumer } from '@onceflow/kafkajs';
import { createPgInboxStore } from '@onceflow/postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopic, databaseUrl, produceRaw, type TestDatabase, testKafka, uniqueName } from '../support';
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

describe('inbox consumer on Kafka and Postgres', () => {
  it('a handler that throws midway leaves no rows and no inbox row; after the retry the effect exists once', async () => {
    const topic = uniqueName('inbox_throw');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    await produceRaw(topic, [{ value: 'x', headers: { 'message-id': 'flaky' } }]);
    const seenBeforeRetry: number[][] = [];
    let attempts = 0;
    await using _handle = await startConsumer(db, {
      consumer,
      topics: [topic],
      handler: async (message, { client }) => {
        attempts++;
        if (attempts === 2) {
          // Observed from another connection: what the failed attempt left behind.
          const { rows } = await db.pool.query<{ effects: number; inbox: number }>(
            `SELECT (SELECT count(*)::int FROM "${db.schema}".effects WHERE message_id = $1) AS effects,
                    (SELECT count(*)::int FROM "${db.schema}".inbox WHERE consumer = $2) AS inbox`,
            [`${consumer}:flaky`, consumer],
          );
          seenBeforeRetry.push([rows[0]!.effects, rows[0]!.inbox]);
        }
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [
          `${consumer}:${message.id}`,
        ]);
        if (attempts === 1) throw new Error('fails after writing');
      },
    });
    await waitFor(
      'the retry to commit',
      async () => (await positionTotal(db.pool, db.schema, consumer)) === 1,
    );
    expect(attempts).toBe(2);
    expect(seenBeforeRetry).toEqual([[0, 0]]);
    const mine = (await effects(db.pool, db.schema)).filter((e) => e === `${consumer}:flaky`);
    expect(mine).toHaveLength(1);
  });

  it('a poison message goes to the dead-letter topic after N attempts with the documented headers; later messages follow in order', async () => {
    const topic = uniqueName('inbox_poison');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    await produceRaw(topic, [
      { value: '1', headers: { 'message-id': 'm1' } },
      { key: 'pk', value: 'bad', headers: { 'message-id': 'poison', trace: 't-1' } },
      { value: '3', headers: { 'message-id': 'm3' } },
      { value: '4', headers: { 'message-id': 'm4' } },
    ]);
    let poisonCalls = 0;
    await using _handle = await startConsumer(db, {
      consumer,
      topics: [topic],
      retry: { maxAttempts: 4, initialDelayMs: 5, maxDelayMs: 20, jitter: 0 },
      handler: async (message, { client }) => {
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [
          `${consumer}:${message.id}`,
        ]);
        if (message.id === 'poison') {
          poisonCalls++;
          throw new Error('cannot process poison');
        }
      },
    });
    await waitFor('all four messages', async () => (await positionTotal(db.pool, db.schema, consumer)) === 4);
    expect(poisonCalls).toBe(4);
    const mine = (await effects(db.pool, db.schema)).filter((e) => e.startsWith(`${consumer}:`));
    expect(mine).toEqual([`${consumer}:m1`, `${consumer}:m3`, `${consumer}:m4`]);
    const letters = await deadLetterRows(db.pool, db.schema, `${topic}.dlq`);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.value).toBe('bad');
    expect(letters[0]!.headers).toMatchObject({
      [deadLetterHeaders.reason]: 'handler-failed',
      [deadLetterHeaders.attempts]: '4',
      [deadLetterHeaders.originTopic]: topic,
      [deadLetterHeaders.originPartition]: '0',
      [deadLetterHeaders.originOffset]: '1',
      [deadLetterHeaders.consumer]: consumer,
      [deadLetterHeaders.messageId]: 'poison',
      trace: 't-1',
    });
    expect(letters[0]!.headers[deadLetterHeaders.error]).toContain('cannot process poison');
  });

  it('missing, empty and oversized ids follow the configured policy', async () => {
    const topic = uniqueName('inbox_ids');
    await createTopic(topic, 1);
    await produceRaw(topic, [
      { value: 'no id' },
      { value: 'empty id', headers: { 'message-id': '' } },
      { value: 'huge id', headers: { 'message-id': 'x'.repeat(5000) } },
      { value: 'fine', headers: { 'message-id': 'fine' } },
    ]);
    const strict = uniqueName('strict');
    const lenient = uniqueName('lenient');
    const handler = (consumer: string) => async (message: { id: string }, ctx: { client: pg.PoolClient }) => {
      await ctx.client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [
        `${consumer}:${message.id}`,
      ]);
    };
    await using _a = await startConsumer(db, {
      consumer: strict,
      topics: [topic],
      onMissingId: 'dead-letter',
      deadLetterTopic: `${strict}.dlq`,
      handler: handler(strict),
    });
    await using _b = await startConsumer(db, {
      consumer: lenient,
      topics: [topic],
      onMissingId: 'derive-from-position',
      deadLetterTopic: `${lenient}.dlq`,
      handler: handler(lenient),
    });
    await waitFor('both consumers', async () => {
      return (
        (await positionTotal(db.pool, db.schema, strict)) === 4 &&
        (await positionTotal(db.pool, db.schema, lenient)) === 4
      );
    });
    const all = await effects(db.pool, db.schema);
    expect(all.filter((e) => e.startsWith(`${strict}:`))).toEqual([`${strict}:fine`]);
    expect(all.filter((e) => e.startsWith(`${lenient}:`))).toEqual([
      `${lenient}:${topic}/0/0`,
      `${lenient}:fine`,
    ]);
    const strictLetters = await deadLetterRows(db.pool, db.schema, `${strict}.dlq`);
    expect(strictLetters.map((l) => [l.value, l.headers[deadLetterHeaders.reason]])).toEqual([
      ['no id', 'invalid-id'],
      ['empty id', 'invalid-id'],
      ['huge id', 'invalid-id'],
    ]);
    expect(strictLetters.map((l) => l.headers[deadLetterHeaders.error]!.split(':')[0])).toEqual([
      'missing',
      'empty',
      'too-long',
    ]);
    const lenientLetters = await deadLetterRows(db.pool, db.schema, `${lenient}.dlq`);
    expect(lenientLetters.map((l) => l.value)).toEqual(['empty id', 'huge id']);
  });

  it('invalid options throw OF_INVALID_OPTIONS at construction with a message saying what to change', () => {
    const pool = new pg.Pool({ connectionString: databaseUrl() });
    const base = { kafka: testKafka(), pool, consumer: 'c', topics: ['t'], handler: async () => {} };
    const cases: [object, RegExp][] = [
      [
        { schema: 'x"; drop table y; --' },
        /schema name .* is not allowed: use 1-48 characters of a-z, 0-9 and _/,
      ],
      [{ batchSize: -1 }, /batchSize must be an integer between 1 and/],
      [{ retry: { maxAttempts: -3 } }, /retry: maxAttempts must be an integer >= 1/],
      [{ handlerTimeoutMs: -10 }, /handlerTimeoutMs must be an integer/],
      [{ onMissingId: 'skip' }, /onMissingId must be one of derive-from-position, dead-letter/],
      [{ topics: [] }, /topics must be a non-empty array/],
      [{ partitionsConsumedConcurrently: 0 }, /partitionsConsumedConcurrently must be an integer >= 1/],
      [
        { onPositionAhead: 'skip' },
        /onPositionAhead must be one of fail, reset-to-earliest, reset-to-latest/,
      ],
      [{ onMissingDeadLetterTopic: 'later' }, /onMissingDeadLetterTopic must be one of fail, create, ignore/],
    ];
    for (const [options, message] of cases) {
      let thrown: unknown;
      try {
        createInboxConsumer({ ...base, ...options } as Parameters<typeof createInboxConsumer>[0]);
      } catch (error) {
        thrown = error;
      }
      expect(isOnceflowError(thrown, 'OF_INVALID_OPTIONS'), JSON.stringify(options)).toBe(true);
      expect((thrown as Error).message).toMatch(message);
    }
    return pool.end();
  });
});

describe('inbox retention', () => {
  it('deduplication holds across generations, and a slot is reused only after the retention window', async () => {
    const local = await createInboxDatabase(4);
    try {
      const store = createPgInboxStore(local.pool, { schema: local.schema });
      await store.declareRetention('ret', 3_000);
      const claim = async (id: string, offset: number) => {
        const tx = await store.begin();
        const result = await tx.claim({
          consumer: 'ret',
          topic: 't',
          partition: 0,
          entries: [{ id, offset: String(offset) }],
        });
        await tx.commit();
        return result.fresh.size === 1;
      };
      expect(await claim('first', 0)).toBe(true);
      expect(await store.rotate()).toBe('not-due');
      const outcomes: string[] = [];
      let offset = 1;
      // Rotate through generations 1..3: 'first' lives in generation 0 and must stay a duplicate.
      while (outcomes.filter((o) => o === 'rotated').length < 3) {
        const outcome = await store.rotate();
        outcomes.push(outcome);
        if (outcome === 'rotated') expect(await claim('first', offset++)).toBe(false);
        else await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(outcomes).not.toContain('retention-pending');
      // A claim in flight holds the rotation lock in shared mode: rotation gives up instead of queueing.
      const tx = await store.begin();
      await tx.claim({ consumer: 'ret', topic: 't', partition: 1, entries: [{ id: 'held', offset: '0' }] });
      const { rows: before } = await local.pool.query(
        `SELECT count(*)::int AS n FROM "${local.schema}".inbox_s0`,
      );
      expect(before[0].n).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const whileHeld = await createPgInboxStore(local.pool, {
        schema: local.schema,
        rotationLockTimeoutMs: 100,
      }).rotate();
      expect(['lock-timeout', 'retention-pending']).toContain(whileHeld);
      await tx.commit();
      // Generation 4 reuses slot 0 once generation 0 ended more than the window ago.
      await waitFor('generation 4', async () => (await store.rotate()) === 'rotated', 20_000);
      const { rows: after } = await local.pool.query(
        `SELECT count(*)::int AS n FROM "${local.schema}".inbox_s0`,
      );
      expect(after[0].n).toBe(0);
      expect(await claim('first', offset++)).toBe(true);
    } finally {
      await local.drop();
    }
  });
});

describe('inbox claim on Postgres', () => {
  it('an id claimed concurrently from two partitions is fresh once: the second claim waits and sees the first commit', async () => {
    const store = createPgInboxStore(db.pool, { schema: db.schema });
    const consumer = uniqueName('race');
    const claim = (tx: Awaited<ReturnType<typeof store.begin>>, partition: number, ids: string[]) =>
      tx.claim({
        consumer,
        topic: 't',
        partition,
        entries: ids.map((id, offset) => ({ id, offset: String(offset) })),
      });
    const first = await store.begin();
    expect((await claim(first, 0, ['a', 'shared', 'b'])).fresh.size).toBe(3);
    const second = await store.begin();
    // Blocks on the uncommitted 'shared' row of the first transaction.
    const pending = claim(second, 1, ['c', 'shared', 'd']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await first.commit();
    const result = await pending;
    await second.commit();
    expect([...result.fresh].sort()).toEqual(['0', '2']);
    const { rows } = await db.pool.query<{ message_id: string }>(
      `SELECT message_id FROM "${db.schema}".inbox WHERE consumer = $1 ORDER BY message_id`,
      [consumer],
    );
    expect(rows.map((row) => row.message_id)).toEqual(['a', 'b', 'c', 'd', 'shared']);
  });

  it('an id claimed concurrently is fresh for the second claim when the first rolls back (no lost effect)', async () => {
    const store = createPgInboxStore(db.pool, { schema: db.schema });
    const consumer = uniqueName('race');
    const first = await store.begin();
    await first.claim({ consumer, topic: 't', partition: 0, entries: [{ id: 'x', offset: '0' }] });
    const second = await store.begin();
    const pending = second.claim({ consumer, topic: 't', partition: 1, entries: [{ id: 'x', offset: '0' }] });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await first.rollback();
    expect([...(await pending).fresh]).toEqual(['0']);
    await second.commit();
  });

  it('an id repeated within one claim is fresh at its first offset only, and the position passes the last offset', async () => {
    const store = createPgInboxStore(db.pool, { schema: db.schema });
    const consumer = uniqueName('repeat');
    const tx = await store.begin();
    const result = await tx.claim({
      consumer,
      topic: 't',
      partition: 0,
      entries: ['a', 'b', 'a', 'c', 'a'].map((id, i) => ({ id, offset: String(10 + i) })),
    });
    await tx.commit();
    expect([...result.fresh].sort()).toEqual(['10', '11', '13']);
    expect(await positionTotal(db.pool, db.schema, consumer)).toBe(15);
  });
});
