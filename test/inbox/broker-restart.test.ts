import { isOnceflowError } from '@onceflow/core';
import { afterEach, expect, it } from 'vitest';
import { createTopic, produceRaw, uniqueName } from '../support';
import { createInboxDatabase, effects, positionTotal, startConsumer, waitFor } from './helpers';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

// Invariant 6: kafkajs stops a consumer for good after an error it does not consider retriable (here a
// TypeError thrown inside the batch), which would leave a live process that consumes nothing.
it('a kafka consumer that kafkajs would leave crashed is restarted and reported, and consumes again', async () => {
  const db = await createInboxDatabase();
  cleanup.push(() => db.drop());
  const topic = uniqueName('consumer_crash');
  const consumer = uniqueName('c');
  await createTopic(topic, 1);
  await produceRaw(
    topic,
    ['a', 'b', 'c'].map((id) => ({ value: id, headers: { 'message-id': id } })),
  );
  const reported: unknown[] = [];
  let thrown = false;
  const handle = await startConsumer(db, {
    consumer,
    topics: [topic],
    onError: (error) => reported.push(error),
    handler: async (message, { client }) => {
      await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
    },
    testHooks: {
      beforeOffsetCommit() {
        if (thrown) return;
        thrown = true;
        throw new TypeError('a bug in an observer');
      },
    },
  });
  cleanup.push(() => handle.stop());
  await waitFor('the crash to be reported', async () =>
    reported.some((error) => isOnceflowError(error, 'OF_UNAVAILABLE') && /crashed/.test(error.message)),
  );
  await produceRaw(
    topic,
    ['d', 'e'].map((id) => ({ value: id, headers: { 'message-id': id } })),
  );
  await waitFor(
    'the messages after the crash',
    async () => (await positionTotal(db.pool, db.schema, consumer)) === 5,
  );
  await handle.stop();
  expect(await effects(db.pool, db.schema)).toEqual(['a', 'b', 'c', 'd', 'e']);
});
