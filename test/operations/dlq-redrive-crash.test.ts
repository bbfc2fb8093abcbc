// A consumer that crashes during a redrive: killed inside the handler of the redrive copy, then
// killed after committing it but before committing the broker offset. The redriven message's effect
// is written exactly once, and the dead letter ends `redriven`.
import { fileURLToPath } from 'node:url';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { createOnceflowAdmin } from '@onceflow/postgres';
import { expect, it } from 'vitest';
import { createInboxDatabase, waitFor } from '../inbox/helpers';
import { createTopic, produceRaw, spawnTs, testKafka, uniqueName } from '../support';
import { cliOk, createRedriveTables, deadLetterState, effectRows } from './helpers';

const fixture = fileURLToPath(new URL('./fixtures/redrive-consumer.ts', import.meta.url));

it('redrive exactly once across a consumer crash inside the redriven handler and one between its database commit and offset commit', async () => {
  await using db = await createInboxDatabase();
  await createRedriveTables(db.pool, db.schema);
  const topic = uniqueName('ops_redrive_crash');
  const consumer = uniqueName('c');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  await db.pool.query(`INSERT INTO "${db.schema}".poisoned VALUES ('evt-p')`);
  await produceRaw(topic, [
    { key: 'k1', value: 'one', headers: { 'message-id': 'evt-a' } },
    { key: 'k2', value: 'poison', headers: { 'message-id': 'evt-p' } },
  ]);
  await using _relay = await createOutboxRelay({
    pool: db.pool,
    kafka: testKafka(),
    schema: db.schema,
  }).start();
  const env = { INBOX_SCHEMA: db.schema, INBOX_CONSUMER: consumer, INBOX_TOPIC: topic };
  const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });

  // 1. The message is dead-lettered; after the fix it is redriven, and the consumer dies inside the
  //    handler of the copy: its transaction (effect and the redrive's completion) is rolled back.
  const first = spawnTs(fixture, { env: { ...env, CRASH_IN_REDRIVE_HANDLER: '1' } });
  try {
    await first.waitForLine(/consumer-started/);
    await waitFor(
      'the dead letter',
      async () => (await deadLetterState(db.pool, db.schema, consumer, 'evt-p')) === 'dead',
    );
    await db.pool.query(`DELETE FROM "${db.schema}".poisoned`);
    await cliOk('dlq', 'redrive', '--schema', db.schema, '--consumer', consumer, '--yes');
    await first.waitForLine(/redrive-handler-running evt-p/);
  } finally {
    await first.kill();
  }
  await waitFor('the killed transaction to end', async () => {
    const { rows } = await db.pool.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND query LIKE '%effects%'`,
    );
    return rows.length === 0;
  });
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-a:original']);
  expect(await deadLetterState(db.pool, db.schema, consumer, 'evt-p')).toBe('redrive_requested');

  // 2. The next instance runs the copy, commits, and dies before the broker offset commit.
  const second = spawnTs(fixture, { env: { ...env, PAUSE_BEFORE_OFFSET_COMMIT: '1' } });
  try {
    await second.waitForLine(/db-committed/, 90_000);
  } finally {
    await second.kill();
  }
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-a:original', 'evt-p:redrive']);
  expect(await deadLetterState(db.pool, db.schema, consumer, 'evt-p')).toBe('redriven');

  // 3. A third instance gets the copy again from Kafka, and the redrive is asked for twice more: no
  //    second effect.
  expect((await admin.redriveDeadLetters({ consumer, dryRun: false })).redriven).toEqual([]);
  const third = spawnTs(fixture, { env });
  try {
    await third.waitForLine(/consumer-started/);
    // Partition order: once a later message is handled, the redelivered copy was dealt with before it.
    await produceRaw(topic, [{ key: 'k3', value: 'after', headers: { 'message-id': 'evt-z' } }]);
    await waitFor('a later message', async () =>
      (await effectRows(db.pool, db.schema)).includes('evt-z:original'),
    );
  } finally {
    await third.kill();
  }
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-a:original', 'evt-p:redrive', 'evt-z:original']);
  expect(await admin.getDeadLetter({ consumer, messageId: 'evt-p' })).toMatchObject({
    state: 'redriven',
    redrives: 1,
  });
});
