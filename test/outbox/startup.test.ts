import { isOnceflowError, type OnceflowError } from '@onceflow/core';
import { createOutboxRelay } from '@onceflow/kafkajs';
import type { OutboxRelayHandle } from '@onceflow/outbox';
import { createOnceflowAdmin, enqueue, migrate } from '@onceflow/postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createTopic, type PrivatePostgres, startPrivatePostgres, testKafka, uniqueName } from '../support';
import { eventually, fastRelaySettings, readPublished } from './helpers';

// Invariant 6 at start: a relay started before its database waits and says so, within a limit the
// user sets, and can be stopped while it waits.
describe('outbox relay started while Postgres is down', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    // A step that throws at once must not skip the others (the private server's disposal last).
    for (const step of cleanup.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => undefined);
  });

  async function downServer(): Promise<{ server: PrivatePostgres; pool: pg.Pool; schema: string }> {
    const server = await startPrivatePostgres();
    cleanup.push(() => server.dispose());
    const schema = uniqueName('relay_startup');
    const setup = new pg.Pool({ connectionString: server.url, max: 1 });
    // pool.end() resolves before its connection has closed: the server's stop may still reach it.
    setup.on('error', () => undefined);
    await migrate(setup, { schema });
    await setup.end();
    await server.stop('fast');
    const pool = new pg.Pool({ connectionString: server.url, max: 6 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    return { server, pool, schema };
  }

  function relayOn(pool: pg.Pool, schema: string, waits: unknown[], startupTimeoutMs?: number) {
    const relay = createOutboxRelay({
      pool,
      kafka: testKafka(),
      schema,
      ...fastRelaySettings,
      ...(startupTimeoutMs === undefined ? {} : { startupTimeoutMs }),
      onError: (error) => error.details.operation === 'startup' && waits.push(error),
    });
    cleanup.push(() => relay.stop());
    return relay;
  }

  it('start() waits with a report per attempt naming the server, and publishes once Postgres is up', async () => {
    const { server, pool, schema } = await downServer();
    const waits: unknown[] = [];
    const relay = relayOn(pool, schema, waits);
    let handle: OutboxRelayHandle | undefined;
    const started = relay.start().then((h) => {
      handle = h;
    });
    started.catch(() => undefined);
    await eventually(() => waits.length >= 2, 'two reported attempts');
    expect(handle).toBeUndefined();
    const first = waits[0] as OnceflowError;
    expect(first.code).toBe('OF_UNAVAILABLE');
    expect(first.message).toContain(`outbox relay is waiting for Postgres at 127.0.0.1:${server.port}`);
    await server.start();
    await started;
    const topic = uniqueName('relay-startup');
    await createTopic(topic);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await enqueue(client, { topic, key: 'k', value: 'v' }, { schema });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await eventually(
      async () => (await createOnceflowAdmin({ pool, schema }).outboxStatus()).backlog === 0,
      'the outbox to drain',
    );
    expect((await readPublished(topic, 1)).map((record) => record.value)).toEqual(['v']);
  });

  it('with startupTimeoutMs, start() gives up with OF_UNAVAILABLE naming the server and what to check', async () => {
    const { server, pool, schema } = await downServer();
    const error = await relayOn(pool, schema, [], 300)
      .start()
      .catch((e: unknown) => e);
    expect(isOnceflowError(error, 'OF_UNAVAILABLE'), String(error)).toBe(true);
    expect((error as Error).message).toContain(`Postgres at 127.0.0.1:${server.port}`);
    expect((error as Error).message).toMatch(/Check that it runs and accepts connections/);
  });

  it('stop() interrupts a start() that waits for Postgres: it rejects with OF_STOPPED', async () => {
    const { pool, schema } = await downServer();
    const waits: unknown[] = [];
    const relay = relayOn(pool, schema, waits);
    const started = relay.start().catch((e: unknown) => e);
    await eventually(() => waits.length >= 1, 'a reported attempt');
    await relay.stop();
    expect(isOnceflowError(await started, 'OF_STOPPED')).toBe(true);
  });
});
