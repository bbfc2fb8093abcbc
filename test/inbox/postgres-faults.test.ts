import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from '@onceflow/postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChildHandle,
  createTopic,
  produceRaw,
  spawnTs,
  startPrivatePostgres,
  type TestDatabase,
  uniqueName,
} from '../support';
import { createInboxDatabase, deadLetterRows, effects, positionTotal, waitFor } from './helpers';

const fixture = fileURLToPath(new URL('./fixtures/consumer-pg-fault.ts', import.meta.url));

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const alive = (child: ChildHandle): boolean =>
  child.child.exitCode === null && child.child.signalCode === null;

// Invariant 6 for the consumer: a backend terminated under a transaction (restart, failover,
// pg_terminate_backend) is retried as an outage, never a crash and never a handler attempt; and
// invariants 1 and 2 across it: every message has exactly one effect, none is dead-lettered.
describe('inbox consumer when its database connections are killed', () => {
  async function run(holdMode: 'idle' | 'query'): Promise<void> {
    const topic = uniqueName('inbox_kill');
    const consumer = uniqueName('kill');
    const appName = uniqueName('of_kill');
    await createTopic(topic, 1);
    const releaseFile = join(mkdtempSync(join(tmpdir(), 'onceflow-release-')), 'release');
    const ids = Array.from({ length: 20 }, (_, i) => `${holdMode}-${i}`);
    await produceRaw(
      topic,
      ids.map((id) => ({ key: id, value: id, headers: { 'message-id': id } })),
    );
    const child = spawnTs(fixture, {
      env: {
        INBOX_SCHEMA: db.schema,
        INBOX_CONSUMER: consumer,
        INBOX_TOPIC: topic,
        APP_NAME: appName,
        HOLD_ID: ids[5]!,
        HOLD_MODE: holdMode,
        RELEASE_FILE: releaseFile,
      },
    });
    try {
      await child.waitForLine(/^holding$/);
      const { rows } = await db.pool.query<{ killed: boolean }>(
        'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
        [appName],
      );
      expect(rows.length).toBeGreaterThan(0);
      writeFileSync(releaseFile, '');
      await waitFor('every message to be processed', async () => {
        if (!alive(child))
          throw new Error(
            `the consumer exited (code ${child.child.exitCode}, signal ${child.child.signalCode}):\n${child.output().slice(-3000)}`,
          );
        return (await positionTotal(db.pool, db.schema, consumer)) === ids.length;
      });
      expect(alive(child), child.output()).toBe(true);
      const written = (await effects(db.pool, db.schema)).filter((id) => id.startsWith(`${holdMode}-`));
      // The held attempt was rolled back whole; the retry ran without holding.
      expect(written.sort()).toEqual([...ids].sort());
      expect(await deadLetterRows(db.pool, db.schema, `${topic}.dlq`)).toEqual([]);
      expect(child.output()).toMatch(/^error attempts=0: /m);
    } finally {
      await child.kill('SIGKILL');
      rmSync(dirname(releaseFile), { recursive: true, force: true });
    }
  }

  it('a backend terminated while the handler holds its transaction between queries: process alive, effects once, no dead letter', async () => {
    await run('idle');
  });

  it('a backend terminated during a query of the handler: process alive, effects once, no dead letter', async () => {
    await run('query');
  });

  it('Postgres restarted fast and then immediately while the consumer works through 2,000 messages: process alive, effects once, no dead letter', async () => {
    await using server = await startPrivatePostgres();
    const pool = new pg.Pool({ connectionString: server.url, max: 2 });
    pool.on('error', () => undefined);
    try {
      const schema = uniqueName('inbox_restart');
      await migrate(pool, { schema });
      await pool.query(`CREATE TABLE "${schema}".effects (message_id text NOT NULL)`);
      const topic = uniqueName('inbox_restart');
      const consumer = uniqueName('restart');
      await createTopic(topic, 3);
      const ids = Array.from({ length: 2_000 }, (_, i) => `r-${i}`);
      await produceRaw(
        topic,
        ids.map((id) => ({ key: id, value: id, headers: { 'message-id': id } })),
      );
      const child = spawnTs(fixture, {
        env: {
          DATABASE_URL: server.url,
          INBOX_SCHEMA: schema,
          INBOX_CONSUMER: consumer,
          INBOX_TOPIC: topic,
          APP_NAME: 'restart',
          HOLD_ID: 'none',
          HOLD_MODE: 'idle',
        },
      });
      try {
        await waitFor('the first effects', async () => (await positionTotal(pool, schema, consumer)) > 0);
        await server.restart({ mode: 'fast' });
        await server.restart({ mode: 'immediate' });
        await waitFor('every message to be processed', async () => {
          if (!alive(child))
            throw new Error(
              `the consumer exited (code ${child.child.exitCode}):\n${child.output().slice(-3000)}`,
            );
          return (await positionTotal(pool, schema, consumer).catch(() => 0)) === ids.length;
        });
        expect(alive(child), child.output()).toBe(true);
        const { rows } = await pool.query<{ message_id: string }>(
          `SELECT message_id FROM "${schema}".effects`,
        );
        expect(rows.map((row) => row.message_id).sort()).toEqual([...ids].sort());
        expect(await deadLetterRows(pool, schema, `${topic}.dlq`)).toEqual([]);
      } finally {
        await child.kill('SIGKILL');
      }
    } finally {
      await pool.end();
    }
  });
});
