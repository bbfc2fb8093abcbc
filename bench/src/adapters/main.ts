// Kafka client comparison (`pnpm bench:adapters`, on Node >= 22.22 for @platformatic/kafka): the inbox
// consumer's drain throughput and the relay's drain for @onceflow/kafkajs and
// @onceflow/platformatic-kafka in one run on one Node, and the failover time of a killed and restarted
// @platformatic/kafka consumer with and without static membership (group.instance.id). Prints the
// figures as JSON lines; asserts nothing.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { StartedHandle } from '@onceflow/core';
import type { InboxHandler } from '@onceflow/inbox';
import * as kafkajsAdapter from '@onceflow/kafkajs';
import * as platformaticAdapter from '@onceflow/platformatic-kafka';
import type { TransactionContext } from '@onceflow/postgres';
import { enqueue, migrate } from '@onceflow/postgres';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const messages = Number(process.env.BENCH_MESSAGES ?? '20000');
const events = Number(process.env.BENCH_EVENTS ?? '10000');
const partitions = 6;
const kafka = new Kafka({ brokers, clientId: 'onceflow-bench-adapters', logLevel: logLevel.NOTHING });
const name = (prefix: string): string =>
  `bench_adapters_${prefix}_${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const print = (figure: Record<string, unknown>): void => console.log(JSON.stringify(figure));

type Adapter = 'kafkajs' | 'platformatic';

async function schema(pool: pg.Pool): Promise<string> {
  const s = name('s');
  await migrate(pool, { schema: s });
  return s;
}

async function createTopic(topic: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

async function produce(topic: string, count: number, prefix: string): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < count; i += 1000)
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
        key: `k${i + j}`,
        value: JSON.stringify({ i: i + j }),
        headers: { 'message-id': `${prefix}-${i + j}` },
      })),
    });
  await producer.disconnect();
}

async function positions(pool: pg.Pool, s: string, consumer: string): Promise<Map<number, bigint>> {
  const { rows } = await pool.query<{ kafka_partition: number; next_offset: string }>(
    `SELECT kafka_partition, next_offset FROM "${s}".inbox_position WHERE consumer = $1`,
    [consumer],
  );
  return new Map(rows.map((row) => [row.kafka_partition, BigInt(row.next_offset)]));
}

const sum = (map: Map<number, bigint>): number => Number([...map.values()].reduce((a, b) => a + b, 0n));

function inboxConsumer(
  adapter: Adapter,
  pool: pg.Pool,
  s: string,
  consumer: string,
  topic: string,
  groupInstanceId?: string,
) {
  const common = {
    pool,
    schema: s,
    consumer,
    topics: [topic],
    pruneIntervalMs: 0,
    onMissingDeadLetterTopic: 'create' as const,
    onError: () => undefined,
  };
  const handler: InboxHandler<TransactionContext> = async (message, { client }) => {
    await client.query(`INSERT INTO "${s}".effects (message_id) VALUES ($1)`, [message.id]);
  };
  return adapter === 'kafkajs'
    ? kafkajsAdapter.createInboxConsumer<TransactionContext>({ ...common, handler, kafka })
    : platformaticAdapter.createInboxConsumer<TransactionContext>({
        ...common,
        handler,
        kafka: { bootstrapBrokers: brokers, clientId: 'onceflow-bench' },
        ...(groupInstanceId === undefined ? {} : { groupInstanceId }),
      });
}

async function waitUntil(probe: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function inboxDrain(adapter: Adapter, pool: pg.Pool): Promise<void> {
  const s = await schema(pool);
  await pool.query(`CREATE TABLE "${s}".effects (message_id text NOT NULL)`);
  const topic = name('in');
  await createTopic(topic);
  await produce(topic, messages, 'm');
  const consumer = name('c');
  const started = performance.now();
  const handle: StartedHandle = await inboxConsumer(adapter, pool, s, consumer, topic).start();
  await waitUntil(async () => sum(await positions(pool, s, consumer)) >= messages);
  const ms = performance.now() - started;
  await handle.stop();
  print({
    figure: `inbox_batch_${adapter}`,
    messages,
    ms: Math.round(ms),
    per_s: Math.round((messages * 1000) / ms),
  });
  await pool.query(`DROP SCHEMA "${s}" CASCADE`);
}

async function relayDrain(adapter: Adapter, pool: pg.Pool): Promise<void> {
  const s = await schema(pool);
  const topic = name('out');
  await createTopic(topic);
  const client = await pool.connect();
  try {
    for (let i = 0; i < events; i += 500) {
      await client.query('BEGIN');
      for (let j = i; j < Math.min(events, i + 500); j++)
        await enqueue(client, { topic, key: `k${j % 100}`, value: { j } }, { schema: s });
      await client.query('COMMIT');
    }
  } finally {
    client.release();
  }
  const started = performance.now();
  const relay =
    adapter === 'kafkajs'
      ? kafkajsAdapter.createOutboxRelay({ pool, kafka, schema: s, metricsIntervalMs: 0 })
      : platformaticAdapter.createOutboxRelay({
          pool,
          kafka: { bootstrapBrokers: brokers, clientId: 'onceflow-bench' },
          schema: s,
          metricsIntervalMs: 0,
        });
  const handle = await relay.start();
  await waitUntil(async () => {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${s}".outbox`);
    return rows[0]!.n === 0;
  });
  const ms = performance.now() - started;
  await handle.stop();
  print({
    figure: `relay_drain_${adapter}`,
    events,
    ms: Math.round(ms),
    per_s: Math.round((events * 1000) / ms),
  });
  await pool.query(`DROP SCHEMA "${s}" CASCADE`);
}

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);

