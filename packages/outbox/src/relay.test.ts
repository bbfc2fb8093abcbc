import { isOnceflowError, OnceflowError, type PublisherTransport, type PublishRecord } from '@onceflow/core';
import type { LaneLease, OutboxRow, OutboxStore } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { createOutboxRelay } from './relay';

/** An in-memory OutboxStore with one relay's view of lanes: enough to run the relay without Postgres. */
function fakeStore(rows: OutboxRow[] = [], options: { heartbeat?: () => Promise<number> } = {}) {
  const leases = new Map<number, LaneLease>();
  const calls: string[] = [];
  const store: OutboxStore = {
    name: 'fake',
    laneCount: 2,
    heartbeat: options.heartbeat ?? (async () => 1),
    async unregister() {
      calls.push('unregister');
    },
    async acquireLanes(owner, max) {
      const acquired = [0, 1]
        .filter((lane) => !leases.has(lane))
        .slice(0, max)
        .map((lane) => ({ lane, owner, epoch: 1, previousFencingId: null }));
      for (const lane of acquired) leases.set(lane.lane, lane);
      return acquired;
    },
    async renewLanes(held) {
      return held.filter((lease) => leases.get(lease.lane)?.owner === lease.owner);
    },
    async releaseLanes(released) {
      for (const lease of released) leases.delete(lease.lane);
    },
    async claim(lanes, limit, exclude) {
      const skip = new Set(exclude.map((row) => row.seq));
      return rows.filter((row) => lanes.includes(row.lane) && !skip.has(row.seq)).slice(0, limit);
    },
    async settle({ published }) {
      const done = new Set(published.map((row) => row.seq));
      for (let i = rows.length - 1; i >= 0; i--) if (done.has(rows[i]!.seq)) rows.splice(i, 1);
      return { heldLanes: [...leases.keys()], lostLanes: [], deleted: done.size, parked: 0, parkedAt: null };
    },
    async status() {
      return { backlog: rows.length, oldestAgeMs: null, parked: 0, liveRelays: 1, ownedLanes: leases.size };
    },
    listen: ({ signal }) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      }),
  };
  return { store, calls, leases };
}

function fakeTransport() {
  const published: PublishRecord[] = [];
  const fencingIds: string[] = [];
  const transport: PublisherTransport = {
    async openLane(fencingId) {
      fencingIds.push(fencingId);
      return {
        publish: async (records) => {
          published.push(...records);
        },
        close: async () => {},
      };
    },
    close: async () => {},
  };
  return { transport, published, fencingIds };
}

const row = (seq: number): OutboxRow => ({
  lane: seq % 2,
  seq: String(seq),
  eventId: `e${seq}`,
  topic: 't',
  key: Buffer.from(`k${seq}`),
  value: null,
  headers: { 'message-id': Buffer.from(`e${seq}`) },
  ageMs: 0,
});

describe('outbox relay over an OutboxStore', () => {
  it('publishes what the store holds through any store, and names its fencing id after the store', async () => {
    const { store, calls } = fakeStore([row(1), row(2), row(3)]);
    const { transport, published, fencingIds } = fakeTransport();
    const relay = await createOutboxRelay({ store, transport, relayId: 'r1', pollIntervalMs: 10 }).start();
    for (let i = 0; i < 200 && published.length < 3; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    await relay.stop();
    expect(published.map((record) => record.headers['message-id']!.toString())).toEqual(['e1', 'e2', 'e3']);
    expect(fencingIds[0]).toBe('onceflow.outbox.fake.relay-r1');
    expect(calls).toContain('unregister');
  });

  it('create configures and start starts once: a second start() rejects with OF_ALREADY_STARTED', async () => {
    const { store } = fakeStore();
    const relay = createOutboxRelay({ store, transport: fakeTransport().transport });
    const handle = await relay.start();
    const second = await relay.start().catch((error: unknown) => error);
    await handle.stop();
    expect(isOnceflowError(second, 'OF_ALREADY_STARTED')).toBe(true);
  });

  it('a store whose schema was never migrated makes start() reject with OF_SCHEMA_MISMATCH, not OF_UNAVAILABLE', async () => {
    const { store } = fakeStore([], {
      heartbeat: async () => {
        throw new OnceflowError('OF_SCHEMA_MISMATCH', 'schema fake lacks the outbox tables');
      },
    });
    const error = await createOutboxRelay({ store, transport: fakeTransport().transport })
      .start()
      .catch((caught: unknown) => caught);
    expect(isOnceflowError(error, 'OF_SCHEMA_MISMATCH')).toBe(true);
  });

  it('takes either a pool or a store: both, or a schema beside a store, are refused at construction', () => {
    const { store } = fakeStore();
    const { transport } = fakeTransport();
    const pool = { connect: async () => undefined } as never;
    expect(() => createOutboxRelay({ store, pool, transport })).toThrow(/either pool or store/);
    expect(() => createOutboxRelay({ store, schema: 'x', transport })).toThrow(/schema belongs to the store/);
    expect(() => createOutboxRelay({ transport })).toThrow(/give a pg pool/);
  });
});
