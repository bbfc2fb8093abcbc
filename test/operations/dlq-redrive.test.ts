// Dead letters redriven through `onceflow dlq`: each redrive re-runs the handler exactly once with
// the original message id, however often the redrive is asked for or its copy delivered.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type InboxTransactionMessage, inboxTransactionChannel, redriveHeader } from '@onceflow/core';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { createOnceflowAdmin } from '@onceflow/postgres';
import { expect, it } from 'vitest';
import { createInboxDatabase, positionTotal, startConsumer, waitFor } from '../inbox/helpers';
import { createTopic, produceRaw, readTopic, testKafka, uniqueName } from '../support';
import { cliOk, createRedriveTables, deadLetterState, effectRows, logEnd, runCli } from './helpers';

it('a dead letter redriven by `onceflow dlq redrive` runs its handler once with its original id; a dry run, a second redrive and duplicated copies change nothing', async () => {
  await using db = await createInboxDatabase();
  await createRedriveTables(db.pool, db.schema);
  const topic = uniqueName('ops_redrive');
  const consumer = uniqueName('c');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  // What the metrics channel says the consumer's committed transactions did.
  const counted = { processed: 0, duplicates: 0, deadLettered: 0 };
  const count = (message: unknown) => {
    const m = message as InboxTransactionMessage;
    if (m.consumer !== consumer || m.outcome !== 'committed') return;
    counted.processed += m.processed;
    counted.duplicates += m.duplicates;
    counted.deadLettered += m.deadLettered;
  };
  subscribe(inboxTransactionChannel, count);
  await using _subscription = {
    [Symbol.asyncDispose]: async () => void unsubscribe(inboxTransactionChannel, count),
  };
  await db.pool.query(`INSERT INTO "${db.schema}".poisoned VALUES ('evt-1')`);
  await produceRaw(topic, [
    { key: 'order-1', value: '{"n":1}', headers: { 'message-id': 'evt-1', 'x-trace': 'abc' } },
    { key: 'order-2', value: '{"n":2}', headers: { 'message-id': 'evt-2' } },
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
    handler: async (message, { client }) => {
      const { rowCount } = await client.query(`SELECT 1 FROM "${db.schema}".poisoned WHERE message_id = $1`, [
        message.id,
      ]);
      if (rowCount) throw new Error(`poison message ${message.id}`);
      await client.query(`INSERT INTO "${db.schema}".effects (message_id, instance) VALUES ($1, $2)`, [
        message.id,
        message.headers[redriveHeader] === undefined ? 'original' : 'redrive',
      ]);
    },
  });
  await waitFor('both messages', async () => (await positionTotal(db.pool, db.schema, consumer)) === 2);
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-2:original']);
  const common = ['--schema', db.schema];

  // The dead letter, as `dlq list` and `dlq show` give it.
  const listed = (await cliOk('dlq', 'list', ...common, '--consumer', consumer, '--json')).map((line) =>
    JSON.parse(line),
  );
  expect(listed).toEqual([
    expect.objectContaining({
      consumer,
      messageId: 'evt-1',
      topic,
      partition: 0,
      offset: '0',
      key: 'order-1',
      reason: 'handler-failed',
      errorCode: 'OF_HANDLER_FAILED',
      attempts: 2,
      state: 'dead',
      payloadBytes: 7,
    }),
  ]);
  expect(listed[0].errorMessage).toMatch(/poison message evt-1/);
  const table = await cliOk('dlq', 'list', ...common, '--consumer', consumer);
  expect(table[0]).toMatch(/^CONSUMER\s+MESSAGE ID\s+FROM\s+REASON\s+ATTEMPTS\s+STATE/);
  expect(table[1]).toContain(`${topic}[0]@0`);
  expect(table.at(-1)).toBe('1 dead letter');
  const shown = JSON.parse(
    (await cliOk('dlq', 'show', ...common, '--consumer', consumer, '--id', 'evt-1', '--json'))[0]!,
  );
  expect(shown).toMatchObject({ payload: '{"n":1}', headers: { 'message-id': 'evt-1', 'x-trace': 'abc' } });
  const missing = await runCli('dlq', 'show', ...common, '--consumer', consumer, '--id', 'nope');
  expect(missing.code).toBe(1);
  expect(missing.err.join('\n')).toMatch(/OF_NOT_FOUND/);

  // A dry run (the default) lists it and changes nothing.
  const dry = await cliOk('dlq', 'redrive', ...common, '--consumer', consumer);
  expect(dry.at(-1)).toMatch(/^dry run: 1 dead letter would be redriven; pass --yes/);
  expect(await deadLetterState(db.pool, db.schema, consumer, 'evt-1')).toBe('dead');
  const { rows: queued } = await db.pool.query(`SELECT 1 FROM "${db.schema}".outbox WHERE topic = $1`, [
    topic,
  ]);
  expect(queued).toHaveLength(0);

  // The cause fixed, the redrive runs the handler once, with the original id.
  await db.pool.query(`DELETE FROM "${db.schema}".poisoned`);
  const done = JSON.parse(
    (await cliOk('dlq', 'redrive', ...common, '--consumer', consumer, '--yes', '--json'))[0]!,
  );
  expect(done).toMatchObject({ dryRun: false, redriven: [expect.objectContaining({ messageId: 'evt-1' })] });
  await waitFor(
    'the redrive',
    async () => (await deadLetterState(db.pool, db.schema, consumer, 'evt-1')) === 'redriven',
  );
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-2:original', 'evt-1:redrive']);

  // A second redrive finds nothing to do.
  const again = JSON.parse(
    (
      await cliOk('dlq', 'redrive', ...common, '--consumer', consumer, '--id', 'evt-1', '--yes', '--json')
    )[0]!,
  );
  expect(again).toEqual({
    dryRun: false,
    redriven: [],
    skipped: [{ messageId: 'evt-1', state: 'redriven' }],
  });

  // The copy as published, delivered twice more, and the original once more: all duplicates.
  const [copy] = await readTopic(topic, { minMessages: 3, timeoutMs: 30_000 }).then((records) =>
    records.filter((record) => record.headers[redriveHeader] !== undefined),
  );
  expect(copy?.headers['message-id']?.toString()).toBe('evt-1');
  expect(copy?.headers['x-trace']?.toString()).toBe('abc');
  expect(copy?.key?.toString()).toBe('order-1');
  const token = copy!.headers[redriveHeader]!.toString();
  await produceRaw(topic, [
    { key: 'order-1', value: '{"n":1}', headers: { 'message-id': 'evt-1', [redriveHeader]: token } },
    { key: 'order-1', value: '{"n":1}', headers: { 'message-id': 'evt-1', [redriveHeader]: token } },
    { key: 'order-1', value: '{"n":1}', headers: { 'message-id': 'evt-1' } },
  ]);
  // The relay publishes transactionally: its commit marker takes an offset too, so wait for the log end.
  const end = await logEnd(topic);
  await waitFor('the duplicates', async () => (await positionTotal(db.pool, db.schema, consumer)) === end);
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-2:original', 'evt-1:redrive']);
  const letter = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).getDeadLetter({
    consumer,
    messageId: 'evt-1',
  });
  expect(letter).toMatchObject({ state: 'redriven', redrives: 1, redriveToken: token });
  // The metrics count the redriven copy as processed, and only the three later copies as duplicates.
  expect(counted).toEqual({ processed: 2, duplicates: 3, deadLettered: 1 });
});

