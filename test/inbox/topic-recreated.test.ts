// Invariant 7: a topic deleted and recreated under the same name while its consumer was stopped leaves
// the consumer's stored position beyond the new log's end. The consumer must neither loop (seek past
// the end, get reset by the broker, claim, seek again) nor skip the new log's messages silently: by
// default it pauses that partition and says so, the rest keeps flowing, and after an operator reset
// every new message is processed once; with the reset policy it does so by itself.
import { fileURLToPath } from 'node:url';
import type { StartedHandle } from '@onceflow/core';
import { isOnceflowError, type OnceflowError } from '@onceflow/core';
import { createInboxConsumer, type KafkajsInboxConsumerOptions } from '@onceflow/kafkajs';
import { createOnceflowAdmin } from '@onceflow/postgres';
import type { Kafka } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { createTopic, produceRaw, spawnTs, type TestDatabase, testKafka, uniqueName } from '../support';
import { createInboxDatabase, waitFor } from './helpers';

const cli = fileURLToPath(new URL('../../packages/cli/bin/onceflow.js', import.meta.url));

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

async function recreateTopic(topic: string, partitions: number): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic], timeout: 30_000 });
    // Deletion completes in the background: the name is free once creating it succeeds.
    for (let attempt = 0; ; attempt++) {
      try {
        if (
          await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
        )
          return;
      } catch (error) {
        if (attempt > 100) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Messages with fresh ids `<prefix>-<i>` into one partition. */
async function produce(topic: string, partition: number, prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  await produceRaw(
    topic,
    ids.map((id) => ({ value: id, partition, headers: { 'message-id': id } })),
  );
  return ids;
}

/** A kafkajs client whose consumers count the batches they start per topic-partition. */
function countingKafka(batches: Map<string, number>): Kafka {
  const kafka = testKafka();
  return Object.assign(Object.create(kafka) as Kafka, {
    consumer: (config: Parameters<Kafka['consumer']>[0]) => {
      const consumer = kafka.consumer(config);
      consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
        const key = `${payload.topic}[${payload.partition}]`;
        batches.set(key, (batches.get(key) ?? 0) + 1);
      });
      return consumer;
    },
  });
}

