import { Writable } from 'node:stream';
import { isOnceflowError, type Logger, type OnceflowError } from '@onceflow/core';
import Fastify from 'fastify';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createIdempotencyEngine } from './engine';
import { idempotency, idempotent } from './fastify';
import { MemoryKeyStore } from './memory-store.test-support';
import { defineRoute, type IdempotentRequest } from './route';

const request = (overrides: Partial<IdempotentRequest> = {}): IdempotentRequest => ({
  method: 'POST',
  route: 'POST /pay',
  url: '/pay',
  params: {},
  headers: {},
  body: { amount: 1 },
  scope: 'tenant-1',
  key: 'key-1',
  raw: undefined,
  ...overrides,
});

describe('idempotency engine lifecycle', () => {
  it('create configures and start starts: before start() requests get 503 and one OF_STOPPED says why; after, they run', async () => {
    const errors: OnceflowError[] = [];
    const engine = createIdempotencyEngine({
      store: new MemoryKeyStore(),
      onError: (error) => errors.push(error),
      completer: false,
      reaper: false,
    });
    const route = defineRoute('POST /pay', async () => ({ status: 201 }));
    expect((await engine.handle(request(), route)).status).toBe(503);
    expect((await engine.handle(request({ key: 'key-2' }), route)).status).toBe(503);
    expect(errors.map((error) => error.code)).toEqual(['OF_STOPPED']);
    const running = await engine.start();
    expect((await engine.handle(request(), route)).status).toBe(201);
    const second = await engine.start().catch((error: unknown) => error);
    expect(isOnceflowError(second, 'OF_ALREADY_STARTED')).toBe(true);
    await running.stop();
    expect((await engine.handle(request({ key: 'key-3' }), route)).status).toBe(503);
  });

  it('a handler failure reaches onError as OF_HANDLER_FAILED with route, scope and key, and the thrown error as cause', async () => {
    const errors: OnceflowError[] = [];
    const engine = createIdempotencyEngine({
      store: new MemoryKeyStore(),
      onError: (error) => errors.push(error),
      completer: false,
      reaper: false,
    });
    await using _running = await engine.start();
    const thrown = new Error('boom');
    const route = defineRoute('POST /pay', async () => {
      throw thrown;
    });
    expect((await engine.handle(request(), route)).status).toBe(500);
    expect((await engine.handle(request({ key: undefined }), route)).status).toBe(500);
    expect(errors.map((error) => [error.code, error.details, error.cause])).toEqual([
      ['OF_HANDLER_FAILED', { route: 'POST /pay', scope: 'tenant-1', key: 'key-1' }, thrown],
      ['OF_HANDLER_FAILED', { route: 'POST /pay', scope: 'tenant-1' }, thrown],
    ]);
  });

  it('takes either a pool or a store; schema and retry belong to the store when one is given', () => {
    const store = new MemoryKeyStore();
    const pool = { connect: async () => undefined } as never;
    expect(() => createIdempotencyEngine({ store, pool })).toThrow(/either pool or store/);
    expect(() => createIdempotencyEngine({ store, schema: 'x' })).toThrow(/schema belongs to the store/);
    expect(() => createIdempotencyEngine({ store, retry: { maxAttempts: 2 } })).toThrow(
      /retry belongs to the store/,
    );
  });
});

describe('the Fastify plugin and the logger seam', () => {
  it("Fastify's pino logger is an onceflow Logger, and the plugin logs the engine's errors to app.log by default", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        done();
      },
    });
    const app = Fastify({ logger: { level: 'warn', stream } });
    expectTypeOf(app.log).toMatchTypeOf<Logger>();
    await app.register(idempotency, { store: new MemoryKeyStore(), completer: false, reaper: false });
    app.post(
      '/pay',
      idempotent(async () => {
        throw new Error('card declined by a bug');
      }),
    );
    const response = await app.inject({
      method: 'POST',
      url: '/pay',
      headers: { 'idempotency-key': 'k1', 'content-type': 'application/json' },
      payload: { amount: 1 },
    });
    await app.close();
    expect(response.statusCode).toBe(500);
    const logged = lines.find((line) => line.code === 'OF_HANDLER_FAILED');
    expect(logged).toMatchObject({ component: 'idempotency', route: 'POST /pay', key: 'k1', level: 50 });
    expect(String(logged?.msg)).toMatch(/request on POST \/pay failed: card declined by a bug/);
  });
});
