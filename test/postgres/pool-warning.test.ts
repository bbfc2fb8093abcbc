import { isOnceflowError } from '@onceflow/core';
import { createIdempotencyEngine } from '@onceflow/http';
import { createInboxConsumer, createOutboxRelay } from '@onceflow/kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, type TestDatabase, testKafka, uniqueName } from '../support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const isPoolWarning = (error: unknown): boolean =>
  isOnceflowError(error, 'OF_INVALID_OPTIONS') && /has no 'error' listener/.test((error as Error).message);

function pool(withListener: boolean): pg.Pool {
  const created = new pg.Pool({ connectionString: db.url, max: 3 });
  if (withListener) created.on('error', () => undefined);
  return created;
}

// A program whose pool has no 'error' listener dies at the first Postgres restart (pg emits 'error'
// on the pool for a broken idle connection); onceflow says so at start, once per pool.
describe("warning about a pool without an 'error' listener", () => {
  it('the inbox consumer reports it through onError at start, once per pool, and not when a listener exists', async () => {
    const topic = uniqueName('pool_warning');
    await createTopic(topic);
    const bare = pool(false);
    const guarded = pool(true);
    const errors: unknown[] = [];
    const start = (p: pg.Pool) =>
      createInboxConsumer({
        kafka: testKafka(),
        pool: p,
        schema: db.schema,
        consumer: uniqueName('pool_warning'),
        topics: [topic],
        pruneIntervalMs: 0,
        onError: (error) => errors.push(error),
        handler: async () => {},
      }).start();
    try {
      for (const p of [bare, bare, guarded]) await (await start(p)).stop();
      const warnings = errors.filter(isPoolWarning);
      expect(warnings).toHaveLength(1);
      expect((warnings[0] as Error).message).toMatch(
        /will crash the first time the Postgres server restarts/,
      );
      expect((warnings[0] as Error).message).toMatch(/pool\.on\('error'/);
    } finally {
      await bare.end();
      await guarded.end();
    }
  });

  it('the relay reports it through observer.onError at start', async () => {
    const bare = pool(false);
    const errors: Array<[unknown, string]> = [];
    try {
      const relay = await createOutboxRelay({
        pool: bare,
        kafka: testKafka(),
        schema: db.schema,
        metricsIntervalMs: 0,
        observer: { onError: (error, context) => errors.push([error, context]) },
      }).start();
      await relay.stop();
      expect(errors.filter(([error]) => isPoolWarning(error)).map(([, context]) => context)).toEqual([
        'outbox relay startup',
      ]);
    } finally {
      await bare.end();
    }
  });

  it('the idempotency engine reports it through onError when it is created', async () => {
    const bare = pool(false);
    const errors: unknown[] = [];
    try {
      createIdempotencyEngine({ pool: bare, schema: db.schema, onError: (error) => errors.push(error) });
      expect(errors.filter(isPoolWarning)).toHaveLength(1);
    } finally {
      await bare.end();
    }
  });
});
