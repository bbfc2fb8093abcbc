import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildHandle, createTestDatabase, spawnTs, type TestDatabase } from '../support';
import { send, type WireResponse } from './helpers';
import { createCustomersTable } from './stripe-app';

const serverEntry = fileURLToPath(new URL('./stripe-server.ts', import.meta.url));
let db: TestDatabase;
const servers: Array<{ handle: ChildHandle; url: string }> = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createCustomersTable(db.pool, db.schema);
  // Two server processes on one database, each with its own engine, limiter and pool.
  for (let i = 0; i < 2; i++) {
    const handle = spawnTs(serverEntry, {
      env: { STRIPE_APP_SCHEMA: db.schema, STRIPE_APP_ERROR_FORMAT: 'problem+json' },
    });
    const line = await handle.waitForLine(/^LISTENING /);
    servers.push({ handle, url: line.slice('LISTENING '.length).trim() });
  }
});

afterAll(async () => {
  await Promise.all(servers.map(({ handle }) => handle.kill()));
  await db?.drop();
});

function createCustomer(url: string, key: string, name: string): Promise<WireResponse> {
  return send(url, {
    path: '/v1/customers',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Bearer sk_test_replay',
      'idempotency-key': key,
    },
    body: new URLSearchParams({ name, 'metadata[order]': '42' }).toString(),
  });
}

async function customersNamed(name: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${db.schema}".customers WHERE name = $1`,
    [name],
  );
  return rows[0]!.n;
}

describe('a completed key is served from its stored response whatever else runs', () => {
  for (const processes of [1, 2]) {
    it(`20 concurrent retries of a completed key on ${processes} server process(es) all get the first response replayed`, async () => {
      const key = `completed-${processes}`;
      const name = `Replay ${processes}`;
      const first = await createCustomer(servers[0]!.url, key, name);
      expect(first.status).toBe(200);
      const retries = await Promise.all(
        Array.from({ length: 20 }, (_, i) => createCustomer(servers[i % processes]!.url, key, name)),
      );
      expect(retries.map((r) => r.status)).toEqual(Array(20).fill(200));
      for (const retry of retries) {
        expect(retry.headers['idempotent-replayed']).toBe('true');
        expect(retry.body.equals(first.body)).toBe(true);
      }
      expect(await customersNamed(name)).toBe(1);
    });
  }
});
