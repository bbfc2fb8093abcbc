import { fileURLToPath } from 'node:url';
import { createIdempotencyCompleter, createIdempotencyEngine, defineRoute } from '@onceflow/http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildHandle, createTestDatabase, spawnTs, type TestDatabase } from '../support';
import { json, postJson, type WireResponse } from './helpers';
import { type ProviderStub, startProviderStub } from './provider-stub';
import { createRideTables, type PausePoint, ridePhases } from './ride-phases';

const serverEntry = fileURLToPath(new URL('./ride-server.ts', import.meta.url));
let db: TestDatabase;
let provider: ProviderStub;
const children: ChildHandle[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createRideTables((sql) => db.pool.query(sql), db.schema);
  provider = await startProviderStub();
});

afterAll(async () => {
  await Promise.all(children.map((child) => child.kill()));
  await provider?.close();
  await db?.drop();
});

async function startServer(pause: PausePoint): Promise<{ handle: ChildHandle; url: string }> {
  const handle = spawnTs(serverEntry, {
    env: { RIDE_SCHEMA: db.schema, RIDE_PAUSE: pause, PROVIDER_URL: provider.url, RIDE_LEASE_MS: '1000' },
  });
  children.push(handle);
  const line = await handle.waitForLine(/^LISTENING /);
  return { handle, url: line.slice('LISTENING '.length).trim() };
}

async function rows(sql: string): Promise<Record<string, unknown>[]> {
  return (await db.pool.query(sql.replaceAll('$schema', `"${db.schema}"`))).rows;
}

/** Retries while the key is in flight (409), as a client honouring Retry-After would; bounded. */
async function retryUntilSettled(send: () => Promise<WireResponse>): Promise<WireResponse> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await send();
    if (response.status !== 409) return response;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error('key stayed in flight for 100 retries');
}

/** Starts a request on a server that will freeze at `pause`, then SIGKILLs the server there. */
async function crashAt(pause: PausePoint, key: string, body: unknown): Promise<void> {
  const crashing = await startServer(pause);
  const inFlight = postJson(crashing.url, '/rides', body, {
    'idempotency-key': key,
    'x-tenant': 'rider-1',
  }).catch(() => undefined);
  await crashing.handle.waitForLine(/^PAUSED /);
  await crashing.handle.kill('SIGKILL');
  await inFlight;
}

describe('multi-phase requests with a foreign side effect (atomic phases, recovery points)', () => {
  it('process killed after the provider call: the retry resumes from the recovery point and the card is charged once', async () => {
    const key = 'ride-killed-in-phase';
    const body = { origin: 'Mission', amount: 1200 };
    const before = { calls: provider.calls, charges: provider.charges.size };
    await crashAt('after-provider-call', key, body);
    const [stuck] = await rows(
      `SELECT state, recovery_point FROM $schema.idempotency_keys WHERE key = '${key}'`,
    );
    expect(stuck).toEqual({ state: 'in_progress', recovery_point: 'ride_created' });

    const healthy = await startServer('none');
    const response = await retryUntilSettled(() =>
      postJson(healthy.url, '/rides', body, { 'idempotency-key': key, 'x-tenant': 'rider-1' }),
    );
    expect(response.status).toBe(201);
    const rides = await rows(`SELECT id, charge_id FROM $schema.rides WHERE origin = 'Mission'`);
    expect(rides).toHaveLength(1); // phase 1 did not run again
    expect(provider.charges.size - before.charges).toBe(1);
    // The retried phase called again with the same key, and the provider deduplicated it.
    expect(provider.calls - before.calls).toBe(2);
    expect(json(response)).toEqual({ rideId: rides[0]!.id, chargeId: rides[0]!.charge_id });
    expect(await rows(`SELECT topic FROM $schema.outbox WHERE topic = 'rides'`)).toHaveLength(1);
    const replay = await postJson(healthy.url, '/rides', body, {
      'idempotency-key': key,
      'x-tenant': 'rider-1',
    });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.equals(response.body)).toBe(true);
    expect(provider.calls - before.calls).toBe(2);
  });

  it('process killed between phases: the retry continues at the next phase without repeating the first', async () => {
    const key = 'ride-killed-between';
    const body = { origin: 'Soma', amount: 900 };
    const callsBefore = provider.calls;
    await crashAt('between-phases', key, body);
    expect(provider.calls).toBe(callsBefore);
    const healthy = await startServer('none');
    const response = await retryUntilSettled(() =>
      postJson(healthy.url, '/rides', body, { 'idempotency-key': key, 'x-tenant': 'rider-1' }),
    );
    expect(response.status).toBe(201);
    expect(await rows(`SELECT id FROM $schema.rides WHERE origin = 'Soma'`)).toHaveLength(1);
    expect(provider.calls).toBe(callsBefore + 1);
  });

  it('a retry while the dead process still holds its lease gets 409 with Retry-After', async () => {
    const key = 'ride-lease-held';
    const body = { origin: 'Marina', amount: 300 };
    await crashAt('between-phases', key, body);
    const healthy = await startServer('none');
    const early = await postJson(healthy.url, '/rides', body, {
      'idempotency-key': key,
      'x-tenant': 'rider-1',
    });
    // The lease is 1 s; the retry usually lands inside it. Either way nothing runs twice.
    if (early.status === 409) expect(Number(early.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    else expect(early.status).toBe(201);
    const final = await retryUntilSettled(() =>
      postJson(healthy.url, '/rides', body, { 'idempotency-key': key, 'x-tenant': 'rider-1' }),
    );
    expect(final.status).toBe(201);
    expect(await rows(`SELECT id FROM $schema.rides WHERE origin = 'Marina'`)).toHaveLength(1);
  });

  it('the completer finishes an abandoned request; the client later gets the stored response replayed', async () => {
    const key = 'ride-completed-by-completer';
    const body = { origin: 'Castro', amount: 450 };
    await crashAt('after-provider-call', key, body);
    const engine = createIdempotencyEngine({
      pool: db.pool,
      schema: db.schema,
      leaseMs: 1000,
      onError: () => undefined,
      completer: false,
    });
    engine.register(
      defineRoute(
        'POST /rides',
        ridePhases({ schema: db.schema, providerUrl: provider.url, pause: 'none' }),
        {
          required: true,
        },
      ),
    );
    const running = await engine.start();
    const completer = createIdempotencyCompleter(engine, { intervalMs: 60_000, idleMs: 0 });
    const completing = await completer.start();
    try {
      let outcomes: string[] = [];
      for (let attempt = 0; attempt < 100 && !outcomes.includes('completed'); attempt++) {
        outcomes = await completer.runOnce();
        if (!outcomes.includes('completed')) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(outcomes).toContain('completed');
    } finally {
      await completing.stop();
      await running.stop();
    }
    const [done] = await rows(
      `SELECT state, response_status FROM $schema.idempotency_keys WHERE key = '${key}'`,
    );
    expect(done).toEqual({ state: 'completed', response_status: 201 });
    const healthy = await startServer('none');
    const replay = await postJson(healthy.url, '/rides', body, {
      'idempotency-key': key,
      'x-tenant': 'rider-1',
    });
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const rides = await rows(`SELECT id, charge_id FROM $schema.rides WHERE origin = 'Castro'`);
    expect(rides).toHaveLength(1);
    expect(json(replay)).toEqual({ rideId: rides[0]!.id, chargeId: rides[0]!.charge_id });
  });
});
