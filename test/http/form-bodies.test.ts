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

describe("refusals before the handler answer in the engine's error format on both adapters", () => {
  it("with errorFormat 'stripe': unreadable, oversized and untyped bodies and bad keys are Stripe-shaped errors", async () => {
    const fastify = await startStripeApp(db.pool, db.schema, { errorFormat: 'stripe', bodyLimitBytes: 1024 });
    const stripeEngine = createIdempotencyEngine({
      pool: db.pool,
      schema: db.schema,
      errorFormat: 'stripe',
      bodyLimitBytes: 1024,
      onError: () => undefined,
    });
    const stripeRunning = await stripeEngine.start();
    const nodeServer = createServer(
      idempotentListener(stripeEngine, { path: '/v1/customers', required: true }, async () => ({
        status: 200,
      })),
    );
    await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve));
    const nodeStripeUrl = `http://127.0.0.1:${(nodeServer.address() as AddressInfo).port}`;
    try {
      for (const url of [fastify.url, nodeStripeUrl]) {
        const cases: Array<{
          headers: Record<string, string>;
          body: Buffer | string;
          status: number;
          type: string;
          code: string;
        }> = [
          {
            headers: {},
            body: rawInvalid(0xff),
            status: 400,
            type: 'invalid_request_error',
            code: 'body_invalid',
          },
          {
            headers: {},
            body: `name=${'x'.repeat(2048)}`,
            status: 413,
            type: 'invalid_request_error',
            code: 'body_too_large',
          },
          {
            headers: { 'content-type': '' },
            body: 'name=x',
            status: 415,
            type: 'invalid_request_error',
            code: 'unsupported_media_type',
          },
          {
            headers: { 'idempotency-key': '"unterminated' },
            body: 'name=x',
            status: 400,
            type: 'idempotency_error',
            code: 'idempotency_key_invalid',
          },
        ];
        for (const { headers, body, status, type, code } of cases) {
          const response = await send(url, {
            path: '/v1/customers',
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              authorization: 'Bearer sk_test_forms',
              'idempotency-key': `stripe-format-${code}`,
              ...headers,
            },
            body,
          }).catch((error: unknown) => error as Error);
          // An oversized body may be cut off by the server before the client has written it all.
          if (response instanceof Error) continue;
          expect(response.status, `${url} ${code}`).toBe(status);
          expect(response.headers['content-type']).toBe('application/json');
          expect(json(response).error).toMatchObject({ type, code });
        }
      }
    } finally {
      await fastify.app.close();
      await new Promise((resolve) => nodeServer.close(resolve));
      await stripeRunning.stop();
    }
  });
});
