import type { OutboxRelayHandle } from '@onceflow/outbox';
import { enqueue } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Internal: which lane a key falls in, to pick two keys of one lane.
import { laneOf } from '../../packages/postgres/src/outbox/enqueue';
import {
  enqueueCommitted,
  openTransaction,
  orderByKey,
  readPublished,
  waitForDrain,
  waitUntilBlockedOnAdvisoryLock,
} from '../outbox/helpers';
import { createTestDatabase, createTopic, type TestDatabase, uniqueName } from '../support';
import { adapter, adaptersUnderTest, startRelay } from './support';

// Invariant 4: for each key Kafka receives events in commit order; no committed row is skipped;
// rolled-back rows never appear and never stall the relay.
describe.each(adaptersUnderTest())('outbox commit order (%s)', (name) => {
  let db: TestDatabase;
  let relay: OutboxRelayHandle;

  beforeAll(async () => {
    db = await createTestDatabase();
    relay = await startRelay(adapter(name), db);
  });
  afterAll(async () => {
    await relay?.stop();
    await db?.drop();
  });

  it('a second writer of a key waits for the first transaction, and Kafka shows the commit order', async () => {
    const topic = uniqueName('order');
    await createTopic(topic, 3);
    const t1 = await openTransaction(db.pool);
    const t2 = await openTransaction(db.pool);
    try {
      await enqueue(t1, { topic, key: 'K', value: 'first' }, { schema: db.schema });
      const second = enqueue(t2, { topic, key: 'K', value: 'second' }, { schema: db.schema });
      await waitUntilBlockedOnAdvisoryLock(db.pool, t2.pid);
      await t1.query('COMMIT');
      await second;
      await t2.query('COMMIT');
    } finally {
      t1.release();
      t2.release();
    }
    await waitForDrain(db);
    const published = await readPublished(topic, 2);
    expect(orderByKey(published).get('K')).toEqual(['first', 'second']);
  });

  it('when the first writer of a key rolls back, the second is published and the relay keeps going', async () => {
    const topic = uniqueName('rollback');
    await createTopic(topic, 3);
    const t1 = await openTransaction(db.pool);
    const t2 = await openTransaction(db.pool);
    try {
      await enqueue(t1, { topic, key: 'K', value: 'rolled-back' }, { schema: db.schema });
      const second = enqueue(t2, { topic, key: 'K', value: 'committed' }, { schema: db.schema });
      await waitUntilBlockedOnAdvisoryLock(db.pool, t2.pid);
      await t1.query('ROLLBACK');
      await second;
      await t2.query('COMMIT');
    } finally {
      t1.release();
      t2.release();
    }
    await enqueueCommitted(db, [{ topic, key: 'K', value: 'after' }]);
    await waitForDrain(db);
    const published = await readPublished(topic, 2);
    expect(orderByKey(published).get('K')).toEqual(['committed', 'after']);
    expect(published.map((record) => record.value)).not.toContain('rolled-back');
  });

  it('a transaction that took its seq earlier but commits later is published, not skipped', async () => {
    const topic = uniqueName('late');
    await createTopic(topic, 3);
    // Two keys of the same lane, so one relay reads them in one seq-ordered stream.
    const lane = laneOf(topic, Buffer.from('early')).lane;
    let other = 0;
    while (laneOf(topic, Buffer.from(`late-${other}`)).lane !== lane) other++;
    const lateKey = `late-${other}`;

    const early = await openTransaction(db.pool);
    try {
      await enqueue(early, { topic, key: lateKey, value: 'lower seq, commits last' }, { schema: db.schema });
      await enqueueCommitted(db, [{ topic, key: 'early', value: 'higher seq, commits first' }]);
      // The higher seq is published while the lower one is still invisible...
      const first = await readPublished(topic, 1);
      expect(first.map((record) => record.value)).toEqual(['higher seq, commits first']);
      await early.query('COMMIT');
    } finally {
      early.release();
    }
    // ...and the lower seq is found afterwards: there is no high-water mark to skip it.
    await waitForDrain(db);
    const all = await readPublished(topic, 2);
    expect(all.map((record) => record.value).sort()).toEqual([
      'higher seq, commits first',
      'lower seq, commits last',
    ]);
  });
});
