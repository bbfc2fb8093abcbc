import { createOnceflowAdmin, createPgOutboxStore } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';
import { enqueueCommitted } from './helpers';

async function ledgerIds(db: TestDatabase): Promise<string[]> {
  const { rows } = await db.pool.query<{ event_id: string }>(
    `SELECT event_id FROM "${db.schema}".outbox_published ORDER BY seq`,
  );
  return rows.map((row) => row.event_id);
}

/** Claims every waiting row on all lanes and settles the first `publish` as published, the rest as parked. */
async function settle(db: TestDatabase, options: { publish: number; ledger?: boolean; epochShift?: number }) {
  const store = createPgOutboxStore(db.pool, {
    schema: db.schema,
    ...(options.ledger === undefined ? {} : { publishedLedger: options.ledger }),
  });
  const leases = await store.acquireLanes('relay-ledger-test', store.laneCount, 10_000);
  const rows = await store.claim(
    leases.map((lease) => lease.lane),
    100,
    [],
  );
  rows.sort((a, b) => Number(a.seq) - Number(b.seq));
  const shifted = leases.map((lease) => ({ ...lease, epoch: lease.epoch + (options.epochShift ?? 0) }));
  await store.settle({
    leases: shifted,
    published: rows.slice(0, options.publish).map((row) => ({ lane: row.lane, seq: row.seq })),
    parked: rows.slice(options.publish).map((row) => ({ lane: row.lane, seq: row.seq, error: 'refused' })),
  });
  await store.releaseLanes(leases);
}

describe('the published ledger (migration 0006)', () => {
  it('the settle statement records each published event with its relay and latency, never a parked one', async () => {
    await using db = await createTestDatabase();
    const ids = await enqueueCommitted(db, [
      { topic: 'orders', key: 'a', value: 1 },
      { topic: 'orders', key: 'b', value: 2 },
      { topic: 'orders', key: 'c', value: 3 },
    ]);
    await settle(db, { publish: 2 });
    expect(await ledgerIds(db)).toEqual(ids.slice(0, 2));
    const trace = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).traceMessage(ids[0]!);
    expect(trace.waiting).toEqual([]);
    expect(trace.published).toEqual([
      expect.objectContaining({ topic: 'orders', relay: 'relay-ledger-test', latencyMs: expect.any(Number) }),
    ]);
    const parked = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).traceMessage(ids[2]!);
    expect(parked.published).toEqual([]);
    expect(parked.waiting).toEqual([
      expect.objectContaining({ error: 'refused', parkedAt: expect.any(Date) }),
    ]);
  });

  it('a relay whose lease was taken over records nothing, as it deletes nothing', async () => {
    await using db = await createTestDatabase();
    await enqueueCommitted(db, [{ topic: 'orders', key: 'a', value: 1 }]);
    await settle(db, { publish: 1, epochShift: 1 });
    expect(await ledgerIds(db)).toEqual([]);
  });

  it('a store with publishedLedger: false publishes without recording', async () => {
    await using db = await createTestDatabase();
    await enqueueCommitted(db, [{ topic: 'orders', key: 'a', value: 1 }]);
    await settle(db, { publish: 1, ledger: false });
    expect(await ledgerIds(db)).toEqual([]);
    expect((await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).backlog).toBe(0);
  });

  it('rotation keeps a record until its generation left the retention window, then truncates it', async () => {
    await using db = await createTestDatabase();
    const [id] = await enqueueCommitted(db, [{ topic: 'orders', key: 'a', value: 1 }]);
    await settle(db, { publish: 1 });
    const rotate = async (): Promise<string> => {
      // Each generation is made older than the window (one hour), as if the hours had passed.
      await db.pool.query(
        `UPDATE "${db.schema}".outbox_published_generation SET started_at = started_at - interval '2 hours'`,
      );
      const { rows } = await db.pool.query<{ outcome: string }>(
        `SELECT "${db.schema}".outbox_published_rotate(3600) AS outcome`,
      );
      return rows[0]!.outcome;
    };
    const { rows: fresh } = await db.pool.query<{ outcome: string }>(
      `SELECT "${db.schema}".outbox_published_rotate(3600) AS outcome`,
    );
    expect(fresh[0]!.outcome).toBe('not-due');
    // Generations 1, 2 and 3 write other slots; generation 4 reuses slot 0, where the record is.
    for (let generation = 1; generation <= 3; generation++) {
      expect(await rotate()).toBe('rotated');
      expect(await ledgerIds(db)).toEqual([id]);
    }
    expect(await rotate()).toBe('rotated');
    expect(await ledgerIds(db)).toEqual([]);
  });
});
