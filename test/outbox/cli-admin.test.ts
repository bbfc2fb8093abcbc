// The operator commands of the CLI, run in-process: each is one file over the admin library.
import { createOnceflowAdmin, createPgOutboxStore } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, main } from '../../packages/cli/src/index';
import { createTestDatabase, databaseUrl, type TestDatabase, uniqueName } from '../support';
import { enqueueCommitted } from './helpers';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { DATABASE_URL: databaseUrl() },
  };
  const code = await main(['node', 'onceflow', ...args], io);
  return { code, out, err };
}

describe('onceflow operator commands', () => {
  it('outbox parked lists what the relay parked; outbox unpark returns it to the queue', async () => {
    const [id] = await enqueueCommitted(db, [{ topic: 't', key: 'k', value: 'v' }]);
    const store = createPgOutboxStore(db.pool, { schema: db.schema });
    const leases = await store.acquireLanes('cli-test', store.laneCount, 10_000);
    const [row] = await store.claim(
      leases.map((l) => l.lane),
      10,
      [],
    );
    await store.settle({
      leases,
      published: [],
      parked: [{ lane: row!.lane, seq: row!.seq, error: 'too large' }],
    });
    await store.releaseLanes(leases);

    const listed = await run('outbox', 'parked', '--schema', db.schema, '--json');
    expect(listed.code, listed.err.join('\n')).toBe(0);
    expect(listed.out.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ eventId: id, topic: 't', key: 'k', error: 'too large' }),
    ]);
    const neither = await run('outbox', 'unpark', '--schema', db.schema);
    expect(neither.code).toBe(2);
    expect(neither.err.join('\n')).toMatch(/name the events to unpark, or pass --all/);
    const unparked = await run('outbox', 'unpark', id!, '--schema', db.schema);
    expect(unparked.out).toEqual(['unparked 1 event']);
    expect((await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).parked).toBe(0);
  });

  it('inbox positions lists the stored positions of a consumer', async () => {
    const consumer = uniqueName('c');
    await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).resetPositions({
      consumer,
      topic: 'orders',
      positions: [{ partition: 2, nextOffset: '42' }],
    });
    const listed = await run('inbox', 'positions', '--schema', db.schema, '--consumer', consumer);
    expect(listed.code, listed.err.join('\n')).toBe(0);
    expect(listed.out).toEqual([`${consumer}  orders[2]  next=42`]);
  });

  it('a schema that was never migrated fails with OF_SCHEMA_MISMATCH and the hint to migrate', async () => {
    const status = await run('status', '--schema', uniqueName('never_migrated'));
    expect(status.code).toBe(1);
    expect(status.err.join('\n')).toMatch(/OF_SCHEMA_MISMATCH/);
    expect(status.err.join('\n')).toMatch(/run `onceflow migrate` first/);
  });
});
