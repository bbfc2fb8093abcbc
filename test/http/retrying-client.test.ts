// A generic HTTP client with retries (undici's retry interceptor, as Node's own HTTP stack ships it)
// and a plain fetch, sending IETF-style quoted keys to a problem+json API guarded by onceflow.
import type { FastifyInstance } from 'fastify';
import { Agent, type Dispatcher, interceptors, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { createCustomersTable, type SentResponse, startStripeApp } from './stripe-app';

let db: TestDatabase;
/** Two servers with an engine each on one database, as two processes would be. */
const servers: Array<{ app: FastifyInstance; url: string; sent: SentResponse[] }> = [];
const arrivals = new Map<string, number>();
const runs = new Map<string, number>();
/** Gates a handler until the nth request with its Idempotency-Key header (as sent) arrived. */
const gates = new Map<string, { after: number; open: () => void; opened: Promise<void> }>();

function gate(key: string, after: number): void {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  gates.set(key, { after, open, opened });
}

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 });
  await createCustomersTable(db.pool, db.schema);
  for (let i = 0; i < 2; i++) {
    const sent: SentResponse[] = [];
    const started = await startStripeApp(db.pool, db.schema, {
      onResponse: (response) => sent.push(response),
      onRequest: (header) => {
        if (header === undefined) return;
        const count = (arrivals.get(header) ?? 0) + 1;
        arrivals.set(header, count);
        const waiting = gates.get(header);
        if (waiting && count >= waiting.after) waiting.open();
      },
      beforeInsert: async (params, _run) => {
        const name = String(params.name);
        const run = (runs.get(name) ?? 0) + 1;
        runs.set(name, run);
        const waiting = gates.get(String(params.gate));
        if (waiting && run === 1) await waiting.opened;
        if (name === 'Flaky' && run === 1) throw new Error('flaky');
      },
    });
    servers.push({ ...started, sent });
  }
});

afterAll(async () => {
  // A failed test must not leave a handler waiting, or closing its server would wait for it.
  for (const waiting of gates.values()) waiting.open();
  await Promise.all(servers.map(({ app }) => app.close()));
  await db?.drop();
});

/** undici with its retry interceptor, retrying POST (the key makes it safe) and honouring Retry-After. */
function retryingClient(options: { headersTimeoutMs?: number } = {}): Dispatcher {
  return new Agent({ headersTimeout: options.headersTimeoutMs ?? 30_000 }).compose(
    interceptors.retry({
      methods: ['POST'],
      statusCodes: [409, 429, 500, 502, 503, 504],
      errorCodes: ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT'],
      maxRetries: 5,
      minTimeout: 100,
      maxTimeout: 2_000,
    }),
  );
}

async function post(
  dispatcher: Dispatcher,
  server: number,
  key: string,
  body: Record<string, unknown>,
): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> {
  const response = await request(`${servers[server]!.url}/v1/customers`, {
    dispatcher,
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: 'Bearer sk_test_generic',
      // The IETF draft's form: an RFC 8941 sf-string.
      'idempotency-key': `"${key.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    json: (await response.body.json()) as Record<string, unknown>,
  };
}

async function customersNamed(name: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".customers WHERE name = $1`,
    [name],
  );
  return rows[0]!.n;
}

describe('a generic retrying client (undici retry interceptor) with IETF-style quoted keys', () => {
  it('a handler slower than the client timeout: the retry waits for the running request and gets its answer; one row', async () => {
    // Sent as `"order 7, \"slow\" try"`: quotes inside a key are escaped in the sf-string.
    const key = 'order 7, "slow" try';
    const header = '"order 7, \\"slow\\" try"';
    gate(header, 2);
    const response = await post(retryingClient({ headersTimeoutMs: 1_000 }), 0, key, {
      name: 'Generic slow',
      gate: header,
    });
    expect(response.status).toBe(200);
    expect(response.headers['idempotent-replayed']).toBe('true');
    expect(arrivals.get(header)).toBeGreaterThanOrEqual(2);
    expect(runs.get('Generic slow')).toBe(1);
    expect(await customersNamed('Generic slow')).toBe(1);
  });

  it('20 concurrent calls with one key on two servers: one row, every call succeeds', async () => {
    const client = retryingClient();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(client, i % 2, 'order 8, try 1', { name: 'Generic burst' })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(responses.map((r) => r.json.id)).size).toBe(1);
    expect(await customersNamed('Generic burst')).toBe(1);
  });

  it('a 500 (handler threw, key released) then success: the retry runs the request again; one row', async () => {
    const response = await post(retryingClient(), 0, 'order 9, try 1', { name: 'Flaky' });
    expect(response.status).toBe(200);
    expect(runs.get('Flaky')).toBe(2);
    const statuses = servers[0]!.sent.filter((r) => r.key === '"order 9, try 1"').map((r) => r.status);
    expect(statuses).toEqual([500, 200]);
    expect(await customersNamed('Flaky')).toBe(1);
  });

  it('the same key with another body: 422 problem+json with Stripe-Should-Retry: false, not retried', async () => {
    const client = retryingClient();
    expect((await post(client, 0, 'order 10, try 1', { name: 'Generic reused' })).status).toBe(200);
    const reused = await post(client, 1, 'order 10, try 1', { name: 'Generic reused, changed' });
    expect(reused.status).toBe(422);
    expect(reused.headers['content-type']).toBe('application/problem+json');
    expect(reused.headers['stripe-should-retry']).toBe('false');
    expect(reused.json).toMatchObject({ type: 'urn:onceflow:problem:key-reused', status: 422 });
    expect(servers[1]!.sent.filter((r) => r.key === '"order 10, try 1"')).toHaveLength(1);
  });
});

describe('fetch without retries, as a browser sends it', () => {
  it('a second fetch with the key while the first runs in the same process waits and gets the first answer, not a 409', async () => {
    const key = 'browser-order-11';
    gate(`"${key}"`, 2);
    const send = () =>
      fetch(`${servers[0]!.url}/v1/customers`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer sk_test_browser',
          'idempotency-key': `"${key}"`,
        },
        body: JSON.stringify({ name: 'Browser', gate: `"${key}"` }),
      });
    const [first, second] = await Promise.all([send(), send()]);
    expect([first.status, second.status]).toEqual([200, 200]);
    const bodies = [await first.text(), await second.text()];
    expect(bodies[0]).toBe(bodies[1]);
    expect([first, second].filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(1);
    expect(await customersNamed('Browser')).toBe(1);
  });
});
