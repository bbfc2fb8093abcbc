import { isOnceflowError } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { createIdempotencyEngine } from './engine';
import { MemoryKeyStore } from './memory-store.test-support';
import { createIdempotencyReaper } from './reaper';
import { defineRoute, type IdempotentRequest, recoveryPoint } from './route';

function request(body: unknown, overrides: Partial<IdempotentRequest> = {}): IdempotentRequest {
  return {
    method: 'POST',
    route: 'POST /pay',
    url: '/pay',
    params: {},
    headers: { 'content-type': 'application/json' },
    body,
    scope: 'tenant-1',
    key: 'key-1',
    raw: undefined,
    ...overrides,
  };
}

async function setup(options: Parameters<typeof createIdempotencyEngine>[0] = {}) {
  const store = new MemoryKeyStore();
  const errors: unknown[] = [];
  const engine = createIdempotencyEngine({
    store,
    onError: (error) => errors.push(error),
    completer: false,
    reaper: false,
    ...options,
  });
  const running = await engine.start();
  return { store, engine, errors, running };
}

describe('idempotency engine (in-memory store)', () => {
  it('same key and request: runs once, replays the stored bytes with Idempotent-Replayed', async () => {
    const { engine, store } = await setup();
    let runs = 0;
    const route = defineRoute('POST /pay', async (_req, { outbox }) => {
      runs++;
      await outbox.enqueue({ topic: 't', value: { runs } });
      return { status: 201, headers: { Location: '/pay/1' }, body: { runs } };
    });
    const first = await engine.handle(request({ a: 1, b: 2 }), route);
    const second = await engine.handle(request({ b: 2, a: 1 }), route);
    expect(runs).toBe(1);
    expect(store.outbox).toHaveLength(1);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second).toEqual({ ...first, headers: { ...first.headers, 'idempotent-replayed': 'true' } });
    expect(first.headers.location).toBe('/pay/1');
  });

  it('same key, different body, URL or route: 422 and nothing runs', async () => {
    const { engine } = await setup();
    let runs = 0;
    const handler = async () => {
      runs++;
      return { status: 200, body: 'ok' };
    };
    const route = defineRoute('POST /pay', handler);
    await engine.handle(request({ a: 1 }), route);
    expect((await engine.handle(request({ a: 2 }), route)).status).toBe(422);
    expect((await engine.handle(request({ a: 1 }, { url: '/pay?x=1' }), route)).status).toBe(422);
    const other = defineRoute('POST /refund', handler);
    expect((await engine.handle(request({ a: 1 }, { route: 'POST /refund' }), other)).status).toBe(422);
    expect(runs).toBe(1);
  });

  it('fingerprint headers chosen per route take part in the comparison', async () => {
    const { engine } = await setup();
    const route = defineRoute('POST /pay', async () => ({ status: 200 }), {
      fingerprintHeaders: ['X-Currency'],
    });
    await engine.handle(request({}, { headers: { 'x-currency': 'eur' } }), route);
    expect((await engine.handle(request({}, { headers: { 'x-currency': 'usd' } }), route)).status).toBe(422);
    expect((await engine.handle(request({}, { headers: { 'x-currency': 'eur' } }), route)).status).toBe(200);
  });

  it('with inFlightWaitMs 0, a second request while the first runs gets 409 with Retry-After at once (Stripe); scopes are isolated', async () => {
    const { engine } = await setup({ inFlightWaitMs: 0 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let runs = 0;
    const route = defineRoute('POST /pay', async (req) => {
      runs++;
      if (req.scope === 'tenant-1') await gate;
      return { status: 200, body: { scope: req.scope } };
    });
    const first = engine.handle(request({}), route);
    const busy = await engine.handle(request({}), route);
    expect(busy.status).toBe(409);
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.headers['stripe-should-retry']).toBe('true');
    const otherTenant = await engine.handle(request({}, { scope: 'tenant-2' }), route);
    expect(JSON.parse(otherTenant.body.toString())).toEqual({ scope: 'tenant-2' });
    release();
    expect(JSON.parse((await first).body.toString())).toEqual({ scope: 'tenant-1' });
    expect(runs).toBe(2);
  });

  it('a completed key is replayed to 20 concurrent duplicates in one process: none waits for a slot or gets 409', async () => {
    const { engine, store } = await setup({ inFlightWaitMs: 0 });
    let runs = 0;
    const route = defineRoute('POST /pay', async () => ({ status: 201, body: { run: ++runs } }));
    const first = await engine.handle(request({ a: 1 }), route);
    const replays = await Promise.all(
      Array.from({ length: 20 }, () => engine.handle(request({ a: 1 }), route)),
    );
    expect(replays.map((r) => r.status)).toEqual(Array(20).fill(201));
    for (const replay of replays) {
      expect(replay.body.equals(first.body)).toBe(true);
      expect(replay.headers['idempotent-replayed']).toBe('true');
    }
    expect(runs).toBe(1);
    // Those that found the key's slot taken were answered from a lock-free read.
    expect(store.peeks).toBeGreaterThan(0);
  });

  it("a completed key is replayed while another process holds the key's lock", async () => {
    const { engine, store } = await setup({ inFlightWaitMs: 0 });
    const route = defineRoute('POST /pay', async () => ({ status: 201, body: 'made' }));
    const first = await engine.handle(request({}), route);
    let release!: () => void;
    const held = store.claim('tenant-1', 'key-1', { wait: false }, async () => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    const replay = await engine.handle(request({}), route);
    expect(replay.status).toBe(201);
    expect(replay.body.equals(first.body)).toBe(true);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    // Another request under the same key is still judged against the stored one.
    expect((await engine.handle(request({ other: true }), route)).status).toBe(422);
    release();
    await held;
  });

  it("a completed key is replayed even when the principal's in-flight bound refuses new work", async () => {
    const { engine } = await setup({ maxKeysInFlightPerScope: 1 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const route = defineRoute('POST /pay', async (req) => {
      if (req.key === 'busy') await gate;
      return { status: 201, body: { key: req.key } };
    });
    const first = await engine.handle(request({}, { key: 'done' }), route);
    const running = engine.handle(request({}, { key: 'busy' }), route);
    expect((await engine.handle(request({}, { key: 'new' }), route)).status).toBe(429);
    const replay = await engine.handle(request({}, { key: 'done' }), route);
    expect(replay.status).toBe(201);
    expect(replay.body.equals(first.body)).toBe(true);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    release();
    await running;
  });

  it('a request for a key running in this process waits for its outcome and gets it replayed', async () => {
    const { engine } = await setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let runs = 0;
    const route = defineRoute('POST /pay', async () => {
      runs++;
      await gate;
      return { status: 201, body: { run: runs } };
    });
    const first = engine.handle(request({}), route);
    const second = engine.handle(request({}), route);
    const otherBody = engine.handle(request({ other: true }), route);
    release();
    const [a, b, c] = await Promise.all([first, second, otherBody]);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(b.body.equals(a.body)).toBe(true);
    expect(c.status).toBe(422);
    expect(runs).toBe(1);
  });

  it('the wait is bounded by inFlightWaitMs: then 409, and the running request is unaffected', async () => {
    const { engine } = await setup({ inFlightWaitMs: 20 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const route = defineRoute('POST /pay', async () => {
      await gate;
      return { status: 200, body: 'ok' };
    });
    const first = engine.handle(request({}), route);
    const waited = await engine.handle(request({}), route);
    expect(waited.status).toBe(409);
    expect(waited.headers['retry-after']).toBe('1');
    release();
    expect((await first).status).toBe(200);
  });

  it('a waiting request whose running request released the key (5xx) runs the request itself', async () => {
    const { engine } = await setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let runs = 0;
    const route = defineRoute('POST /pay', async () => {
      runs++;
      if (runs === 1) {
        await gate;
        return { status: 503, body: 'try later' };
      }
      return { status: 201, body: 'made' };
    });
    const first = engine.handle(request({}), route);
    const second = engine.handle(request({}), route);
    release();
    expect((await first).status).toBe(503);
    const retried = await second;
    expect(retried.status).toBe(201);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(runs).toBe(2);
  });

  it('stop() ends waiting requests at once with 503 and waits for the running one', async () => {
    const { engine, running } = await setup({ inFlightWaitMs: 600_000 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const route = defineRoute('POST /pay', async () => {
      await gate;
      return { status: 200 };
    });
    const first = engine.handle(request({}), route);
    const waiting = engine.handle(request({}), route);
    // Let the second request reach its wait before stopping.
    await new Promise((resolve) => setImmediate(resolve));
    const stopped = running.stop();
    expect((await waiting).status).toBe(503);
    release();
    await stopped;
    expect((await first).status).toBe(200);
  });

  it("errorFormat 'stripe' answers onceflow's problems in Stripe's shape and statuses, with Stripe-Should-Retry", async () => {
    const { engine } = await setup({ errorFormat: 'stripe', inFlightWaitMs: 0 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const route = defineRoute('POST /pay', async (req) => {
      if ((req.body as { slow?: boolean }).slow) await gate;
      return { status: 200, body: 'ok' };
    });
    const body = (r: { body: Buffer }) => JSON.parse(r.body.toString());
    await engine.handle(request({}), route);
    const reused = await engine.handle(request({ other: 1 }), route);
    expect(reused.status).toBe(400);
    expect(reused.headers['content-type']).toBe('application/json');
    expect(reused.headers['stripe-should-retry']).toBe('false');
    expect(body(reused)).toEqual({
      error: {
        type: 'idempotency_error',
        code: 'idempotency_key_reused',
        message: 'Idempotency-Key was already used with a different request',
      },
    });
    const running = engine.handle(request({ slow: true }, { key: 'slow' }), route);
    const busy = await engine.handle(request({ slow: true }, { key: 'slow' }), route);
    expect(busy.status).toBe(409);
    expect(busy.headers['stripe-should-retry']).toBe('true');
    expect(body(busy).error).toMatchObject({ type: 'invalid_request_error', code: 'idempotency_key_in_use' });
    release();
    await running;
    const malformed = engine.admit('"unterminated', route);
    expect(malformed.ok).toBe(false);
    if (!malformed.ok) {
      expect(malformed.response.status).toBe(400);
      expect(body(malformed.response).error.type).toBe('idempotency_error');
    }
    const noScope = await engine.handle(request({}, { scope: '' }), route);
    expect(noScope.status).toBe(401);
    expect(body(noScope).error.type).toBe('authentication_error');
  });

  it('throws and 5xx roll back and release the key; 4xx is stored; release: true is not stored', async () => {
    const { engine, store, errors } = await setup();
    const outcomes: Array<'throw' | 503 | 400 | 'release' | 200> = ['throw', 503, 'release', 400];
    const route = defineRoute('POST /pay', async (_req, { outbox }) => {
      await outbox.enqueue({ topic: 't', value: 1 });
      const next = outcomes.shift() ?? 200;
      if (next === 'throw') throw new Error('database password is hunter2');
      if (next === 'release') return { status: 400, body: 'bad', release: true };
      return { status: next };
    });
    const thrown = await engine.handle(request({}), route);
    expect(thrown.status).toBe(500);
    expect(thrown.body.toString()).not.toContain('hunter2');
    expect(errors).toHaveLength(1);
    expect((await engine.handle(request({}), route)).status).toBe(503);
    expect((await engine.handle(request({}), route)).status).toBe(400);
    expect(store.rows.size).toBe(0);
    expect(store.outbox).toHaveLength(0);
    expect((await engine.handle(request({}), route)).status).toBe(400);
    const replay = await engine.handle(request({}), route);
    expect(replay.status).toBe(400);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(store.outbox).toHaveLength(1);
  });

  it('phases commit recovery points; a failing later phase keeps them and the retry resumes there', async () => {
    const { engine, store } = await setup();
    const calls: string[] = [];
    let failCharge = true;
    const route = defineRoute('POST /pay', {
      started: async (_req, { requestId }) => {
        calls.push('started');
        return recoveryPoint('created', { order: requestId.length });
      },
      created: async (_req, { data, foreignKey }) => {
        calls.push(`created:${foreignKey('charge')}`);
        if (failCharge) throw new Error('provider timeout');
        return recoveryPoint('charged', { ...(data as object), charged: true });
      },
      charged: async (_req, { data }) => ({ status: 201, body: data }),
    });
    const failed = await engine.handle(request({}), route);
    expect(failed.status).toBe(500);
    const [row] = store.rows.values();
    expect(row).toMatchObject({ state: 'in_progress', recoveryPoint: 'created' });
    // The lease was ended by the failure, so the retry does not have to wait for it.
    failCharge = false;
    const done = await engine.handle(request({}), route);
    expect(done.status).toBe(201);
    expect(JSON.parse(done.body.toString())).toEqual({ order: 36, charged: true });
    expect(calls.filter((c) => c === 'started')).toHaveLength(1);
    const foreignKeys = new Set(calls.filter((c) => c.startsWith('created:')));
    expect(foreignKeys.size).toBe(1);
  });

  it('an unfinished request with a live lease answers 409 until the lease runs out, then is taken over', async () => {
    const { engine, store } = await setup({ leaseMs: 5000 });
    const route = defineRoute('POST /pay', {
      started: async () => recoveryPoint('next'),
      next: async () => ({ status: 200, body: 'done' }),
    });
    // Simulate a process that died after phase one: commit the row with someone else's lease.
    await store.claim('tenant-1', 'key-1', { wait: false }, async (_claim, tx) => {
      tx.insert({
        requestId: '00000000-0000-4000-8000-000000000000',
        scope: 'tenant-1',
        key: 'key-1',
        fingerprint: (await import('./fingerprint')).requestFingerprint(request({}), []),
        route: 'POST /pay',
        recoveryPoint: 'next',
        phaseData: null,
        request: null,
        requestBody: null,
        response: null,
        leaseToken: 'dead',
        leaseMs: 5000,
        retentionMs: 86_400_000,
      });
    });
    const early = await engine.handle(request({}), route);
    expect(early.status).toBe(409);
    expect(early.headers['retry-after']).toBe('5');
    store.now += 5000;
    expect((await engine.handle(request({}), route)).status).toBe(200);
  });

  it('expired keys are treated as new; the reaper removes only expired completed keys', async () => {
    const { engine, store } = await setup();
    let runs = 0;
    const route = defineRoute('POST /pay', async () => ({ status: 200, body: { run: ++runs } }));
    await engine.handle(request({}), route);
    store.now += 24 * 3_600_000;
    expect(JSON.parse((await engine.handle(request({ other: true }), route)).body.toString())).toEqual({
      run: 2,
    });
    store.now += 24 * 3_600_000;
    await engine.handle(request({}, { key: 'other' }), route);
    const reaper = createIdempotencyReaper(engine, { intervalMs: 60_000 });
    const reaping = await reaper.start();
    expect(await reaper.runOnce()).toBe(1);
    await reaping.stop();
  });

  it('key floods are bounded per scope before any transaction starts', async () => {
    const { engine, store } = await setup({ maxKeysInFlightPerScope: 2 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const route = defineRoute('POST /pay', async (req) => {
      if (req.key !== 'c') await gate;
      return { status: 200 };
    });
    const running = [
      engine.handle(request({}, { key: 'a' }), route),
      engine.handle(request({}, { key: 'b' }), route),
    ];
    const before = store.transactions;
    const flooded = await engine.handle(request({}, { key: 'c' }), route);
    expect(flooded.status).toBe(429);
    expect(store.transactions).toBe(before);
    expect((await engine.handle(request({}, { key: 'c', scope: 'tenant-2' }), route)).status).toBe(200);
    release();
    await Promise.all(running);
  });

  it('missing scope, missing required key and bodies that cannot be canonicalised are refused', async () => {
    const { engine, store } = await setup();
    const route = defineRoute('POST /pay', async () => ({ status: 200 }), { required: true });
    expect((await engine.handle(request({}, { scope: '' }), route)).status).toBe(401);
    expect((await engine.handle(request({}, { key: undefined }), route)).status).toBe(400);
    expect((await engine.handle(request({ s: '\ud800' }), route)).status).toBe(400);
    expect(store.transactions).toBe(0);
  });

  it('invalid options throw OF_INVALID_OPTIONS at construction', () => {
    const store = new MemoryKeyStore();
    for (const bad of [
      { leaseMs: 0 },
      { retentionMs: 1_800_000 },
      { maxKeyLength: 300 },
      { bodyLimitBytes: -1 },
      { inFlightWaitMs: -1 },
      { inFlightWaitMs: 1.5 },
      { errorFormat: 'xml' as 'stripe' },
    ]) {
      let caught: unknown;
      try {
        createIdempotencyEngine({ store, ...bad });
      } catch (error) {
        caught = error;
      }
      expect(isOnceflowError(caught, 'OF_INVALID_OPTIONS')).toBe(true);
    }
    expect(() => createIdempotencyEngine({})).toThrow(/pool/);
  });
});
