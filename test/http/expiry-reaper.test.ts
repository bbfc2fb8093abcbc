import { createIdempotencyEngine, createIdempotencyReaper } from '@onceflow/http';
import { idempotencyTables } from '@onceflow/postgres';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { startChargesApp } from './charges-app';
import { postJson } from './helpers';

let db: TestDatabase;
let app: Awaited<ReturnType<typeof startChargesApp>>;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startChargesApp(db.pool, db.schema);
});

afterAll(async () => {
  await app?.app.close();
  await db?.drop();
});

describe('key expiry and the reaper', () => {
  it('keys live 24 hours by default', async () => {
    await postJson(app.url, '/charges', { amount: 1 }, { 'idempotency-key': 'ttl', 'x-tenant': 'acme' });
    const { rows } = await db.pool.query<{ hours: number }>(
      `SELECT round(extract(epoch FROM expires_at - created_at) / 3600)::int AS hours
         FROM "${db.schema}".idempotency_keys WHERE key = 'ttl'`,
    );
    expect(rows[0]!.hours).toBe(24);
    // The drizzle definition reads the migration's table.
    const { idempotencyKeys } = idempotencyTables(db.schema);
    const [stored] = await drizzle({ client: db.pool })
      .select()
      .from(idempotencyKeys)
      .where(eq(idempotencyKeys.key, 'ttl'));
    expect(stored).toMatchObject({
      scope: 'acme',
      state: 'completed',
      route: 'POST /charges',
      responseStatus: 201,
    });
    expect(stored!.responseBody?.length).toBeGreaterThan(0);
  });

  it("peek reads a key while another transaction holds the key's lock, and reads an expired completed key as absent", async () => {
    const headers = { 'idempotency-key': 'peeked', 'x-tenant': 'acme' };
    const first = await postJson(app.url, '/charges', { amount: 5 }, headers);
    const store = app.app.idempotency.store;
    let release!: () => void;
    let locked!: () => void;
    const holding = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const held = store.claim('acme', 'peeked', { wait: false }, async (claim) => {
      expect(claim.status).toBe('found');
      locked();
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await holding;
    const snapshot = await store.peek('acme', 'peeked');
    expect(snapshot).toMatchObject({ state: 'completed', leaseLive: false });
    expect(snapshot!.response!.status).toBe(201);
    expect(snapshot!.response!.body.equals(first.body)).toBe(true);
    release();
    await held;
    await db.pool.query(
      `UPDATE "${db.schema}".idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'peeked'`,
    );
    expect(await store.peek('acme', 'peeked')).toBeUndefined();
    expect(await store.peek('acme', 'never-seen')).toBeUndefined();
    // The reaper's test below counts every expired key.
    await db.pool.query(`DELETE FROM "${db.schema}".idempotency_keys WHERE key = 'peeked'`);
  });

  it('an expired key is treated as new: the request runs again, even with another body', async () => {
    const headers = { 'idempotency-key': 'expiring', 'x-tenant': 'acme' };
    expect((await postJson(app.url, '/charges', { amount: 2 }, headers)).status).toBe(201);
    await db.pool.query(
      `UPDATE "${db.schema}".idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'expiring'`,
    );
    const runs = app.executions.charges;
    const again = await postJson(app.url, '/charges', { amount: 3 }, headers);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(app.executions.charges).toBe(runs + 1);
    const replay = await postJson(app.url, '/charges', { amount: 3 }, headers);
    expect(replay.headers['idempotent-replayed']).toBe('true');
  });

  it('the reaper deletes expired completed keys in batches and never an in-flight key', async () => {
    const table = `"${db.schema}".idempotency_keys`;
    // 7 expired completed keys, 2 expired keys still in progress (one with a live lease), 1 live key.
    await db.pool.query(
      `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, response_status,
                             response_headers, response_body, lease_token, locked_until, expires_at)
       SELECT gen_random_uuid(), 'reap', 'done-' || i, '\\x00', 'POST /x', 'completed', 'started', 200, '{}', '', NULL, NULL,
              now() - interval '1 hour'
         FROM generate_series(1, 7) i`,
    );
    await db.pool.query(
      `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, lease_token, locked_until, expires_at)
       VALUES (gen_random_uuid(), 'reap', 'running', '\\x00', 'POST /x', 'in_progress', 'phase_2', gen_random_uuid(),
               now() + interval '1 hour', now() - interval '1 hour'),
              (gen_random_uuid(), 'reap', 'abandoned', '\\x00', 'POST /x', 'in_progress', 'phase_2', gen_random_uuid(),
               now() - interval '1 hour', now() - interval '1 hour'),
              (gen_random_uuid(), 'reap', 'fresh', '\\x00', 'POST /x', 'in_progress', 'phase_2', gen_random_uuid(),
               now() + interval '1 hour', now() + interval '1 day')`,
    );
    const engine = createIdempotencyEngine({
      pool: db.pool,
      schema: db.schema,
      completer: false,
      reaper: false,
    });
    await using _engine = await engine.start();
    const reaper = createIdempotencyReaper(engine, {
      intervalMs: 60_000,
      batchSize: 3,
      maxBatchesPerRound: 2,
    });
    await using _reaper = await reaper.start();
    expect(await reaper.runOnce()).toBe(6); // two batches of three, then the round ends
    expect(await reaper.runOnce()).toBe(1);
    expect(await reaper.runOnce()).toBe(0);
    const { rows } = await db.pool.query<{ key: string }>(
      `SELECT key FROM ${table} WHERE scope = 'reap' ORDER BY key`,
    );
    expect(rows.map((row) => row.key)).toEqual(['abandoned', 'fresh', 'running']);
  });
});
