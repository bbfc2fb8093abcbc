import diagnosticsChannel from 'node:diagnostics_channel';
import {
  type ComponentState,
  OnceflowError,
  type PublisherTransport,
  type StatusChangeMessage,
  statusChannel,
} from '@onceflow/core';
import type { LaneLease, OutboxRow, OutboxStore } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { createOutboxRelay } from './relay';

/** A store whose heartbeat fails with a refused connection while `down` says so. */
function flakyStore(rows: OutboxRow[], down: { database: boolean }): OutboxStore {
  const leases = new Map<number, LaneLease>();
  const refused = () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  return {
    name: 'fake',
    laneCount: 1,
    heartbeat: async () => {
      if (down.database) throw refused();
      return 1;
    },
    unregister: async () => undefined,
    acquireLanes: async (owner, max) =>
      [0]
        .filter((lane) => !leases.has(lane))
        .slice(0, max)
        .map((lane) => {
          const lease = { lane, owner, epoch: 1 };
          leases.set(lane, lease);
          return { ...lease, previousFencingId: null };
        }),
    renewLanes: async (held) => held.filter((lease) => leases.get(lease.lane)?.owner === lease.owner),
    releaseLanes: async (released) => {
      for (const lease of released) leases.delete(lease.lane);
    },
    claim: async (lanes, limit, exclude) => {
      const skip = new Set(exclude.map((row) => row.seq));
      return rows.filter((row) => lanes.includes(row.lane) && !skip.has(row.seq)).slice(0, limit);
    },
    settle: async ({ published }) => {
      const done = new Set(published.map((row) => row.seq));
      for (let i = rows.length - 1; i >= 0; i--) if (done.has(rows[i]!.seq)) rows.splice(i, 1);
      return { heldLanes: [...leases.keys()], lostLanes: [], deleted: done.size, parked: 0, parkedAt: null };
    },
    status: async () => ({
      backlog: rows.length,
      oldestAgeMs: null,
      parked: 0,
      liveRelays: 1,
      ownedLanes: 1,
    }),
    listen: ({ signal }) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      }),
  };
}

/** A transport whose publishes fail as a broker away does while `down` says so. */
function flakyTransport(down: {
  broker: boolean;
}): PublisherTransport & { published: number; opened: number } {
  const transport = {
    published: 0,
    opened: 0,
    // The first lane producer finds the broker there and loses it before its first publish; later
    // ones are refused while it is away (their connect and transaction init), as a real broker does.
    openLane: async () => {
      if (down.broker && transport.opened++ > 0)
        throw new OnceflowError('OF_UNAVAILABLE', 'could not open the lane producer: broker away', {
          retriable: true,
        });
      return {
        publish: async (records: readonly unknown[]) => {
          if (down.broker)
            throw new OnceflowError('OF_PUBLISH_FAILED', 'publish failed, will retry: broker away', {
              retriable: true,
            });
          transport.published += records.length;
        },
        close: async () => undefined,
      };
    },
    close: async () => undefined,
  };
  return transport;
}

const row = (seq: number): OutboxRow => ({
  lane: 0,
  seq: String(seq),
  eventId: `e${seq}`,
  topic: 't',
  key: Buffer.from('k'),
  value: null,
  headers: { 'message-id': Buffer.from(`e${seq}`) },
  ageMs: 0,
});

async function until(what: string, probe: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('outbox relay status()', () => {
  it('goes from waiting for the database to running, to waiting for the broker while publishes fail, back to running, and to stopped', async () => {
    const down = { database: true, broker: true };
    const rows = [row(1), row(2)];
    const transport = flakyTransport(down);
    const reported: string[] = [];
    const relay = createOutboxRelay({
      store: flakyStore(rows, down),
      transport,
      pollIntervalMs: 10,
      heartbeatIntervalMs: 20,
      leaseMs: 1_000,
      retry: { initialDelayMs: 10, maxDelayMs: 20 },
      onError: (error) => void reported.push(error.code),
      relayId: 'status-r1',
    });
    const states: ComponentState[] = [];
    const listener = (message: unknown): void => {
      const change = message as StatusChangeMessage;
      if (change.name === 'status-r1') states.push(change.state as ComponentState);
    };
    diagnosticsChannel.subscribe(statusChannel, listener);
    try {
      expect(relay.status().state).toBe('starting');
      const starting = relay.start();
      await until('waiting for the database', () => relay.status().state === 'waiting-for-database');
      expect(relay.status().lastError?.code).toBe('OF_UNAVAILABLE');
      down.database = false;
      const handle = await starting;
      await until('waiting for the broker', () => handle.status().state === 'waiting-for-broker');
      // The failed publish, or a later refused reopen of the lane, whichever came last.
      expect(['OF_PUBLISH_FAILED', 'OF_UNAVAILABLE']).toContain(handle.status().lastError?.code);
      expect(reported).toContain('OF_PUBLISH_FAILED');
      down.broker = false;
      await until('the rows to be published', () => transport.published === 2);
      await until('running again', () => handle.status().state === 'running');
      await handle.stop();
      expect(handle.status().state).toBe('stopped');
      expect(relay.status().state).toBe('stopped');
    } finally {
      diagnosticsChannel.unsubscribe(statusChannel, listener);
    }
    expect(states).toEqual([
      'waiting-for-database',
      'running',
      'waiting-for-broker',
      'running',
      'stopping',
      'stopped',
    ]);
  });
});
