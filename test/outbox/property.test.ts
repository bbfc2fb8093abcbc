import { isTransientDatabaseError } from '@onceflow/core';
import type { OutboxRelayHandle } from '@onceflow/outbox';
import { enqueue } from '@onceflow/postgres';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, type TestDatabase, uniqueName } from '../support';
import { orderByKey, readPublished, startRelay, waitForDrain } from './helpers';

/** One generated transaction: its events (key indexes), whether it commits, and pauses between steps. */
interface TxnPlan {
  keys: number[];
  commit: boolean;
  startDelayMs: number;
  stepDelayMs: number;
  endDelayMs: number;
}

const txnPlan = fc.record({
  keys: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }),
  commit: fc.boolean(),
  startDelayMs: fc.integer({ min: 0, max: 15 }),
  stepDelayMs: fc.integer({ min: 0, max: 10 }),
  endDelayMs: fc.integer({ min: 0, max: 25 }),
});

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Invariant 4 as a property: over random concurrent transactions, commits and rollbacks across keys,
// the published set equals the committed set and each key's order equals its commit order.
describe('outbox publishing under random concurrent transactions', () => {
  let db: TestDatabase;
  let relay: OutboxRelayHandle;
  let topic: string;
  let run = 0;
  let committedSoFar = 0;

  beforeAll(async () => {
    db = await createTestDatabase({ poolSize: 12 });
    topic = uniqueName('outbox-prop');
    await createTopic(topic, 3);
    relay = await startRelay(db);
  });
  afterAll(async () => {
    await relay?.stop();
    await db?.drop();
  });

  it('published set = committed set, and per-key order = commit order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(txnPlan, { minLength: 2, maxLength: 8 }), async (plans: TxnPlan[]) => {
        const runId = `r${run++}`;
        // Commit order as the clients observe it: the order in which COMMIT returned.
        const committed: { key: string; value: string }[] = [];
        await Promise.all(
          plans.map(async (plan, t) => {
            await pause(plan.startDelayMs);
            const client = await db.pool.connect();
            const mine: { key: string; value: string }[] = [];
            try {
              await client.query('BEGIN');
              for (const [i, k] of plan.keys.entries()) {
                const event = { key: `${runId}-k${k}`, value: `${runId}-t${t}-e${i}` };
                await enqueue(client, { topic, ...event }, { schema: db.schema });
                mine.push(event);
                await pause(plan.stepDelayMs);
              }
              await pause(plan.endDelayMs);
              if (plan.commit) {
                await client.query('COMMIT');
                committed.push(...mine);
              } else await client.query('ROLLBACK');
            } catch (error) {
              // Two transactions locking the same keys in opposite orders deadlock; Postgres rolls one back.
              await client.query('ROLLBACK').catch(() => undefined);
              if (!isTransientDatabaseError(error)) throw error;
            } finally {
              client.release();
            }
          }),
        );
        committedSoFar += committed.length;
        await waitForDrain(db);
        const published = (await readPublished(topic, committedSoFar)).filter((r) =>
          r.key?.startsWith(`${runId}-`),
        );
        expect(new Set(published.map((r) => r.value))).toEqual(new Set(committed.map((e) => e.value)));
        const byKey = orderByKey(published);
        for (const key of new Set(committed.map((e) => e.key)))
          expect(byKey.get(key), `order of ${key}`).toEqual(
            committed.filter((e) => e.key === key).map((e) => e.value),
          );
      }),
      { numRuns: 25 },
    );
  });
});
