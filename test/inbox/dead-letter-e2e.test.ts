import { deadLetterHeaders } from '@onceflow/inbox';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { expect, it } from 'vitest';
import { createTopic, produceRaw, readTopic, testKafka, uniqueName } from '../support';
import { createInboxDatabase, positionTotal, startConsumer, waitFor } from './helpers';

it('a poison message reaches the dead-letter topic exactly once through the outbox relay, with the documented headers', async () => {
  await using db = await createInboxDatabase();
  const topic = uniqueName('inbox_e2e');
  const consumer = uniqueName('c');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  await produceRaw(topic, [
    { key: 'order-7', value: '{"broken":', headers: { 'message-id': 'evt-7' } },
    { value: '{}', headers: { 'message-id': 'evt-8' } },
  ]);
  await using _relay = await createOutboxRelay({
    pool: db.pool,
    kafka: testKafka(),
    schema: db.schema,
  }).start();
  await using _consumer = await startConsumer(db, {
    consumer,
    topics: [topic],
    retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10, jitter: 0 },
    handler: async (message) => {
      JSON.parse(message.value!.toString('utf8'));
    },
  });
  await waitFor('both messages', async () => (await positionTotal(db.pool, db.schema, consumer)) === 2);
  const records = await readTopic(`${topic}.dlq`, { minMessages: 1, timeoutMs: 60_000 });
  expect(records).toHaveLength(1);
  const record = records[0]!;
  expect(record.key?.toString()).toBe('order-7');
  expect(record.value?.toString()).toBe('{"broken":');
  const headers = Object.fromEntries(
    Object.entries(record.headers).map(([name, value]) => [name, value.toString()]),
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
});
