// The operator commands on real data: outbox status|parked|unpark|drop, inbox status (lag against
// Kafka's high watermark), keys show|purge; each with --json and its human table.
import { createOutboxRelay } from '@onceflow/kafkajs';
import { createOnceflowAdmin, createPgInboxStore, createPgOutboxStore } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCommitted } from '../outbox/helpers';
import {
  createTestDatabase,
  createTopic,
  produceRaw,
  readTopic,
  type TestDatabase,
  testKafka,
  uniqueName,
} from '../support';
import { cliOk, runCli } from './helpers';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Parks every waiting outbox event, as the relay does with events the broker refuses. */
async function parkAll(error: string): Promise<void> {
  const store = createPgOutboxStore(db.pool, { schema: db.schema });
  const leases = await store.acquireLanes('ops-test', store.laneCount, 10_000);
  const rows = await store.claim(
    leases.map((l) => l.lane),
    100,
    [],
  );
  await store.settle({
    leases,
    published: [],
    parked: rows.map((row) => ({ lane: row.lane, seq: row.seq, error })),
  });
  await store.releaseLanes(leases);
}

describe('onceflow outbox', () => {
  it('status, parked by key and topic, drop (dry run first), then unpark and the relay publishes in order', async () => {
    const kept = uniqueName('ops_kept');
    const junk = uniqueName('ops_junk');
    await createTopic(kept, 1);
    const [first] = await enqueueCommitted(db, [
      { topic: kept, key: 'k1', value: 'one' },
      { topic: junk, key: 'k2', value: 'junk' },
    ]);
    await parkAll('refused');
    const [second] = await enqueueCommitted(db, [{ topic: kept, key: 'k1', value: 'two' }]);
    const common = ['--schema', db.schema];

    const status = JSON.parse((await cliOk('outbox', 'status', ...common, '--json'))[0]!);
    expect(status).toMatchObject({ backlog: 1, parked: 2 });
    // By topic name.
    expect(status.topics).toEqual([
      expect.objectContaining({ topic: junk, backlog: 0, parked: 1, oldestAgeMs: null }),
      expect.objectContaining({ topic: kept, backlog: 1, parked: 1 }),
    ]);
    expect(status.lanes).toHaveLength(16);
    const human = await cliOk('outbox', 'status', ...common);
    expect(human[0]).toMatch(/backlog 1, oldest .*, parked 2, live relays 0, owned lanes 0\/16/);
    expect(human).toContainEqual(expect.stringMatching(new RegExp(`^${kept}\\s+1\\s+\\S+ \\S+\\s+1$`)));

    const byKey = (await cliOk('outbox', 'parked', ...common, '--key', 'k1', '--json')).map((l) =>
      JSON.parse(l),
    );
    expect(byKey).toEqual([expect.objectContaining({ eventId: first, topic: kept, key: 'k1' })]);
    const byTopic = (await cliOk('outbox', 'parked', ...common, '--topic', junk, '--json')).map((l) =>
      JSON.parse(l),
    );
    expect(byTopic).toEqual([expect.objectContaining({ topic: junk, key: 'k2' })]);

    const unnamed = await runCli('outbox', 'drop', ...common);
    expect(unnamed.code).toBe(2);
    expect(unnamed.err.join('\n')).toMatch(/--id, --key or --topic/);
    const dry = await cliOk('outbox', 'drop', ...common, '--topic', junk);
    expect(dry[0]).toMatch(/^EVENT ID\s+TOPIC\s+KEY\s+PARKED AT\s+ERROR$/);
    expect(dry.at(-1)).toBe('dry run: 1 parked event would be dropped; pass --yes to drop them');
    expect((await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).parked).toBe(2);
    const dropped = JSON.parse(
      (await cliOk('outbox', 'drop', ...common, '--topic', junk, '--yes', '--json'))[0]!,
    );
    expect(dropped).toMatchObject({ dryRun: false, dropped: [expect.objectContaining({ topic: junk })] });
    expect((await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).parked).toBe(1);

    // Unparked by key, the parked event and the one held behind it are published, in order.
    expect(await cliOk('outbox', 'unpark', ...common, '--key', 'k1')).toEqual(['unparked 1 event']);
    await using _relay = await createOutboxRelay({
      pool: db.pool,
      kafka: testKafka(),
      schema: db.schema,
    }).start();
    const records = await readTopic(kept, { minMessages: 2, timeoutMs: 60_000 });
    expect(records.map((r) => [r.headers['message-id']?.toString(), r.value?.toString()])).toEqual([
      [first, 'one'],
      [second, 'two'],
    ]);
  });
});

