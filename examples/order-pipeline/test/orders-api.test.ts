import { createTestDatabase, uniqueName } from '@onceflow/test/support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { buildOrdersApp } from '../src/orders-app';
import { migratePipeline } from '../src/schema';

describe('orders API', () => {
  const namespace = uniqueName('opapi');
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let app: Awaited<ReturnType<typeof buildOrdersApp>>;
  const config = () =>
    loadConfig({ DEMO_NAMESPACE: namespace, ONCEFLOW_SCHEMA: db.schema, APP_SCHEMA: `${namespace}_app` });

  beforeAll(async () => {
    db = await createTestDatabase();
    await migratePipeline(db.pool, config());
    app = await buildOrdersApp(db.pool, config());
  });
  afterAll(async () => {
    await app?.close();
    await db?.pool.query(`DROP SCHEMA IF EXISTS "${namespace}_app" CASCADE`);
    await db?.drop();
  });

  const place = (key: string, body: unknown) =>
    app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'idempotency-key': key },
      payload: body as object,
    });

  it('a retried POST /orders with the same Idempotency-Key creates one order and replays its answer', async () => {
    const body = { customer: 'ada', sku: 'sku-3', quantity: 2, amountCents: 1200 };
    const first = await place('key-1', body);
    expect(first.statusCode).toBe(201);
    const again = await place('key-1', body);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toBe(first.body);
    const { id } = first.json<{ id: string }>();
    const rows = await db.pool.query(`SELECT count(*)::int AS n FROM "${namespace}_app".orders`);
    expect(rows.rows[0].n).toBe(1);
    const outbox = await db.pool.query(`SELECT count(*)::int AS n FROM "${db.schema}".outbox`);
    expect(outbox.rows[0].n).toBe(1);
    const shown = await app.inject({ method: 'GET', url: `/orders/${id}` });
    expect(shown.json()).toMatchObject({ id, status: 'placed', payments: 0, sku: 'sku-3' });
  });

  it('refuses an order without an Idempotency-Key, and an invalid one without storing the key', async () => {
    const missing = await app.inject({ method: 'POST', url: '/orders', payload: { customer: 'x' } });
    expect(missing.statusCode).toBe(400);
    const invalid = await place('key-2', { customer: 'bob', sku: 'nope', quantity: 1, amountCents: 1 });
    expect(invalid.statusCode).toBe(400);
    const fixed = await place('key-2', { customer: 'bob', sku: 'sku-1', quantity: 1, amountCents: 1 });
    expect(fixed.statusCode).toBe(201);
  });
});
