// The official Stripe SDK (stripe-node) against a Stripe-shaped API guarded by onceflow, on the
// real Postgres: what its users see for each outcome, with its own retry rules.
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildHandle, createTestDatabase, spawnTs, type TestDatabase } from '../support';
import { createCustomersTable, type SentResponse, startStripeApp } from './stripe-app';

const serverEntry = fileURLToPath(new URL('./stripe-server.ts', import.meta.url));
const apiKey = 'sk_test_onceflow';

let db: TestDatabase;
let stripeApp: { app: FastifyInstance; url: string };
/** A second server with its own engine on the same database, as another process would be. */
let otherApp: { app: FastifyInstance; url: string };
const otherSent: SentResponse[] = [];
let problemApp: { app: FastifyInstance; url: string };
const children: Array<{ handle: ChildHandle; url: string }> = [];
/** Responses the in-process apps sent, by Idempotency-Key. */
const sent: SentResponse[] = [];
/** Requests that arrived at the in-process apps, by Idempotency-Key. */
const arrivals = new Map<string, number>();
/** Handler runs per customer name. */
const runs = new Map<string, number>();
/** Opened when a second request for the slow customer's key arrives. */
let slowRetryArrived: () => void = () => undefined;
const slowGate = new Promise<void>((resolve) => {
  slowRetryArrived = resolve;
});
let slowKey: string | undefined;
/** Opened once the other server has answered 409 for the key running here. */
let otherRefused: () => void = () => undefined;
const elsewhereGate = new Promise<void>((resolve) => {
  otherRefused = resolve;
});
let elsewhereRunning: () => void = () => undefined;
const elsewhereStarted = new Promise<void>((resolve) => {
  elsewhereRunning = resolve;
});

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 });
  await createCustomersTable(db.pool, db.schema);
  const common = {
    onResponse: (response: SentResponse) => sent.push(response),
    onRequest: (key: string | undefined) => {
      if (key === undefined) return;
      const count = (arrivals.get(key) ?? 0) + 1;
      arrivals.set(key, count);
      if (key === slowKey && count >= 2) slowRetryArrived();
    },
    beforeInsert: async (params: Record<string, unknown>) => {
      const name = String(params.name);
      const run = (runs.get(name) ?? 0) + 1;
      runs.set(name, run);
      if (name === 'Slow' && run === 1) await slowGate;
      if (name === 'Elsewhere') {
        elsewhereRunning();
        await elsewhereGate;
      }
      if (name === 'Flaky' && run === 1) throw new Error('database went away');
      if (name === 'Broken') throw new Error('always broken');
    },
  };
  stripeApp = await startStripeApp(db.pool, db.schema, { ...common, errorFormat: 'stripe' });
  problemApp = await startStripeApp(db.pool, db.schema, { ...common, errorFormat: 'problem+json' });
  otherApp = await startStripeApp(db.pool, db.schema, {
    ...common,
    errorFormat: 'stripe',
    onResponse: (response) => {
      otherSent.push(response);
      if (response.key === 'elsewhere-key' && response.status === 409) otherRefused();
    },
  });
  for (let i = 0; i < 2; i++) {
    const handle = spawnTs(serverEntry, {
      env: { STRIPE_APP_SCHEMA: db.schema, STRIPE_APP_ERROR_FORMAT: 'stripe' },
    });
    const line = await handle.waitForLine(/^LISTENING /);
    children.push({ handle, url: line.slice('LISTENING '.length).trim() });
  }
});

afterAll(async () => {
  // A failed test must not leave a handler waiting, or closing its server would wait for it.
  slowRetryArrived();
  otherRefused();
  await Promise.all(children.map(({ handle }) => handle.kill()));
  await stripeApp?.app.close();
  await problemApp?.app.close();
  await otherApp?.app.close();
  await db?.drop();
});

/** stripe-node pointed at one of the local servers (never at Stripe), without telemetry files. */
function stripeAt(url: string, config: Stripe.StripeConfig = {}): Stripe {
  const { hostname, port } = new URL(url);
  return new Stripe(apiKey, {
    host: hostname,
    port: Number(port),
    protocol: 'http',
    telemetry: false,
    maxNetworkRetries: 3,
    ...config,
  });
}

async function customersNamed(name: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".customers WHERE name = $1`,
    [name],
  );
  return rows[0]!.n;
}

function sentFor(key: string): SentResponse[] {
  return sent.filter((response) => response.key === key);
}

let sentinels = 0;