describe('a topic deleted and recreated while its consumer was stopped', () => {
  async function scenario(options: Partial<KafkajsInboxConsumerOptions> = {}) {
    const db: TestDatabase = await createInboxDatabase();
    cleanup.push(() => db.drop());
    const recreated = uniqueName('recreated');
    const other = uniqueName('other');
    const consumer = uniqueName('c');
    await createTopic(recreated, 2);
    await createTopic(other, 1);
    for (const topic of [recreated, other]) await createTopic(`${topic}.dlq`, 1);
    const errors: unknown[] = [];
    const batches = new Map<string, number>();
    const start = (): Promise<StartedHandle> =>
      createInboxConsumer({
        kafka: countingKafka(batches),
        pool: db.pool,
        schema: db.schema,
        consumer,
        topics: [recreated, other],
        pruneIntervalMs: 0,
        consumerConfig: { maxWaitTimeInMs: 100 },
        onError: (error) => errors.push(error),
        handler: async (message, { client }) => {
          await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
        },
        ...options,
      }).start();
    const effectCounts = async (): Promise<Map<string, number>> => {
      const { rows } = await db.pool.query<{ message_id: string; n: number }>(
        `SELECT message_id, count(*)::int AS n FROM "${db.schema}".effects GROUP BY message_id`,
      );
      return new Map(rows.map((row) => [row.message_id, row.n]));
    };
    const processed = async (ids: readonly string[]): Promise<boolean> => {
      const counts = await effectCounts();
      return ids.every((id) => counts.has(id));
    };

    // The old log: 30 messages in partition 0, none in partition 1.
    const old = await produce(recreated, 0, 'old', 30);
    const first = await start();
    await waitFor('the old log to be processed', () => processed(old));
    await first.stop();

    await recreateTopic(recreated, 2);
    // The new log is shorter than the stored position in partition 0 (10 < 30); partition 1 and the
    // other topic have no stored position the new log could contradict.
    const behind = await produce(recreated, 0, 'new-p0', 10);
    const fine = await produce(recreated, 1, 'new-p1', 10);
    return {
      db,
      recreated,
      other,
      consumer,
      errors,
      batches,
      start,
      effectCounts,
      processed,
      old,
      behind,
      fine,
    };
  }

  it('by default the partition is paused with OF_POSITION_AHEAD, without a loop; the rest flows; after reset-positions every new message is processed once', async () => {
    const s = await scenario();
    const second = await s.start();
    cleanup.push(() => second.stop());
    const otherIds = await produce(s.other, 0, 'other', 10);
    await waitFor('the other partition and topic to flow', () => s.processed([...s.fine, ...otherIds]));
    await waitFor('the position to be reported ahead', async () =>
      s.errors.some((error) => isOnceflowError(error, 'OF_POSITION_AHEAD')),
    );
    // A hot loop would start a batch of the partition dozens of times a second; paused, it starts none.
    const batchesAtReport = s.batches.get(`${s.recreated}[0]`) ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const batchesAfter = s.batches.get(`${s.recreated}[0]`) ?? 0;
    expect(batchesAtReport).toBeLessThanOrEqual(2);
    expect(batchesAfter - batchesAtReport).toBe(0);
    const reports = s.errors.filter((error): error is OnceflowError =>
      isOnceflowError(error, 'OF_POSITION_AHEAD'),
    );
    expect(reports).toHaveLength(1);
    expect(reports[0]!.details).toMatchObject({
      consumer: s.consumer,
      topic: s.recreated,
      partition: 0,
      storedPosition: '30',
      logEnd: '10',
    });
    expect(reports[0]!.message).toMatch(/onceflow inbox reset-positions/);
    expect(await s.processed(s.behind.slice(0, 1))).toBe(false);

    // The operator's way out: stop, reset, start again.
    await second.stop();
    const [refusedWhileRunning, forced] = await (async () => {
      const third = await s.start();
      try {
        const args = ['--consumer', s.consumer, '--topic', s.recreated, '--to', 'earliest'];
        return [await runCli(s.db, args), await runCli(s.db, [...args, '--force'])];
      } finally {
        await third.stop();
      }
    })();
    expect(refusedWhileRunning.code, refusedWhileRunning.output).toBe(1);
    expect(refusedWhileRunning.output).toMatch(/live member/);
    expect(forced.code, forced.output).toBe(0);
    expect(forced.output).toMatch(new RegExp(`${s.recreated}\\[0\\]: 30 -> 0`));
    expect(forced.output).toMatch(/committed offsets were left as they are/);
    const reset = await runCli(s.db, ['--consumer', s.consumer, '--topic', s.recreated, '--to', 'earliest']);
    expect(reset.code, reset.output).toBe(0);
    expect(reset.output).toMatch(new RegExp(`${s.recreated}\\[0\\]: 0 -> 0`));
    expect(reset.output).toMatch(/committed offsets of .* set to the same positions/);
    const positions = await createOnceflowAdmin({ pool: s.db.pool, schema: s.db.schema }).listPositions({
      consumer: s.consumer,
      topic: s.recreated,
    });
    expect(positions.map((p) => [p.partition, p.nextOffset])).toEqual([
      [0, '0'],
      [1, '0'],
    ]);

    const fourth = await s.start();
    cleanup.push(() => fourth.stop());
    const later = await produce(s.recreated, 0, 'later-p0', 5);
    await waitFor('every new message', () => s.processed([...s.behind, ...s.fine, ...later, ...otherIds]));
    await fourth.stop();
    const counts = await s.effectCounts();
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(counts.size).toBe(s.old.length + s.behind.length + s.fine.length + later.length + otherIds.length);
  });

  it("with onPositionAhead 'reset-to-earliest' the consumer resets the partition itself and processes the new log once", async () => {
    const s = await scenario({ onPositionAhead: 'reset-to-earliest' });
    const second = await s.start();
    cleanup.push(() => second.stop());
    await waitFor('the new log', () => s.processed([...s.behind, ...s.fine]));
    const later = await produce(s.recreated, 0, 'later-p0', 5);
    await waitFor('later messages', () => s.processed(later));
    await second.stop();
    const counts = await s.effectCounts();
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(counts.size).toBe(s.old.length + s.behind.length + s.fine.length + later.length);
    const reports = s.errors.filter((error): error is OnceflowError =>
      isOnceflowError(error, 'OF_POSITION_AHEAD'),
    );
    expect(reports.map((error) => error.details.resetTo)).toEqual(['0']);
  });
});

async function runCli(db: TestDatabase, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawnTs(cli, { args: ['inbox', 'reset-positions', '--schema', db.schema, ...args] });
  const code = await new Promise<number | null>((resolve) => child.child.once('exit', resolve));
  return { code, output: child.output() };
}
