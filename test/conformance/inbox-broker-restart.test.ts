// Conformance, invariants 1, 2 and 6 across a broker crash: the broker (a private one: the shared
// broker is never touched) is SIGKILLed while the consumer works through a stream that keeps being
// produced, and started again. Every message produced has exactly one effect afterwards, and the
// consumer resumed on its own. How long it took after the broker answered again is printed (timing
// belongs to the report, not to an assertion).
import { performance } from 'node:perf_hooks';
import { logLevel, type Producer } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { createInboxDatabase, waitFor } from '../inbox/helpers';
import { type PrivateKafkaBroker, startPrivateKafka, uniqueName } from '../support';
import { descriptor } from './adapters';
import { adaptersUnderTest } from './support';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

/** Produces batches of fresh ids until stopped; a batch the broker did not take is sent again until it does. */
function produceSteadily(producer: Producer, topic: string, batchSize: number, everyMs: number) {
  const sent: string[] = [];
  let next = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const ids = Array.from({ length: batchSize }, () => `m-${next++}`);
      for (;;) {
        try {
          await producer.send({
            topic,
            acks: -1,
            messages: ids.map((id) => ({ key: id, value: id, headers: { 'message-id': id } })),
          });
          break;
        } catch {
          // The broker is away: the same ids again, so that every id ends up in the log at least once.
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      sent.push(...ids);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    sent,
    async stop(): Promise<void> {
      running = false;
      await done;
    },
  };
}

describe.each(adaptersUnderTest())('inbox consumer across a broker crash (%s)', (name) => {
  it('a broker SIGKILLed and restarted under load: every message has exactly one effect and the consumer resumes on its own', async () => {
    const broker: PrivateKafkaBroker = await startPrivateKafka();
    cleanup.push(() => broker.stop());
    const db = await createInboxDatabase();
    cleanup.push(() => db.drop());
    const topic = uniqueName('broker_restart');
    const consumer = uniqueName('c');
    await broker.createTopic(topic, 3);
    await broker.createTopic(`${topic}.dlq`, 1);

    // The producer retries on its own as well; it is idempotent, but duplicates would be harmless anyway.
    const producer = broker
      .client({ clientId: 'restart-producer', logLevel: logLevel.NOTHING })
      .producer({ idempotent: true, allowAutoTopicCreation: false });
    await producer.connect();
    cleanup.push(() => producer.disconnect());

    let lastEffectAt = 0;
    const errors: unknown[] = [];
    const handle = await descriptor(name, broker.brokers)
      .createInboxConsumer({
        pool: db.pool,
        schema: db.schema,
        consumer,
        topics: [topic],
        pruneIntervalMs: 0,
        tuning: { maxWaitMs: 100 },
        onError: (error) => errors.push(error),
        handler: async (message, { client }) => {
          await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [message.id]);
          lastEffectAt = performance.now();
        },
      })
      .start();
    cleanup.push(() => handle.stop());

    const effectCount = async (): Promise<number> => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${db.schema}".effects`,
      );
      return rows[0]!.n;
    };

    const load = produceSteadily(producer, topic, 20, 50);
    await waitFor('the consumer to be mid-stream', async () => (await effectCount()) >= 300);
    await broker.kill('SIGKILL');
    // Down for a while, as a crashed broker is, while the producer keeps trying.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await broker.restart();
    const answeredAt = performance.now();
    await waitFor(
      'the consumer to make progress after the restart',
      async () => lastEffectAt > answeredAt,
      120_000,
    );
    const resumeMs = Math.round(lastEffectAt - answeredAt);
    console.log(
      `[broker restart, ${name}] the inbox consumer resumed ${resumeMs} ms after the broker answered again (${errors.length} errors reported meanwhile)`,
    );

    // More traffic after the restart, then everything must be processed.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await load.stop();
    const sent = new Set(load.sent);
    await waitFor(
      'every produced message to have its effect',
      async () => (await effectCount()) >= sent.size,
      120_000,
    );
    await handle.stop();

    const { rows } = await db.pool.query<{ message_id: string; n: number }>(
      `SELECT message_id, count(*)::int AS n FROM "${db.schema}".effects GROUP BY message_id`,
    );
    expect(rows.filter((row) => row.n > 1).map((row) => row.message_id)).toEqual([]);
    expect(new Set(rows.map((row) => row.message_id))).toEqual(sent);
  });
});
