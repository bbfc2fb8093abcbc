import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { startChargesApp } from './charges-app';
import { json, postJson, send } from './helpers';

let db: TestDatabase;
let url: string;
let executions: Awaited<ReturnType<typeof startChargesApp>>['executions'];
let close: () => Promise<void>;

async function count(table: string, where = 'true'): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${db.schema}".${table} WHERE ${where}`,
  );
  return Number(rows[0]!.n);
}

beforeAll(async () => {
  db = await createTestDatabase({ poolSize: 20 });
  const started = await startChargesApp(db.pool, db.schema);
  url = started.url;
  executions = started.executions;
  close = () => started.app.close();
});

afterAll(async () => {
  await close?.();
  await db?.drop();
});

describe('Idempotency-Key on a Fastify route (real Postgres, loopback HTTP)', () => {
  it('50 concurrent identical requests execute once and enqueue one outbox row; the rest get 409 or the replay', async () => {
    const before = { runs: executions.charges, outbox: await count('outbox') };
    const headers = { 'idempotency-key': '"concurrent-1"', 'x-tenant': 'acme' };
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => postJson(url, '/charges', { amount: 700 }, headers)),
    );
    expect(executions.charges - before.runs).toBe(1);
    expect((await count('outbox')) - before.outbox).toBe(1);
    expect(await count('charges', `tenant = 'acme' AND amount = 700`)).toBe(1);
    const created = responses.filter((r) => r.status === 201);
    const busy = responses.filter((r) => r.status === 409);
    expect(created.length + busy.length).toBe(50);
    expect(created.filter((r) => r.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
    for (const r of busy) {
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    const bodies = new Set(created.map((r) => r.body.toString('hex')));
    expect(bodies.size).toBe(1);
    const again = await postJson(url, '/charges', { amount: 700 }, headers);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(executions.charges - before.runs).toBe(1);
  });

  it('concurrent identical requests through several servers (one engine each) execute once: the database arbitrates', async () => {
    // Each engine lets one request per key through its in-process guard, so four servers put four
    // claims of the same key at the database at once, again and again.
    const servers = await Promise.all(Array.from({ length: 4 }, () => startChargesApp(db.pool, db.schema)));
    try {
      const headers = { 'idempotency-key': '"across-servers-1"', 'x-tenant': 'acme' };
      const before = { outbox: await count('outbox') };
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          postJson(servers[i % servers.length]!.url, '/charges', { amount: 808 }, headers),
        ),
      );
      const runs = servers.reduce((sum, server) => sum + server.executions.charges, 0);
      expect(runs).toBe(1);
      expect((await count('outbox')) - before.outbox).toBe(1);
      expect(await count('charges', `tenant = 'acme' AND amount = 808`)).toBe(1);
      const created = responses.filter((r) => r.status === 201);
      expect(created.length + responses.filter((r) => r.status === 409).length).toBe(40);
      expect(created.filter((r) => r.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
      expect(new Set(created.map((r) => r.body.toString('hex'))).size).toBe(1);
      const later = await postJson(servers[3]!.url, '/charges', { amount: 808 }, headers);
      expect(later.headers['idempotent-replayed']).toBe('true');
      expect(later.body.equals(created[0]!.body)).toBe(true);
    } finally {
      await Promise.all(servers.map((server) => server.app.close()));
    }
  });

  it('scopes and keys with quotes and backslashes are stored, isolated and replayed exactly', async () => {
    // The header is a structured-field string: \" and \\ stand for a quote and a backslash.
    const key = '"it\'s a \\"quoted\\" key \\\\ ; COMMIT"';
    const tenants = ["o'brien\\", "o'brien\\'; DROP TABLE x; --"];
    const first = await Promise.all(
      tenants.map((tenant) =>
        postJson(url, '/charges', { amount: 31 }, { 'idempotency-key': key, 'x-tenant': tenant }),
      ),
    );
    expect(first.map((r) => r.status)).toEqual([201, 201]);
    expect(json(first[0]!).id).not.toBe(json(first[1]!).id);
    const { rows } = await db.pool.query<{ scope: string; key: string }>(
      `SELECT scope, key FROM "${db.schema}".idempotency_keys WHERE scope = ANY($1) ORDER BY scope`,
      [tenants],
    );
    expect(rows).toEqual(
      [...tenants].sort().map((scope) => ({ scope, key: 'it\'s a "quoted" key \\ ; COMMIT' })),
    );
    for (const [i, tenant] of tenants.entries()) {
      const again = await postJson(
        url,
        '/charges',
        { amount: 31 },
        { 'idempotency-key': key, 'x-tenant': tenant },
      );
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body.equals(first[i]!.body)).toBe(true);
    }
  });

  it('a replay returns the same status, stored headers and byte-identical body with Idempotent-Replayed: true', async () => {
    const headers = { 'idempotency-key': 'replay-1', 'x-tenant': 'acme' };
    const first = await postJson(url, '/charges', { amount: 5, currency: 'eur' }, headers);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const runs = executions.charges;
    // Same JSON with other key order and whitespace, and the key as an sf-string: the same request.
    const second = await send(url, {
      path: '/charges',
      headers: { 'content-type': 'application/json', 'idempotency-key': '"replay-1"', 'x-tenant': 'acme' },
      body: '{ "currency": "eur",\n  "amount": 5 }',
    });
    expect(executions.charges).toBe(runs);
    expect(second.status).toBe(first.status);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.equals(first.body)).toBe(true);
    expect(second.headers.location).toBe(first.headers.location);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
  });

  it('the same key with a different body or route gets 422 problem+json and runs nothing', async () => {
    const headers = { 'idempotency-key': 'reuse-1', 'x-tenant': 'acme' };
    expect((await postJson(url, '/charges', { amount: 10 }, headers)).status).toBe(201);
    const before = {
      charges: executions.charges,
      refunds: executions.refunds,
      outbox: await count('outbox'),
    };
    const otherBody = await postJson(url, '/charges', { amount: 11 }, headers);
    expect(otherBody.status).toBe(422);
    expect(otherBody.headers['content-type']).toBe('application/problem+json');
    expect(json(otherBody)).toMatchObject({ status: 422, type: 'urn:onceflow:problem:key-reused' });
    const otherRoute = await postJson(url, '/refunds', { amount: 10 }, headers);
    expect(otherRoute.status).toBe(422);
    expect(executions.charges).toBe(before.charges);
    expect(executions.refunds).toBe(before.refunds);
    expect(await count('outbox')).toBe(before.outbox);
  });

  it('another principal with the same key is isolated: it runs its own request and never sees the first response', async () => {
    const key = 'shared-key-1';
    const a = await postJson(
      url,
      '/charges',
      { amount: 20 },
      { 'idempotency-key': key, 'x-tenant': 'tenant-a' },
    );
    const b = await postJson(
      url,
      '/charges',
      { amount: 20 },
      { 'idempotency-key': key, 'x-tenant': 'tenant-b' },
    );
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(json(b).id).not.toBe(json(a).id);
    const aAgain = await postJson(
      url,
      '/charges',
      { amount: 20 },
      { 'idempotency-key': key, 'x-tenant': 'tenant-a' },
    );
    expect(aAgain.body.equals(a.body)).toBe(true);
    // A different body under tenant b is judged against b's own request only.
    const bOther = await postJson(
      url,
      '/charges',
      { amount: 21 },
      { 'idempotency-key': key, 'x-tenant': 'tenant-b' },
    );
    expect(bOther.status).toBe(422);
  });

  it('a request without a principal is refused before anything runs', async () => {
    const runs = executions.charges;
    const r = await postJson(url, '/charges', { amount: 1 }, { 'idempotency-key': 'no-tenant' });
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(executions.charges).toBe(runs);
  });

  it('a 4xx answer after execution began is stored and replayed', async () => {
    const headers = { 'idempotency-key': 'bad-amount', 'x-tenant': 'acme' };
    const first = await postJson(url, '/charges', { amount: -1 }, headers);
    expect(first.status).toBe(400);
    const runs = executions.charges;
    const second = await postJson(url, '/charges', { amount: -1 }, headers);
    expect(second.status).toBe(400);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.equals(first.body)).toBe(true);
    expect(executions.charges).toBe(runs);
  });

  it('missing key on a required route and malformed keys get 400 problem+json; nothing runs, no key is stored', async () => {
    const runs = executions.charges;
    const keysBefore = await count('idempotency_keys');
    const cases: Array<Record<string, string | string[]>> = [
      {},
      { 'idempotency-key': '' },
      { 'idempotency-key': '""' },
      { 'idempotency-key': '"unterminated' },
      { 'idempotency-key': '"a";param=1' },
      { 'idempotency-key': '"two", "keys"' },
      // Two header lines: Node would join them into `one, two`, which must not pass for one key.
      { 'idempotency-key': ['one', 'two'] },
      { 'idempotency-key': 'tab\tinside' },
      { 'idempotency-key': 'x'.repeat(256) },
      { 'idempotency-key': `"${'x'.repeat(1000)}"` },
    ];
    for (const headers of cases) {
      const r = await postJson(url, '/charges', { amount: 3 }, { ...headers, 'x-tenant': 'acme' });
      expect(r.status, JSON.stringify(headers).slice(0, 60)).toBe(400);
      expect(r.headers['content-type']).toBe('application/problem+json');
      const problem = json(r);
      expect(problem.status).toBe(400);
      expect(['urn:onceflow:problem:key-missing', 'urn:onceflow:problem:key-malformed']).toContain(
        problem.type,
      );
    }
    expect(executions.charges).toBe(runs);
    expect(await count('idempotency_keys')).toBe(keysBefore);
  });

  it('keys that common clients send are accepted bare, and name the same key as their quoted form', async () => {
    const keys = [
      'stripe-node-retry-0d4c8f5e-3f6b-4c51-9d0b-9b7f3f1c2a10',
      '0d4c8f5e-3f6b-4c51-9d0b-9b7f3f1c2a11',
      'order 42, try 1',
    ];
    for (const key of keys) {
      const bare = await postJson(
        url,
        '/charges',
        { amount: 42 },
        { 'idempotency-key': key, 'x-tenant': 'keys' },
      );
      expect(bare.status, key).toBe(201);
      const quoted = await postJson(
        url,
        '/charges',
        { amount: 42 },
        { 'idempotency-key': `"${key}"`, 'x-tenant': 'keys' },
      );
      expect(quoted.headers['idempotent-replayed'], key).toBe('true');
      expect(quoted.body.equals(bare.body)).toBe(true);
    }
    expect(await count('charges', `tenant = 'keys'`)).toBe(keys.length);
  });

  it('a key of exactly 255 characters is accepted', async () => {
    const r = await postJson(
      url,
      '/charges',
      { amount: 4 },
      { 'idempotency-key': 'k'.repeat(255), 'x-tenant': 'acme' },
    );
    expect(r.status).toBe(201);
  });

  it('an optional route runs without a key and stores nothing', async () => {
    const keysBefore = await count('idempotency_keys');
    const r = await postJson(url, '/optional', {}, { 'x-tenant': 'acme' });
    expect(r.status).toBe(200);
    expect(await count('idempotency_keys')).toBe(keysBefore);
  });

  it('hostile input is refused before any key row is claimed: 10 MB body, invalid UTF-8, missing content type', async () => {
    const runs = executions.charges;
    const keysBefore = await count('idempotency_keys');
    const big = await send(url, {
      path: '/charges',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'hostile-big', 'x-tenant': 'acme' },
      body: Buffer.alloc(10 * 1024 * 1024, 0x20),
    }).catch((error: unknown) => error as Error);
    // The server answers 413 as soon as it sees the length; a client still writing may see the reset instead.
    if (!(big instanceof Error)) expect(big.status).toBe(413);
    const invalidUtf8 = await send(url, {
      path: '/charges',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'hostile-utf8', 'x-tenant': 'acme' },
      body: Buffer.concat([
        Buffer.from('{"amount": 5, "note": "'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}'),
      ]),
    });
    expect(invalidUtf8.status).toBe(400);
    expect(invalidUtf8.body.toString('utf8')).not.toMatch(/stack|at \//);
    // Refused bodies answer in the engine's error format, as onceflow's own checks do.
    expect(json(invalidUtf8)).toMatchObject({ type: 'urn:onceflow:problem:body-invalid', status: 400 });
    const noType = await send(url, {
      path: '/charges',
      headers: { 'idempotency-key': 'hostile-type', 'x-tenant': 'acme' },
      body: '{"amount": 5}',
    });
    expect(noType.status).toBe(415);
    expect(noType.headers['content-type']).toBe('application/problem+json');
    const loneSurrogate = await send(url, {
      path: '/charges',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': 'hostile-surrogate',
        'x-tenant': 'acme',
      },
      body: '{"amount": 5, "note": "\\ud800"}',
    });
    expect(loneSurrogate.status).toBe(400);
    expect(executions.charges).toBe(runs);
    expect(await count('idempotency_keys')).toBe(keysBefore);
  });
});