/**
 * Responses the child servers printed for one key, once all are in: a sentinel request sent to
 * each child after the calls returned is printed after them, since a child's output is in order.
 */
async function childResponses(key: string): Promise<SentResponse[][]> {
  await Promise.all(
    children.map(async ({ handle, url }) => {
      const sentinel = `sentinel-${++sentinels}`;
      await fetch(new URL('/sentinel', url), { headers: { 'idempotency-key': sentinel } });
      await handle.waitForLine(new RegExp(`"key":"${sentinel}"`));
    }),
  );
  return children.map(({ handle }) =>
    handle
      .output()
      .split('\n')
      .filter((line) => line.startsWith('RESPONSE '))
      .map((line) => JSON.parse(line.slice('RESPONSE '.length)) as SentResponse)
      .filter((response) => response.key === key),
  );
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function countBy<T>(items: T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[keyOf(item)] = (counts[keyOf(item)] ?? 0) + 1;
  return counts;
}

describe('stripe-node against a Stripe-shaped API guarded by onceflow', () => {
  it('an explicit key sent twice creates one customer; the second call gets the first one replayed', async () => {
    const stripe = stripeAt(stripeApp.url);
    const params = { name: 'Explicit', email: 'explicit@example.com', metadata: { order: '42' } };
    const first = await stripe.customers.create(params, { idempotencyKey: 'explicit-key-1' });
    const second = await stripe.customers.create(params, { idempotencyKey: 'explicit-key-1' });
    expect(second.id).toBe(first.id);
    expect(first.metadata).toEqual({ order: '42' });
    expect(second.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(await customersNamed('Explicit')).toBe(1);
  });

  it('a handler slower than the client timeout: the retries stripe-node makes with its own key get the first answer, one customer', async () => {
    const stripe = stripeAt(stripeApp.url, { maxNetworkRetries: 3, timeout: 3_000 });
    let key: string | undefined;
    stripe.on('request', (event: { idempotency_key?: string }) => {
      key ??= event.idempotency_key;
      slowKey = key;
    });
    const customer = await stripe.customers.create({ name: 'Slow' });
    expect(customer.name).toBe('Slow');
    expect(key).toMatch(/^stripe-node-retry-[0-9a-f-]{36}$/);
    // The first attempt timed out on the client while its handler waited for the retry to arrive.
    expect(arrivals.get(key!)).toBeGreaterThanOrEqual(2);
    expect(runs.get('Slow')).toBe(1);
    expect(await customersNamed('Slow')).toBe(1);
    // The client that gave up never got the first answer; a retry got it replayed.
    expect(sentFor(key!).some((r) => r.status === 200 && r.replayed)).toBe(true);
  });

  for (const processes of [1, 2]) {
    it(`20 concurrent calls with one key on ${processes} server process(es): one customer, every call succeeds`, async () => {
      const key = `burst-${processes}`;
      const name = `Burst ${processes}`;
      const clients = children.slice(0, processes).map(({ url }) => stripeAt(url, { maxNetworkRetries: 3 }));
      const burst = async () =>
        Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const started = performance.now();
            const customer = await clients[i % processes]!.customers.create(
              { name, email: 'burst@example.com' },
              { idempotencyKey: key },
            );
            return { customer, ms: performance.now() - started };
          }),
        );
      const firstBurst = await burst();
      expect(new Set(firstBurst.map(({ customer }) => customer.id)).size).toBe(1);
      expect(await customersNamed(name)).toBe(1);
      const firstResponses = await childResponses(key);
      // And 20 concurrent retries of the now completed key: every one is a replay, none a 409.
      const retries = await burst();
      expect(retries.map(({ customer }) => customer.id)).toEqual(Array(20).fill(firstBurst[0]!.customer.id));
      const retryResponses = (await childResponses(key)).flatMap((responses, child) =>
        responses.slice(firstResponses[child]!.length),
      );
      // Each retry was answered from the stored response at its first attempt: no 409 to retry.
      expect(retryResponses.map((r) => `${r.status}${r.replayed ? ' replayed' : ''}`)).toEqual(
        Array(20).fill('200 replayed'),
      );
      expect(await customersNamed(name)).toBe(1);

      // Figures for the record (no assertion on speed).
      const statuses = (responses: SentResponse[]) =>
        JSON.stringify(countBy(responses, (r) => `${r.status}${r.replayed ? ' replayed' : ''}`));
      const ms = (values: number[]) =>
        `p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms`;
      console.log(
        `[stripe-node burst, ${processes} process(es)] first burst: 20/20 succeeded, rows 1, server sent ${statuses(
          firstResponses.flat(),
        )}, call latency ${ms(firstBurst.map((r) => r.ms))}; retries of the completed key: 20/20 succeeded, server sent ${statuses(
          retryResponses,
        )}, replay latency at the client ${ms(retries.map((r) => r.ms))}, in the server ${ms(
          retryResponses.map((r) => r.elapsedMs),
        )}`,
      );
    });
  }

  it('a key running on another server: stripe-node gets 409 with Stripe-Should-Retry: true, retries, and gets the first answer', async () => {
    const params = { name: 'Elsewhere' };
    const running = stripeAt(stripeApp.url).customers.create(params, { idempotencyKey: 'elsewhere-key' });
    // The handler holds the key (and its lock) until the other server has refused the retry.
    await elsewhereStarted;
    const retried = await stripeAt(otherApp.url).customers.create(params, {
      idempotencyKey: 'elsewhere-key',
    });
    const first = await running;
    expect(retried.id).toBe(first.id);
    expect(otherSent.filter((r) => r.key === 'elsewhere-key').map((r) => [r.status, r.replayed])).toEqual([
      [409, false],
      [200, true],
    ]);
    expect(runs.get('Elsewhere')).toBe(1);
    expect(await customersNamed('Elsewhere')).toBe(1);
  });

  it("the same key with other params: with errorFormat 'stripe' stripe-node raises its idempotency error and does not retry", async () => {
    const stripe = stripeAt(stripeApp.url);
    await stripe.customers.create({ name: 'Reused' }, { idempotencyKey: 'reused-key' });
    const error = await stripe.customers
      .create({ name: 'Reused, other params' }, { idempotencyKey: 'reused-key' })
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    const stripeError = error as InstanceType<typeof Stripe.errors.StripeIdempotencyError>;
    expect(stripeError.statusCode).toBe(400);
    expect(stripeError.rawType).toBe('idempotency_error');
    expect(stripeError.headers?.['stripe-should-retry']).toBe('false');
    // One first request and one refused request: Stripe-Should-Retry: false kept it from retrying.
    expect(sentFor('reused-key').map((r) => r.status)).toEqual([200, 400]);
    expect(await customersNamed('Reused, other params')).toBe(0);
  });

  it("the same key with other params: with errorFormat 'problem+json' the answer is a 422 problem, which stripe-node cannot recognise as an error", async () => {
    const stripe = stripeAt(problemApp.url);
    await stripe.customers.create({ name: 'Reused problem' }, { idempotencyKey: 'reused-problem-key' });
    const answer = await stripe.customers.create(
      { name: 'Reused problem, other params' },
      { idempotencyKey: 'reused-problem-key' },
    );
    expect(answer.lastResponse.statusCode).toBe(422);
    expect(answer.id).toBeUndefined();
    expect(answer as unknown).toMatchObject({ type: 'urn:onceflow:problem:key-reused', status: 422 });
    expect(await customersNamed('Reused problem, other params')).toBe(0);
  });

  it('a 500 (handler threw, key released) then success: stripe-node retries and the customer is created once', async () => {
    const stripe = stripeAt(stripeApp.url, { maxNetworkRetries: 2 });
    const customer = await stripe.customers.create({ name: 'Flaky' }, { idempotencyKey: 'flaky-key' });
    expect(customer.name).toBe('Flaky');
    expect(runs.get('Flaky')).toBe(2);
    expect(sentFor('flaky-key').map((r) => r.status)).toEqual([500, 200]);
    expect(await customersNamed('Flaky')).toBe(1);
  });

  it('always 500: stripe-node gives up after its retries with an API error; nothing is stored and the key stays free', async () => {
    const stripe = stripeAt(stripeApp.url, { maxNetworkRetries: 2 });
    const error = await stripe.customers.create({ name: 'Broken' }, { idempotencyKey: 'broken-key' }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(Stripe.errors.StripeAPIError);
    const stripeError = error as InstanceType<typeof Stripe.errors.StripeAPIError>;
    expect(stripeError.statusCode).toBe(500);
    expect(stripeError.rawType).toBe('api_error');
    expect(stripeError.message).toBe('Internal server error');
    expect(sentFor('broken-key').map((r) => r.status)).toEqual([500, 500, 500]);
    expect(await customersNamed('Broken')).toBe(0);
    const { rows } = await db.pool.query(
      `SELECT 1 FROM "${db.schema}".idempotency_keys WHERE key = 'broken-key'`,
    );
    expect(rows).toHaveLength(0);
  });
});
