// A dead-letter topic that does not exist is found at start, not at the first poison message: with
// auto topic creation off (the norm in production) the relay could not publish the dead letter, and
// nothing would say why until someone looked at the parked events.
import { isOnceflowError } from '@onceflow/core';
import { createInboxConsumer, type InboxConsumerOptions } from '@onceflow/kafkajs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTopic, type TestDatabase, testKafka, uniqueName } from '../support';
import { createInboxDatabase } from './helpers';

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

function consumerOf(topics: string[], options: Partial<InboxConsumerOptions> = {}) {
  return createInboxConsumer({
    kafka: testKafka(),
    pool: db.pool,
    schema: db.schema,
    consumer: uniqueName('c'),
    topics,
    pruneIntervalMs: 0,
    handler: async () => {},
    ...options,
  });
}

async function partitionsOf(topic: string): Promise<number | undefined> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return undefined;
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return topics[0]?.partitions.length;
  } finally {
    await admin.disconnect();
  }
}

it('start fails with OF_TOPIC_MISSING naming each missing dead-letter topic and the command that creates it', async () => {
  const withDlq = uniqueName('has_dlq');
  const without = uniqueName('no_dlq');
  await createTopic(withDlq, 1);
  await createTopic(`${withDlq}.dlq`, 1);
  await createTopic(without, 3);
  let thrown: unknown;
  try {
    const handle = await consumerOf([withDlq, without]).start();
    await handle.stop();
  } catch (error) {
    thrown = error;
  }
  expect(isOnceflowError(thrown, 'OF_TOPIC_MISSING')).toBe(true);
  if (!isOnceflowError(thrown)) return;
  expect(thrown.details.topics).toEqual([`${without}.dlq`]);
  expect(thrown.message).toContain(`"${without}.dlq" does not exist`);
  expect(thrown.message).toContain(
    `kafka-topics.sh --bootstrap-server <brokers> --create --topic ${without}.dlq --partitions 3`,
  );
  expect(thrown.message).toMatch(/onMissingDeadLetterTopic: 'create'/);
  expect(await partitionsOf(`${without}.dlq`)).toBeUndefined();
});

it("with onMissingDeadLetterTopic 'create' start creates the missing dead-letter topics, as many partitions as the source", async () => {
  const source = uniqueName('create_dlq');
  const shared = uniqueName('shared_dlq');
  await createTopic(source, 2);
  const handle = await consumerOf([source], { onMissingDeadLetterTopic: 'create' }).start();
  await handle.stop();
  expect(await partitionsOf(`${source}.dlq`)).toBe(2);
  // A configured dead-letter topic is the one checked.
  const other = uniqueName('configured_dlq');
  await createTopic(other, 1);
  const second = await consumerOf([other], {
    deadLetterTopic: shared,
    onMissingDeadLetterTopic: 'create',
  }).start();
  await second.stop();
  expect(await partitionsOf(shared)).toBe(1);
});
