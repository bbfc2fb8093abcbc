import { isOnceflowError, type OnceflowError, type StartedHandle } from '@onceflow/core';
import { createInboxConsumer } from '@onceflow/kafkajs';
import { migrate } from '@onceflow/postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTopic,
  type PrivatePostgres,
  produceRaw,
  startPrivatePostgres,
  testKafka,
  uniqueName,
} from '../support';
import { waitFor } from './helpers';

// Invariant 6 at start: a consumer started before its database (as orchestrators do) waits and says
// so, within a limit the user sets, and can be stopped while it waits; it never crashes on it.
describe('inbox consumer started while Postgres is down', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    // A step that throws at once must not skip the others (the private server's disposal last).
    for (const step of cleanup.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => undefined);
  });

  /** A private server with a migrated schema and an effects table, stopped. */
  async function downServer(): Promise<{ server: PrivatePostgres; pool: pg.Pool; schema: string }> {
    const server = await startPrivatePostgres();
    cleanup.push(() => server.dispose());
    const schema = uniqueName('startup');
    const setup = new pg.Pool({ connectionString: server.url, max: 1 });
    // pool.end() resolves before its connection has closed: the server's stop may still reach it.
    setup.on('error', () => undefined);
    await migrate(setup, { schema });
    await setup.query(`CREATE TABLE "${schema}".effects (message_id text NOT NULL)`);
    await setup.end();
    await server.stop('fast');
    const pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    return { server, pool, schema };
  }

  function consumerOn(
    pool: pg.Pool,
    schema: string,
    topic: string,
    waits: unknown[],
    startupTimeoutMs?: number,
  ) {
    return createInboxConsumer({
      kafka: testKafka(),
      pool,
      schema,
      consumer: uniqueName('startup'),
      topics: [topic],
      retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 200, jitter: 0 },
      pruneIntervalMs: 0,
      // This test is about Postgres; the start-up check of dead-letter topics has tests of its own.
      onMissingDeadLetterTopic: 'create',
      ...(startupTimeoutMs === undefined ? {} : { startupTimeoutMs }),
      onError: (error) => waits.push(error),
      consumerConfig: { maxWaitTimeInMs: 100 },
      handler: async (message, { client }) => {
        await client.query(`INSERT INTO "${schema}".effects (message_id) VALUES ($1)`, [message.id]);
      },
    });
  }

  it('start() waits with a report per attempt naming the server, and consumes once Postgres is up', async () => {
    const { server, pool, schema } = await downServer();
    const topic = uniqueName('startup');
    await createTopic(topic);
    await produceRaw(topic, [{ value: 'a', headers: { 'message-id': 'a' } }]);
    const waits: unknown[] = [];
    const consumer = consumerOn(pool, schema, topic, waits);
    cleanup.push(() => consumer.stop());
    const started = consumer.start();
    let handle: StartedHandle | undefined;
    void started.then(
      (h) => {
        handle = h;
      },
      () => undefined,
    );
    await waitFor('two reported attempts', async () => waits.length >= 2);
    expect(handle).toBeUndefined();
    const first = waits[0] as OnceflowError;
    expect(first.code).toBe('OF_UNAVAILABLE');
    expect(first.message).toContain(`waiting for Postgres at 127.0.0.1:${server.port} (database postgres`);
    expect(first.message).toMatch(/ECONNREFUSED/);
    await server.start();
    await started;
    await waitFor('the message to be handled', async () => {
      const { rows } = await pool.query(`SELECT 1 FROM "${schema}".effects`);
      return rows.length === 1;
    });
  });

  it('with startupTimeoutMs, start() gives up with OF_UNAVAILABLE naming the server and what to check', async () => {
    const { server, pool, schema } = await downServer();
    const waits: unknown[] = [];
    const consumer = consumerOn(pool, schema, uniqueName('never'), waits, 300);
    const error = await consumer.start().catch((e: unknown) => e);
    expect(isOnceflowError(error, 'OF_UNAVAILABLE'), String(error)).toBe(true);
    expect((error as Error).message).toContain(`Postgres at 127.0.0.1:${server.port}`);
    expect((error as Error).message).toMatch(/Check that it runs and accepts connections/);
  });

  it('stop() interrupts a start() that waits for Postgres: it rejects with OF_STOPPED', async () => {
    const { pool, schema } = await downServer();
    const waits: unknown[] = [];
    const consumer = consumerOn(pool, schema, uniqueName('never'), waits);
    const started = consumer.start().catch((e: unknown) => e);
    await waitFor('a reported attempt', async () => waits.length >= 1);
    await consumer.stop();
    expect(isOnceflowError(await started, 'OF_STOPPED')).toBe(true);
    await expect(consumer.start()).rejects.toThrow(/already called/);
  });
});
