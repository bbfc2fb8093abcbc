// Conformance: what every consumer transport must guarantee about delivery — duplicates, a crash
// between the database commit and the offset commit, poison messages and their dead letters.
import { fileURLToPath } from 'node:url';
import { deadLetterHeaders } from '@onceflow/inbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInboxDatabase, deadLetterRows, effects, positionTotal, waitFor } from '../inbox/helpers';
import { createTopic, produceRaw, readTopic, spawnTs, type TestDatabase, uniqueName } from '../support';
import { adapter, adapterEnv, adaptersUnderTest, committedOffset, startConsumer } from './support';

const fixture = fileURLToPath(new URL('./fixtures/consumer.ts', import.meta.url));

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe.each(adaptersUnderTest())('inbox delivery (%s)', (name) => {
  const subject = adapter(name);

  it('the same message id produced twice at different offsets applies one effect', async () => {
    const topic = uniqueName('inbox_dup');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    const ids = ['a', 'b', 'a', 'c', 'b', 'a'];
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    await using handle = await startConsumer(subject, db, {
      consumer,
      topics: [topic],
      handler: async (message, { client }) => {
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [
          `${consumer}:${message.id}`,
        ]);
      },
    });
    await waitFor(
      'the consumer to reach the end',
      async () => (await positionTotal(db.pool, db.schema, consumer)) === 6,
    );
    // A later copy in a later batch is a duplicate too.
    await produceRaw(topic, [{ value: 'a again', headers: { 'message-id': 'a' } }]);
    await waitFor(
      'the late duplicate',
      async () => (await positionTotal(db.pool, db.schema, consumer)) === 7,
    );
    await handle.stop();
    const mine = (await effects(db.pool, db.schema)).filter((e) => e.startsWith(`${consumer}:`));
    expect(mine).toEqual([`${consumer}:a`, `${consumer}:b`, `${consumer}:c`]);
    await waitFor('the broker offset commit', async () => (await committedOffset(consumer, topic)) === 7n);
  });

  it('redelivery after a SIGKILL between DB commit and offset commit applies effects once', async () => {
    const topic = uniqueName('inbox_crash');
    const consumer = uniqueName('c');
    const ids = ['k1', 'k2', 'k3'].map((id) => `${consumer}-${id}`);
    await createTopic(topic, 1);
    await produceRaw(
      topic,
      ids.map((id) => ({ value: id, headers: { 'message-id': id } })),
    );
    const child = spawnTs(fixture, {
      env: {
        ...adapterEnv(subject),
        INBOX_SCHEMA: db.schema,
        INBOX_CONSUMER: consumer,
        INBOX_TOPIC: topic,
        INBOX_PAUSE_BEFORE_OFFSET_COMMIT: '1',
      },
    });
    await child.waitForLine(/db-committed/, 90_000);
    await child.kill('SIGKILL');
    // The database has the effects, the broker has no offset yet: the batch will be redelivered.
    expect((await effects(db.pool, db.schema)).filter((e) => ids.includes(e))).toEqual(ids);
    expect(await committedOffset(consumer, topic)).toBe(-1n);

    let redelivered = 0;
    await using _handle = await startConsumer(subject, db, {
      consumer,
      topics: [topic],
      handler: async (message, { client }) => {
        redelivered++;
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
      },
    });
    await waitFor(
      'the restarted consumer to commit the offset',
      async () => (await committedOffset(consumer, topic)) === 3n,
    );
    expect(redelivered).toBe(0);
    expect((await effects(db.pool, db.schema)).filter((e) => ids.includes(e))).toEqual(ids);
  });

  it('exactly one dead-letter record even if the consumer is killed right after dead-lettering', async () => {
    const topic = uniqueName('inbox_crash_dlq');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    await produceRaw(topic, [
      { value: 'p', headers: { 'message-id': 'poison-1' } },
      { value: 'ok', headers: { 'message-id': `${consumer}-after` } },
    ]);
    const child = spawnTs(fixture, {
      env: {
        ...adapterEnv(subject),
        INBOX_SCHEMA: db.schema,
        INBOX_CONSUMER: consumer,
        INBOX_TOPIC: topic,
        INBOX_PAUSE_BEFORE_OFFSET_COMMIT: '1',
      },
    });
    await child.waitForLine(/db-committed/, 90_000);
    await child.kill('SIGKILL');
    expect(await deadLetterRows(db.pool, db.schema, `${topic}.dlq`)).toHaveLength(1);

    const restarted = spawnTs(fixture, {
      env: { ...adapterEnv(subject), INBOX_SCHEMA: db.schema, INBOX_CONSUMER: consumer, INBOX_TOPIC: topic },
    });
    try {
      await waitFor(
        'the restarted consumer',
        async () => (await positionTotal(db.pool, db.schema, consumer)) === 2,
      );
      await waitFor('the offset commit', async () => (await committedOffset(consumer, topic)) === 2n);
    } finally {
      await restarted.kill('SIGTERM');
    }
    expect(await deadLetterRows(db.pool, db.schema, `${topic}.dlq`)).toHaveLength(1);
    expect((await effects(db.pool, db.schema)).filter((e) => e === `${consumer}-after`)).toHaveLength(1);
  });

  it('a poison message reaches the dead-letter topic exactly once through the outbox relay, with the documented headers', async () => {
    await using own = await createInboxDatabase();
    const topic = uniqueName('inbox_e2e');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    await createTopic(`${topic}.dlq`, 1);
    await produceRaw(topic, [
      { key: 'order-7', value: '{"broken":', headers: { 'message-id': 'evt-7' } },
      { value: '{}', headers: { 'message-id': 'evt-8' } },
    ]);
    await using _relay = await subject.createOutboxRelay({ pool: own.pool, schema: own.schema }).start();
    await using _consumer = await startConsumer(subject, own, {
      consumer,
      topics: [topic],
      retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10, jitter: 0 },
      handler: async (message) => {
        JSON.parse(message.value!.toString('utf8'));
      },
    });
    await waitFor('both messages', async () => (await positionTotal(own.pool, own.schema, consumer)) === 2);
    const records = await readTopic(`${topic}.dlq`, { minMessages: 1, timeoutMs: 60_000 });
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record.key?.toString()).toBe('order-7');
    expect(record.value?.toString()).toBe('{"broken":');
    const headers = Object.fromEntries(
      Object.entries(record.headers).map(([header, value]) => [header, value.toString()]),
    );
    expect(headers).toMatchObject({
      [deadLetterHeaders.reason]: 'handler-failed',
      [deadLetterHeaders.attempts]: '2',
      [deadLetterHeaders.originTopic]: topic,
      [deadLetterHeaders.originPartition]: '0',
      [deadLetterHeaders.originOffset]: '0',
      [deadLetterHeaders.messageId]: 'evt-7',
    });
    expect(headers[deadLetterHeaders.error]).toMatch(/SyntaxError/);
    expect(headers['message-id']).toMatch(/^dlq-[0-9a-f]{32}$/);
    // Exactly once: nothing more arrives after a further wait.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await readTopic(`${topic}.dlq`)).toHaveLength(1);
  });
});