it('a redrive whose handler fails again dead-letters the message again, and a later redrive runs it once', async () => {
  await using db = await createInboxDatabase();
  await createRedriveTables(db.pool, db.schema);
  const topic = uniqueName('ops_redrive_again');
  const consumer = uniqueName('c');
  await createTopic(topic, 1);
  await createTopic(`${topic}.dlq`, 1);
  await db.pool.query(`INSERT INTO "${db.schema}".poisoned VALUES ('evt-9')`);
  await produceRaw(topic, [{ key: 'k', value: 'v', headers: { 'message-id': 'evt-9' } }]);
  await using _relay = await createOutboxRelay({
    pool: db.pool,
    kafka: testKafka(),
    schema: db.schema,
  }).start();
  await using _consumer = await startConsumer(db, {
    consumer,
    topics: [topic],
    retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10, jitter: 0 },
    handler: async (message, { client }) => {
      const { rowCount } = await client.query(`SELECT 1 FROM "${db.schema}".poisoned WHERE message_id = $1`, [
        message.id,
      ]);
      if (rowCount) throw new Error(`still poison ${message.id}`);
      await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
    },
  });
  const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
  await waitFor(
    'the dead letter',
    async () => (await deadLetterState(db.pool, db.schema, consumer, 'evt-9')) === 'dead',
  );
  // Redriven before the cause is fixed: it fails again and is dead again.
  expect((await admin.redriveDeadLetters({ consumer, dryRun: false })).redriven).toHaveLength(1);
  await waitFor('the failed redrive', async () => (await positionTotal(db.pool, db.schema, consumer)) >= 2);
  await waitFor(
    'the second dead letter',
    async () => (await deadLetterState(db.pool, db.schema, consumer, 'evt-9')) === 'dead',
  );
  expect(await effectRows(db.pool, db.schema)).toEqual([]);
  const records = await readTopic(`${topic}.dlq`, { minMessages: 2, timeoutMs: 30_000 });
  expect(records).toHaveLength(2);
  await db.pool.query(`DELETE FROM "${db.schema}".poisoned`);
  expect(
    (await admin.redriveDeadLetters({ consumer, messageIds: ['evt-9'], dryRun: false })).redriven,
  ).toHaveLength(1);
  await waitFor(
    'the redrive',
    async () => (await deadLetterState(db.pool, db.schema, consumer, 'evt-9')) === 'redriven',
  );
  expect(await effectRows(db.pool, db.schema)).toEqual(['evt-9:null']);
  expect(await admin.getDeadLetter({ consumer, messageId: 'evt-9' })).toMatchObject({ redrives: 2 });
});
