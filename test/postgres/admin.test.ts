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

  it('dead-letter verbs: list by filter, get with payload, refuse a redrive without consumer or dryRun; drop and purge refuse what they cannot scope', async () => {
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    const consumer = uniqueName('c');
    await db.pool.query(
      `INSERT INTO "${db.schema}".dead_letter
         (consumer, message_id, topic, kafka_partition, kafka_offset, key, payload, header_names, header_values,
          reason, error_code, error_message, attempts)
       VALUES ($1, 'm-1', 'orders', 0, 5, 'k', 'body', '{message-id}', ARRAY['m-1'::bytea], 'handler-failed',
               'OF_HANDLER_FAILED', 'Error: boom', 3),
              ($1, 'm-2', 'orders', 1, 9, NULL, NULL, '{}', '{}', 'too-old', 'OF_MESSAGE_TOO_OLD', 'old', 0)`,
      [consumer],
    );
    expect((await admin.listDeadLetters({ consumer })).map((d) => d.messageId)).toEqual(['m-1', 'm-2']);
    expect(await admin.listDeadLetters({ consumer, reason: 'too-old' })).toEqual([
      expect.objectContaining({
        messageId: 'm-2',
        offset: '9',
        key: null,
        payloadBytes: null,
        state: 'dead',
      }),
    ]);
    const letter = await admin.getDeadLetter({ consumer, messageId: 'm-1' });
    expect(letter?.payload?.toString()).toBe('body');
    expect(letter?.headers['message-id']?.toString()).toBe('m-1');
    expect(await admin.getDeadLetter({ consumer, messageId: 'nope' })).toBeUndefined();
    const badState = await admin
      .listDeadLetters({ state: 'gone' as 'dead' })
      .catch((error: unknown) => error);
    expect(isOnceflowError(badState, 'OF_INVALID_ARGUMENT')).toBe(true);
    const noDryRun = await admin
      .redriveDeadLetters({ consumer } as unknown as { consumer: string; dryRun: boolean })
      .catch((error: unknown) => error);
    expect(isOnceflowError(noDryRun, 'OF_INVALID_ARGUMENT')).toBe(true);
    const dry = await admin.redriveDeadLetters({ consumer, messageIds: ['m-2', 'm-9'], dryRun: true });
    expect(dry.redriven.map((d) => d.messageId)).toEqual(['m-2']);
    expect(dry.skipped).toEqual([{ messageId: 'm-9', state: 'missing' }]);
    expect((await admin.getDeadLetter({ consumer, messageId: 'm-2' }))?.state).toBe('dead');
    const unscoped = await admin.dropParkedEvents({}).catch((error: unknown) => error);
    expect(isOnceflowError(unscoped, 'OF_INVALID_ARGUMENT')).toBe(true);
    const negative = await admin.purgeIdempotencyKeys({ olderThanMs: -1 }).catch((error: unknown) => error);
    expect(isOnceflowError(negative, 'OF_INVALID_ARGUMENT')).toBe(true);
    const status = await admin.inboxStatus();
    expect(status.consumers.find((c) => c.consumer === consumer)?.deadLetters).toEqual({
      dead: 2,
      redriveRequested: 0,
      redriven: 0,
    });
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
