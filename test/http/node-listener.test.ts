import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createIdempotencyEngine, idempotentListener } from '@onceflow/http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { json, postJson, send } from './helpers';

let db: TestDatabase;
let url: string;
let runs = 0;
let closeAll: () => Promise<void>;

beforeAll(async () => {
  db = await createTestDatabase();
  const engine = createIdempotencyEngine({ pool: db.pool, schema: db.schema, onError: () => undefined });
  const running = await engine.start();
  const listener = idempotentListener(
    engine,
    { path: '/orders', required: true, scope: (req) => req.headers['x-tenant'] as string | undefined },
    async (req, { outbox }) => {
      runs++;
      await outbox.enqueue({ topic: 'orders', value: req.body });
      return { status: 201, body: { order: req.body, run: runs } };
    },
  );
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeAll = async () => {
    await new Promise((resolve) => server.close(resolve));
    await running.stop();
  };
});

afterAll(async () => {
  await closeAll?.();
  await db?.drop();
});

async function keyCount(): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM "${db.schema}".idempotency_keys`);
  return rows[0]!.n as number;
}

describe('node:http listener', () => {
  it('runs once and replays byte-identically; a different body gets 422', async () => {
    const headers = { 'idempotency-key': '"order-1"', 'x-tenant': 'shop' };
    const first = await postJson(url, '/orders', { sku: 'a', qty: 1 }, headers);
    const second = await postJson(url, '/orders', { qty: 1, sku: 'a' }, headers);
    expect(first.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.equals(first.body)).toBe(true);
    expect(json(first)).toEqual({ order: { sku: 'a', qty: 1 }, run: 1 });
    expect((await postJson(url, '/orders', { sku: 'b', qty: 1 }, headers)).status).toBe(422);
    expect(runs).toBe(1);
  });

  it('refuses hostile input before any key row is claimed', async () => {
    const before = await keyCount();
    const longKey = await postJson(
      url,
      '/orders',
      {},
      { 'idempotency-key': 'k'.repeat(1000), 'x-tenant': 'shop' },
    );
    expect(longKey.status).toBe(400);
    const invalidUtf8 = await send(url, {
      path: '/orders',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'utf8', 'x-tenant': 'shop' },
      body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(invalidUtf8.status).toBe(400);
    expect(invalidUtf8.headers['content-type']).toBe('application/problem+json');
    const noType = await send(url, {
      path: '/orders',
      headers: { 'idempotency-key': 'no-type', 'x-tenant': 'shop' },
      body: '{"sku":"c"}',
    });
    expect(noType.status).toBe(415);
    const big = await send(url, {
      path: '/orders',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'big', 'x-tenant': 'shop' },
      body: Buffer.alloc(10 * 1024 * 1024, 0x20),
    }).catch((error: unknown) => error as Error);
    if (!(big instanceof Error)) expect(big.status).toBe(413);
    expect(await keyCount()).toBe(before);
    expect(runs).toBe(1);
  });
});
