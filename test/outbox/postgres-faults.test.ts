import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enqueue, migrate, readOutboxStatus } from '@onceflow/postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChildHandle,
  createTopic,
  type PrivatePostgres,
  spawnTs,
  startPrivatePostgres,
  uniqueName,
} from '../support';
import { eventually, idCounts, orderByKey, readPublished } from './helpers';

const relayProcess = fileURLToPath(new URL('./fixtures/relay-pg-fault-process.ts', import.meta.url));

/** True while the child has not exited. */
const alive = (child: ChildHandle): boolean =>
  child.child.exitCode === null && child.child.signalCode === null;

/** Resolves once the outbox is empty; fails at once, with its output, if the relay process exited. */
async function drained(pool: pg.Pool, schema: string, relay: ChildHandle): Promise<void> {
  await eventually(
    async () => {
      if (!alive(relay))
        throw new Error(
          `the relay process exited (code ${relay.child.exitCode}):\n${relay.output().slice(-3000)}`,
        );
      return (await readOutboxStatus(pool, { schema })).backlog === 0;
    },
    'the outbox to drain',
    120_000,
  );
}

// Invariant 6 for the relay: a Postgres restart is an outage to wait out, never a reason to exit, and
// invariant 4 across it: every committed event reaches Kafka, in commit order per key.
describe('outbox relay across Postgres restarts', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    // A step that throws at once must not skip the others (the private server's disposal last).
    for (const step of cleanup.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => undefined);
  });

  async function setup(): Promise<{ server: PrivatePostgres; pool: pg.Pool; schema: string; topic: string }> {
    const server = await startPrivatePostgres();
    cleanup.push(() => server.dispose());
    const pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => undefined);
    cleanup.push(() => pool.end());
    const schema = uniqueName('relay_pg');
    await migrate(pool, { schema });
    const topic = uniqueName('relay-pg');
    await createTopic(topic, 3);
    return { server, pool, schema, topic };
  }

  function spawnRelay(url: string, schema: string, env: Record<string, string> = {}): ChildHandle {
    const child = spawnTs(relayProcess, { env: { DATABASE_URL: url, SCHEMA: schema, ...env } });
    cleanup.push(() => child.kill('SIGKILL'));
    return child;
  }

  async function enqueueAll(
    pool: pg.Pool,
    schema: string,
    events: { topic: string; key: string; value: string }[],
  ) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      for (const event of events) await enqueue(client, event, { schema });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }

  // The settle of a published batch runs while the next batch is published. Here it is held up by a
  // lock on the lanes until the server shuts down under it, while the relay sits in the next batch's
  // publish: the settle fails with 57P01 when nothing awaits it.
  it('a settle that fails because Postgres restarts while the next batch is published does not kill the relay; both batches are published', async () => {
    const { server, pool, schema, topic } = await setup();
    const releaseDir = mkdtempSync(join(tmpdir(), 'onceflow-release-'));
    cleanup.push(async () => rmSync(releaseDir, { recursive: true, force: true }));
    const releaseFile = join(releaseDir, 'release');
    const relay = spawnRelay(server.url, schema, {
      BATCH_SIZE: '1',
      LEASE_TTL_MS: '60000',
      STALL_KEY: 'k',
      STALL_NTH: '2',
      RELEASE_FILE: releaseFile,
    });
    await relay.waitForLine(/^started /);
    // A first event opens the relay's publisher and confirms its leases, which the lock below would block.
    await enqueueAll(pool, schema, [{ topic, key: 'warm-up', value: 'warm-up' }]);
    await relay.waitForLine(/^published 1$/);
    const locker = new pg.Client({ connectionString: server.url });
    locker.on('error', () => undefined);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`SELECT lane FROM "${schema}".outbox_lanes FOR UPDATE`);
    // One key, batch size 1: the first event is published and its settle waits for the lanes' lock;
    // the second, claimed meanwhile, stalls before its publish.
    await enqueueAll(pool, schema, [
      { topic, key: 'k', value: 'first' },
      { topic, key: 'k', value: 'second' },
    ]);
    await relay.waitForLine(/^stalled$/);
    await server.restart({ mode: 'fast' });
    await locker.end().catch(() => undefined);
    writeFileSync(releaseFile, '');
    await drained(pool, schema, relay);
    expect(alive(relay), relay.output()).toBe(true);
    expect(relay.output()).toMatch(/^error outbox relay .*: .*(terminat|shutting down)/m);
    const published = await readPublished(topic, 3);
    expect(orderByKey(published).get('k')).toEqual(['first', 'second']);
    expect(idCounts(published).size).toBe(3);
  });

  it('a relay draining a backlog survives a fast and an immediate restart; every event is published, in order per key', async () => {
    const { server, pool, schema, topic } = await setup();
    const events = Array.from({ length: 3_000 }, (_, i) => ({ topic, key: `k${i % 20}`, value: `v${i}` }));
    for (let i = 0; i < events.length; i += 500) await enqueueAll(pool, schema, events.slice(i, i + 500));
    const relay = spawnRelay(server.url, schema, { BATCH_SIZE: '100' });
    await relay.waitForLine(/^published /);
    await server.restart({ mode: 'fast' });
    await relay.waitForLine(/^error /);
    await server.restart({ mode: 'immediate' });
    await drained(pool, schema, relay);
    expect(alive(relay), relay.output()).toBe(true);
    const published = await readPublished(topic, events.length);
    expect(idCounts(published).size).toBe(events.length);
    const byKey = orderByKey(published);
    for (let k = 0; k < 20; k++)
      expect(byKey.get(`k${k}`)).toEqual(events.filter((e) => e.key === `k${k}`).map((e) => e.value));
  });
});
