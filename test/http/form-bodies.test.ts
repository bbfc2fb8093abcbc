import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StartedHandle } from '@onceflow/core';
import { createIdempotencyEngine, type IdempotencyEngine, idempotentListener } from '@onceflow/http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { json, send, type WireResponse } from './helpers';
import { createCustomersTable, startStripeApp } from './stripe-app';

let db: TestDatabase;
let app: FastifyInstance;
let fastifyUrl: string;
let engine: IdempotencyEngine;
let running: StartedHandle | undefined;
let server: Server;
let nodeUrl: string;
const nodeBodies: unknown[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createCustomersTable(db.pool, db.schema);
  ({ app, url: fastifyUrl } = await startStripeApp(db.pool, db.schema));
  engine = createIdempotencyEngine({ pool: db.pool, schema: db.schema, onError: () => undefined });
  running = await engine.start();
  server = createServer(
    idempotentListener(engine, { path: '/v1/customers', required: true }, async (req) => {
      nodeBodies.push(req.body);
      return { status: 200, body: { received: req.body } };
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  nodeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await new Promise((resolve) => server?.close(resolve));
  await running?.stop();
  await db?.drop();
});

function postForm(url: string, key: string, body: Buffer | string): Promise<WireResponse> {
  return send(url, {
    path: '/v1/customers',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Bearer sk_test_forms',
      'idempotency-key': key,
    },
    body,
  });
}

async function keyCount(key: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".idempotency_keys WHERE key = $1`,
    [key],
  );
  return rows[0]!.n;
}

const rawInvalid = (byte: number) => Buffer.concat([Buffer.from('name='), Buffer.from([byte])]);

for (const adapter of ['fastify', 'node:http'] as const) {
  describe(`form bodies on the ${adapter} adapter`, () => {
    const url = () => (adapter === 'fastify' ? fastifyUrl : nodeUrl);

    it('two form bodies with different invalid raw bytes under one key are both refused, never replayed as one request', async () => {
      const key = `${adapter}-raw-invalid`;
      const first = await postForm(url(), key, rawInvalid(0xff));
      const second = await postForm(url(), key, rawInvalid(0xfe));
      for (const response of [first, second]) {
        expect(response.status).toBe(400);
        expect(response.headers['idempotent-replayed']).toBeUndefined();
        expect(json(response)).toMatchObject({ type: 'urn:onceflow:problem:body-invalid' });
      }
      expect(await keyCount(key)).toBe(0);
    });

    it('two form bodies with different %XX escapes of invalid bytes under one key are both refused', async () => {
      const key = `${adapter}-escaped-invalid`;
      for (const body of ['name=%FF', 'name=%FE', 'name=caf%C3&x=%A9']) {
        const response = await postForm(url(), key, body);
        expect(response.status, body).toBe(400);
      }
      expect(await keyCount(key)).toBe(0);
    });

    it('a valid form body runs once; the same fields in another order replay; another value gets 422', async () => {
      const key = `${adapter}-valid`;
      const first = await postForm(url(), key, 'name=Jos%C3%A9+M&metadata%5Border%5D=42');
      expect(first.status).toBe(200);
      const reordered = await postForm(url(), key, 'metadata%5Border%5D=42&name=Jos%C3%A9%20M');
      expect(reordered.headers['idempotent-replayed']).toBe('true');
      expect(reordered.body.equals(first.body)).toBe(true);
      expect((await postForm(url(), key, 'name=Jos%C3%A9+N&metadata%5Border%5D=42')).status).toBe(422);
      expect(await keyCount(key)).toBe(1);
    });
  });
}

describe('form fields on the node:http adapter', () => {
  it('parses a form body into its fields, repeated names as arrays', async () => {
    const before = nodeBodies.length;
    const response = await postForm(nodeUrl, 'node-fields', 'expand[]=a&expand[]=b&name=x+y');
    expect(response.status).toBe(200);
    expect(nodeBodies.slice(before)).toEqual([{ 'expand[]': ['a', 'b'], name: 'x y' }]);
  });
});
