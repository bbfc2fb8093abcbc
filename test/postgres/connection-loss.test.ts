import { runInTransaction } from '@onceflow/postgres';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE "${db.schema}".rows (attempt int NOT NULL)`);
});
afterAll(async () => {
  await db?.drop();
});

/** Terminates the backend of `client` from another connection and waits until it is gone. */
async function terminate(client: PoolClient): Promise<void> {
  const pid = (client as unknown as { processID: number }).processID;
  await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
  for (;;) {
    const { rows } = await db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
    if (rows.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Let the client read the server's goodbye, which it reports as an 'error' event.
  await new Promise((resolve) => setTimeout(resolve, 100));
}

describe('runInTransaction when its connection is killed', () => {
  // Without an error listener on the checked-out client, the terminated backend's 'error' event
  // ends the process (here: an unhandled error that fails the run).
  it('a backend terminated between two queries of the work: no crash, the work is re-run on a new connection and commits once', async () => {
    let attempts = 0;
    const result = await runInTransaction(
      db.pool,
      async (client) => {
        attempts++;
        await client.query(`INSERT INTO "${db.schema}".rows (attempt) VALUES ($1)`, [attempts]);
        if (attempts === 1) await terminate(client);
        await client.query(`INSERT INTO "${db.schema}".rows (attempt) VALUES ($1)`, [attempts]);
        return attempts;
      },
      { retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 10, multiplier: 1, jitter: 0 } },
    );
    expect(result).toBe(2);
    const { rows } = await db.pool.query<{ attempt: number }>(`SELECT attempt FROM "${db.schema}".rows`);
    expect(rows.map((row) => row.attempt)).toEqual([2, 2]);
  });
});