describe('onceflow inbox status', () => {
  it("shows each consumer's positions against the high watermark (lag), its dead letters and the generations", async () => {
    const topic = uniqueName('ops_lag');
    const consumer = uniqueName('c');
    await createTopic(topic, 2);
    await produceRaw(topic, [
      { value: 'a', partition: 0 },
      { value: 'b', partition: 0 },
      { value: 'c', partition: 0 },
      { value: 'd', partition: 1 },
    ]);
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    await createPgInboxStore(db.pool, { schema: db.schema }).declareRetention(consumer, 3_600_000);
    await admin.resetPositions({
      consumer,
      topic,
      positions: [
        { partition: 0, nextOffset: '1' },
        { partition: 1, nextOffset: '1' },
      ],
    });
    await db.pool.query(
      `INSERT INTO "${db.schema}".dead_letter (consumer, message_id, topic, kafka_partition, kafka_offset, reason, error_code, error_message, attempts)
       VALUES ($1, 'm-1', $2, 0, 0, 'handler-failed', 'OF_HANDLER_FAILED', 'boom', 3)`,
      [consumer, topic],
    );
    const common = ['--schema', db.schema, '--consumer', consumer];

    const status = JSON.parse((await cliOk('inbox', 'status', ...common, '--json'))[0]!);
    expect(status.consumers).toEqual([
      expect.objectContaining({
        consumer,
        retentionSeconds: 3600,
        lag: '2',
        deadLetters: { dead: 1, redriveRequested: 0, redriven: 0 },
      }),
    ]);
    expect(status.positions).toEqual([
      expect.objectContaining({
        topic,
        partition: 0,
        nextOffset: '1',
        highWatermark: '3',
        lag: '2',
        state: 'ok',
      }),
      expect.objectContaining({
        topic,
        partition: 1,
        nextOffset: '1',
        highWatermark: '1',
        lag: '0',
        state: 'ok',
      }),
    ]);
    expect(status.generations[0]).toMatchObject({ current: true });

    const human = await cliOk('inbox', 'status', ...common);
    expect(human[0]).toMatch(/^CONSUMER\s+RETENTION\s+STARTED AT\s+LAG\s+DEAD\s+REDRIVE PENDING\s+REDRIVEN$/);
    expect(human[1]).toMatch(new RegExp(`^${consumer}\\s+3600 s\\s+\\S+\\s+2\\s+1\\s+0\\s+0$`));
    expect(human).toContainEqual(
      expect.stringMatching(new RegExp(`^${consumer}\\s+${topic}\\[0\\]\\s+1\\s+3\\s+2\\s`)),
    );

    // A position beyond the log end (a recreated topic) is pointed out.
    await admin.resetPositions({ consumer, topic, positions: [{ partition: 1, nextOffset: '7' }] });
    const ahead = await cliOk('inbox', 'status', ...common);
    expect(ahead).toContainEqual(expect.stringMatching(/\[1\]\s+7\s+1\s+-6\s+.*position beyond the log end/));

    const offline = JSON.parse((await cliOk('inbox', 'status', ...common, '--no-kafka', '--json'))[0]!);
    expect(offline.positions[0]).toMatchObject({ highWatermark: null, lag: null, state: 'unknown' });
  });
});

describe('onceflow keys', () => {
  it('show one key or a scope, purge completed keys by scope and age (dry run first), never keys in progress', async () => {
    const scope = uniqueName('tenant');
    const insert = (key: string, state: string, ageHours: number) =>
      db.pool.query(
        `INSERT INTO "${db.schema}".idempotency_keys
           (request_id, scope, key, fingerprint, route, state, recovery_point, response_status, created_at, updated_at, expires_at)
         VALUES (gen_random_uuid(), $1, $2, '\\x00', 'POST /charges', $3, 'started', $4,
                 now() - make_interval(hours => $5), now() - make_interval(hours => $5), now() + interval '1 day')`,
        [scope, key, state, state === 'completed' ? 201 : null, ageHours],
      );
    await insert('old', 'completed', 48);
    await insert('new', 'completed', 0);
    await insert('running', 'in_progress', 72);
    const common = ['--schema', db.schema, '--scope', scope];

    const one = JSON.parse((await cliOk('keys', 'show', ...common, '--key', 'old', '--json'))[0]!);
    expect(one).toMatchObject({
      scope,
      key: 'old',
      state: 'completed',
      responseStatus: 201,
      route: 'POST /charges',
    });
    const human = await cliOk('keys', 'show', ...common, '--key', 'old');
    expect(human).toContain('state:           completed');
    const missing = await runCli('keys', 'show', ...common, '--key', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err.join('\n')).toMatch(/OF_NOT_FOUND: no idempotency key nope/);
    const listed = await cliOk('keys', 'show', ...common);
    expect(listed.at(-1)).toBe('3 keys');

    const dry = JSON.parse((await cliOk('keys', 'purge', ...common, '--older-than', '1d', '--json'))[0]!);
    expect(dry).toMatchObject({ dryRun: true, count: 1, keys: [expect.objectContaining({ key: 'old' })] });
    expect(await cliOk('keys', 'show', ...common)).toContain('3 keys');
    expect((await cliOk('keys', 'purge', ...common, '--older-than', '1d', '--yes')).at(-1)).toBe(
      'purged 1 completed key',
    );
    expect((await cliOk('keys', 'purge', ...common, '--yes')).at(-1)).toBe('purged 1 completed key');
    const left = (await cliOk('keys', 'show', ...common, '--json')).map((line) => JSON.parse(line).key);
    expect(left).toEqual(['running']);
  });
});
