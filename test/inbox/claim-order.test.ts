import { createPgInboxStore, type InboxTransaction, type TransactionContext } from '@onceflow/postgres';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase, uniqueName } from '../support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const pidOf = (tx: InboxTransaction<TransactionContext>): number =>
  (tx.context.client as unknown as { processID: number }).processID;

/** Resolves once every backend of `pids` waits for a lock (a row another transaction inserted). */
async function untilAllWaitForLocks(pool: Pool, pids: number[]): Promise<void> {
  for (;;) {
    const { rows } = await pool.query<{ waiting: number }>(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE pid = ANY($1) AND wait_event_type = 'Lock'`,
      [pids],
    );
    if (rows[0]!.waiting === pids.length) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('inbox claim lock order', () => {
  // Two partitions carry the same ids (duplicated production) in opposite orders. A third claim holds
  // the middle id uncommitted, so both claims are stopped at it, each having inserted the ids it
  // meets first; once it rolls back they continue. Inserted in arrival order, each now needs ids the
  // other holds: a deadlock. Inserted in id order, the second claim never got past the first shared id.
  it('two claims with overlapping ids in opposite orders on different partitions do not deadlock; each id is fresh once', async () => {
    const store = createPgInboxStore(db.pool, { schema: db.schema });
    const consumer = uniqueName('order');
    const ids = Array.from({ length: 11 }, (_, i) => `id-${String(i).padStart(2, '0')}`);
    const middle = ids[5]!;
    const claim = (tx: InboxTransaction<TransactionContext>, partition: number, order: string[]) =>
      tx.claim({
        consumer,
        topic: 't',
        partition,
        entries: order.map((id, offset) => ({ id, offset: String(offset) })),
      });

    const holder = await store.begin();
    await claim(holder, 2, [middle]);
    const ascending = await store.begin();
    const descending = await store.begin();
    const first = claim(ascending, 0, ids).then(
      async (result) => {
        await ascending.commit();
        return result;
      },
      async (error: unknown) => {
        await ascending.rollback();
        throw error;
      },
    );
    const second = claim(descending, 1, [...ids].reverse()).then(
      async (result) => {
        await descending.commit();
        return result;
      },
      async (error: unknown) => {
        await descending.rollback();
        throw error;
      },
    );
    first.catch(() => undefined);
    second.catch(() => undefined);
    await untilAllWaitForLocks(db.pool, [pidOf(ascending), pidOf(descending)]);
    await holder.rollback();

    const outcomes = await Promise.allSettled([first, second]);
    const deadlocks = outcomes.filter(
      (outcome) => outcome.status === 'rejected' && (outcome.reason as { code?: string }).code === '40P01',
    );
    expect(deadlocks, 'deadlock detected').toEqual([]);
    const [a, b] = outcomes.map((outcome) =>
      outcome.status === 'fulfilled' ? outcome.value.fresh.size : -1,
    );
    // Every id is fresh in exactly one of the two claims.
    expect(a! + b!).toBe(ids.length);
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(DISTINCT message_id)::int AS n FROM "${db.schema}".inbox WHERE consumer = $1`,
      [consumer],
    );
    expect(rows[0]!.n).toBe(ids.length);
  });
});
