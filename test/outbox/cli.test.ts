import { fileURLToPath } from 'node:url';
import { createOnceflowAdmin } from '@onceflow/postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, databaseUrl, spawnTs, uniqueName } from '../support';
import { enqueueCommitted, orderByKey, readPublished, waitForDrain } from './helpers';

const cli = fileURLToPath(new URL('../../packages/cli/bin/onceflow.js', import.meta.url));

describe('onceflow CLI', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function run(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = spawnTs(cli, { args });
    const code = await new Promise<number | null>((resolve) => child.child.once('exit', resolve));
    return { code, output: child.output() };
  }

  it('migrate creates the schema, status reports an empty outbox, a bad schema name is refused', async () => {
    const schema = uniqueName('cli_schema');
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    cleanup.push(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    });
    const migrated = await run(['migrate', '--schema', schema]);
    expect(migrated.code, migrated.output).toBe(0);
    expect(migrated.output).toMatch(/applied 0002_outbox/);
    const status = await run(['status', '--schema', schema, '--json']);
    expect(status.code, status.output).toBe(0);
    expect(JSON.parse(status.output.trim().split('\n').at(-1)!)).toMatchObject({
      schema,
      backlog: 0,
      parked: 0,
    });
    const bad = await run(['status', '--schema', 'Robert"); DROP TABLE x']);
    expect(bad.code).toBe(2);
  });

  it('relay publishes the backlog and stops gracefully on SIGTERM, giving its lanes back', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const topic = uniqueName('cli-relay');
    await createTopic(topic, 2);
    const events = Array.from({ length: 20 }, (_, i) => ({ topic, key: `k${i % 4}`, value: `v${i}` }));
    await enqueueCommitted(db, events);

    const relay = spawnTs(cli, { args: ['relay', '--schema', db.schema, '--metrics-interval-ms', '0'] });
    cleanup.push(() => relay.kill('SIGKILL'));
    await relay.waitForLine(/^relay .* started/);
    await waitForDrain(db);
    expect(await relay.kill('SIGTERM')).toBe(0);
    expect(relay.output()).toMatch(/relay stopped after publishing 20 events/);
    expect((await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).ownedLanes).toBe(
      0,
    );

    const byKey = orderByKey(await readPublished(topic, events.length));
    for (const key of ['k0', 'k1', 'k2', 'k3'])
      expect(byKey.get(key)).toEqual(events.filter((e) => e.key === key).map((e) => e.value));
  });
});