describe('outcome policy', () => {
  it('a handler that throws leaves no trace and releases the key; the retry runs once; the error never reaches the client', async () => {
    await using db2 = await createTestDatabase();
    const {
      app,
      url: url2,
      executions: runs,
    } = await startChargesApp(db2.pool, db2.schema, { failFirstFlaky: 'throw' });
    try {
      const headers = { 'idempotency-key': 'flaky-1', 'x-tenant': 'acme' };
      const failed = await postJson(url2, '/flaky', {}, headers);
      expect(failed.status).toBe(500);
      expect(failed.headers['content-type']).toBe('application/problem+json');
      expect(failed.body.toString('utf8')).not.toContain('hunter2');
      expect(failed.body.toString('utf8')).not.toContain('secret-internal-detail');
      const counts = async () =>
        (
          await db2.pool.query<{ keys: string; charges: string; outbox: string }>(
            `SELECT (SELECT count(*) FROM "${db2.schema}".idempotency_keys) AS keys,
                    (SELECT count(*) FROM "${db2.schema}".charges) AS charges,
                    (SELECT count(*) FROM "${db2.schema}".outbox) AS outbox`,
          )
        ).rows[0]!;
      expect(await counts()).toEqual({ keys: '0', charges: '0', outbox: '0' });
      const retried = await postJson(url2, '/flaky', {}, headers);
      expect(retried.status).toBe(200);
      expect(json(retried)).toEqual({ ok: true, attempt: 2 });
      const replayed = await postJson(url2, '/flaky', {}, headers);
      expect(replayed.headers['idempotent-replayed']).toBe('true');
      expect(runs.flaky).toBe(2);
      expect(await counts()).toEqual({ keys: '1', charges: '1', outbox: '1' });
    } finally {
      await app.close();
    }
  });

  it('a 5xx answer rolls back and releases the key, so the retry runs again', async () => {
    await using db2 = await createTestDatabase();
    const {
      app,
      url: url2,
      executions: runs,
    } = await startChargesApp(db2.pool, db2.schema, { failFirstFlaky: '503' });
    try {
      const headers = { 'idempotency-key': 'flaky-503', 'x-tenant': 'acme' };
      const failed = await postJson(url2, '/flaky', {}, headers);
      expect(failed.status).toBe(503);
      expect(json(failed)).toEqual({ error: 'try later' });
      const retried = await postJson(url2, '/flaky', {}, headers);
      expect(retried.status).toBe(200);
      expect(runs.flaky).toBe(2);
      const { rows } = await db2.pool.query(`SELECT count(*)::int AS n FROM "${db2.schema}".outbox`);
      expect(rows[0]!.n).toBe(1);
    } finally {
      await app.close();
    }
  });
});
