// The admin library the CLI and a console share: each verb on a real schema, and a schema that was
// never migrated answered with OF_SCHEMA_MISMATCH instead of Postgres's own words.
import { isOnceflowError } from '@onceflow/core';
import { createOnceflowAdmin, createPgOutboxStore, enqueue, runInTransaction } from '@onceflow/postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, databaseUrl, type TestDatabase, uniqueName } from '../support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('onceflow admin library', () => {
  it('outbox status, parked events and unparking: what the relay parked is listed and returned to the queue', async () => {
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    const ids = await runInTransaction(db.pool, async (client) => [
      await enqueue(client, { topic: 't', key: 'a', value: 'one' }, { schema: db.schema }),
      await enqueue(client, { topic: 't', key: 'b', value: 'two' }, { schema: db.schema }),
    ]);
    expect(await admin.outboxStatus()).toMatchObject({ backlog: 2, parked: 0 });
    // Park the first as the relay does: through the store, under a lease of its lane.
    const store = createPgOutboxStore(db.pool, { schema: db.schema });
    const leases = await store.acquireLanes('admin-test', store.laneCount, 10_000);
    const [row] = (
      await store.claim(
        leases.map((l) => l.lane),
        10,
        [],
      )
    ).filter((r) => r.eventId === ids[0]);
    const settled = await store.settle({
      leases,
      published: [],
      parked: [{ lane: row!.lane, seq: row!.seq, error: 'message too large' }],
    });
    await store.releaseLanes(leases);
    expect(settled.parkedAt).toBeInstanceOf(Date);

    const parked = await admin.listParkedEvents();
    expect(parked).toEqual([
      expect.objectContaining({ eventId: ids[0], topic: 't', error: 'message too large', seq: row!.seq }),
    ]);
    expect(parked[0]!.key?.toString()).toBe('a');
    expect(parked[0]!.parkedAt).toBeInstanceOf(Date);
    expect(await admin.outboxStatus()).toMatchObject({ backlog: 1, parked: 1 });
    expect(await admin.unparkEvents({ eventIds: [ids[0]!] })).toBe(1);
    expect(await admin.outboxStatus()).toMatchObject({ backlog: 2, parked: 0 });
  });

  it('positions: listed by consumer and topic; reset in one transaction, reporting before and after', async () => {
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    const consumer = uniqueName('c');
    const changes = await admin.resetPositions({
      consumer,
      topic: 'orders',
      positions: [
        { partition: 0, nextOffset: '10' },
        { partition: 1, nextOffset: '5' },
      ],
    });
    expect(changes).toEqual([
      { partition: 0, before: null, after: '10' },
      { partition: 1, before: null, after: '5' },
    ]);
    const again = await admin.resetPositions({
      consumer,
      topic: 'orders',
      positions: [{ partition: 0, nextOffset: '0' }],
      removeOthers: true,
    });
    expect(again).toEqual([
      { partition: 0, before: '10', after: '0' },
      { partition: 1, before: '5', after: null },
    ]);
    const positions = await admin.listPositions({ consumer });
    expect(positions.map(({ topic, partition, nextOffset }) => ({ topic, partition, nextOffset }))).toEqual([
      { topic: 'orders', partition: 0, nextOffset: '0' },
    ]);
    const refused = await admin
      .resetPositions({ consumer, topic: 'orders', positions: [{ partition: -1, nextOffset: 'x' }] })
      .catch((error: unknown) => error);
    expect(isOnceflowError(refused, 'OF_INVALID_ARGUMENT')).toBe(true);
  });

  it('idempotency keys are listed without their stored request or response; a bad limit is refused', async () => {
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    await db.pool.query(
      `INSERT INTO "${db.schema}".idempotency_keys (request_id, scope, key, fingerprint, route, state, recovery_point, response_status, expires_at)
       VALUES (gen_random_uuid(), 'tenant', 'k1', '\\x00', 'POST /pay', 'completed', 'started', 201, now() + interval '1 day')`,
    );
    const keys = await admin.listIdempotencyKeys({ scope: 'tenant' });
    expect(keys).toEqual([
      expect.objectContaining({
        scope: 'tenant',
        key: 'k1',
        route: 'POST /pay',
        state: 'completed',
        responseStatus: 201,
      }),
    ]);
    expect(Object.keys(keys[0]!)).not.toContain('response');
    const refused = await admin.listIdempotencyKeys({ limit: 0 }).catch((error: unknown) => error);
    expect(isOnceflowError(refused, 'OF_INVALID_ARGUMENT')).toBe(true);
  });

  it('a schema that was never migrated is answered with OF_SCHEMA_MISMATCH saying to migrate', async () => {
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const admin = createOnceflowAdmin({ pool, schema: uniqueName('never_migrated') });
      const error = await admin.outboxStatus().catch((caught: unknown) => caught);
      expect(isOnceflowError(error, 'OF_SCHEMA_MISMATCH')).toBe(true);
      expect((error as Error).message).toMatch(/onceflow migrate --schema never_migrated/);
    } finally {
      await pool.end();
    }
  });
});