/** A consumer process of the failover figure; SIGKILLed by the parent. */
function member(env: Record<string, string>) {
  return spawn(
    process.execPath,
    ['--conditions=@onceflow/source', '--import', require.resolve('tsx'), self, 'member'],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
}

/**
 * Two members consume a steady stream; one is SIGKILLed and started again at once under the same
 * name. Failover time: from the kill until every partition has advanced again.
 */
async function failover(pool: pg.Pool, staticMembership: boolean): Promise<void> {
  const s = await schema(pool);
  await pool.query(`CREATE TABLE "${s}".effects (message_id text NOT NULL)`);
  const topic = name('fo');
  await createTopic(topic);
  const consumer = name('c');
  const env = (instance: string): Record<string, string> => ({
    BENCH_SCHEMA: s,
    BENCH_TOPIC: topic,
    BENCH_CONSUMER: consumer,
    ...(staticMembership ? { BENCH_INSTANCE: instance } : {}),
  });
  const producer = kafka.producer();
  await producer.connect();
  let running = true;
  let n = 0;
  const load = (async () => {
    while (running) {
      await producer.send({
        topic,
        messages: Array.from({ length: partitions * 2 }, (_, p) => ({
          partition: p % partitions,
          value: 'x',
          headers: { 'message-id': `f-${n++}` },
        })),
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const a = member(env('a'));
  const b = member(env('b'));
  await waitUntil(async () => (await positions(pool, s, consumer)).size === partitions);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const before = await positions(pool, s, consumer);
  const killed = performance.now();
  a.kill('SIGKILL');
  const restarted = member(env('a'));
  await waitUntil(async () => {
    const now = await positions(pool, s, consumer);
    return [...before].every(([partition, offset]) => (now.get(partition) ?? 0n) > offset + 20n);
  });
  const ms = performance.now() - killed;
  print({
    figure: `failover_platformatic_${staticMembership ? 'static' : 'dynamic'}_membership`,
    ms: Math.round(ms),
  });
  running = false;
  await load;
  await producer.disconnect();
  for (const child of [b, restarted]) child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  for (const child of [b, restarted]) child.kill('SIGKILL');
  await pool.query(`DROP SCHEMA "${s}" CASCADE`);
}

if (process.argv[2] === 'member') {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 5 });
  pool.on('error', () => undefined);
  const handle = await inboxConsumer(
    'platformatic',
    pool,
    process.env.BENCH_SCHEMA!,
    process.env.BENCH_CONSUMER!,
    process.env.BENCH_TOPIC!,
    process.env.BENCH_INSTANCE,
  ).start();
  process.once('SIGTERM', () => void handle.stop().then(() => process.exit(0)));
} else {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  pool.on('error', () => undefined);
  print({ node: process.version, messages, events, partitions });
  for (const adapter of ['kafkajs', 'platformatic'] as const) await inboxDrain(adapter, pool);
  for (const adapter of ['kafkajs', 'platformatic'] as const) await relayDrain(adapter, pool);
  await failover(pool, false);
  await failover(pool, true);
  await pool.end();
}
