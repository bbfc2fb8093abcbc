// Conformance: the relay under broker trouble — an outage of the broker (a private one, killed and
// restarted), an event too large for its topic (parked, its key held back), and a refused batch
// narrowed down so that the healthy rows of it become visible.
import type { OutboxRelayHandle } from '@onceflow/outbox';
import { createOnceflowAdmin } from '@onceflow/postgres';
import { Partitioners } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  enqueueCommitted,
  eventually,
  idCounts,
  orderByKey,
  readPublished,
  waitForDrain,
} from '../outbox/helpers';
import { createTestDatabase, startPrivateKafka, type TestDatabase, testKafka, uniqueName } from '../support';
import { descriptor } from './adapters';
import { adapter, adaptersUnderTest, startRelay } from './support';

describe.each(adaptersUnderTest())('outbox relay failures (%s)', (name) => {
  const subject = adapter(name);
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    return db;
  }

  // Invariant 4 under outage: the backlog waits in Postgres and drains, complete and in order.
  it('with the broker down under enqueue load, the backlog grows and nothing is lost after it returns', async () => {
    const broker = await startPrivateKafka();
    cleanup.push(() => broker.stop());
    const db = await database();
    const topic = uniqueName('outage');
    await broker.createTopic(topic, 3);
    let errorsDuringOutage = 0;
    let outage = false;
    const relay: OutboxRelayHandle = await startRelay(descriptor(name, broker.brokers), db, {
      onError: () => void (outage && errorsDuringOutage++),
    });
    cleanup.push(() => relay.stop());

    const keys = ['a', 'b', 'c', 'd', 'e'];
    const expected = new Map<string, string[]>(keys.map((key) => [key, []]));
    const load = async (from: number, to: number): Promise<void> => {
      for (let txn = from; txn < to; txn++) {
        const events = keys.map((key, j) => ({ topic, key, value: `t${txn}-${j}` }));
        await enqueueCommitted(db, events);
        for (const event of events) expected.get(event.key)!.push(event.value);
      }
    };

    await load(0, 10);
    await waitForDrain(db);
    outage = true;
    await broker.kill('SIGKILL');
    await load(10, 40);
    await eventually(() => errorsDuringOutage >= 2, 'the relay to fail publishing during the outage');
    const during = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus();
    expect(during.backlog).toBeGreaterThan(0);
    await load(40, 50);
    await broker.restart();
    outage = false;

    await waitForDrain(db, 120_000);
    const published = await readPublished(topic, 50 * keys.length, 90_000, broker.client());
    const byKey = orderByKey(published);
    for (const key of keys) expect(byKey.get(key), `key ${key}`).toEqual(expected.get(key));
    expect(new Set(published.map((record) => record.id)).size).toBe(50 * keys.length);
  });

  // Invariant 1 for the outbox: a poisoned event is parked with its error, never dropped, and holds
  // back only its own key.
  it('an event too large for the topic is parked with its error; its key waits, other keys continue', async () => {
    const db = await database();
    const topic = uniqueName('oversize');
    const admin = testKafka().admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'max.message.bytes', value: '4096' }] }],
    });
    const big = 'x'.repeat(20_000);
    const [, tooBigId, heldId] = await enqueueCommitted(db, [
      { topic, key: 'poisoned', value: 'p1' },
      { topic, key: 'poisoned', value: big },
      { topic, key: 'poisoned', value: 'p3' },
      { topic, key: 'healthy', value: 'h1' },
      { topic, key: 'healthy', value: 'h2' },
      { topic, key: null, value: 'keyless' },
    ]);
    const parked: string[] = [];
    const relay = await startRelay(subject, db, {
      observer: { onParked: (event) => parked.push(event.eventId) },
    });
    cleanup.push(() => relay.stop());
    await enqueueCommitted(db, [{ topic, key: 'healthy', value: 'h3' }]);

    // Everything is published but the parked event and the one behind it in its key.
    await eventually(async () => {
      const status = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus();
      return status.parked === 1 && status.backlog === 1;
    }, 'the oversized event to be parked and the rest published');
    const published = await readPublished(topic, 5);
    const byKey = orderByKey(published);
    expect(byKey.get('healthy')).toEqual(['h1', 'h2', 'h3']);
    expect(byKey.get(null)).toEqual(['keyless']);
    expect(byKey.get('poisoned')).toEqual(['p1']);
    expect(parked).toEqual([tooBigId]);
    const rows = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).listParkedEvents();
    expect(rows.map((row) => row.eventId)).toEqual([tooBigId]);
    expect(rows[0]!.error).toMatch(/larger than the max message size/);
    // The event behind it in the same key is still waiting, neither published nor parked.
    const { rows: waiting } = await db.pool.query(
      `SELECT event_id FROM "${db.schema}".outbox WHERE parked_at IS NULL`,
    );
    expect(waiting.map((row) => row.event_id)).toEqual([heldId]);

    // Once the cause is fixed, unparking publishes the key's events in order.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: 2 /* TOPIC */,
          name: topic,
          configEntries: [{ name: 'max.message.bytes', value: '1048576' }],
        },
      ],
    });
    expect(
      await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).unparkEvents({ eventIds: [tooBigId!] }),
    ).toBe(1);
    await waitForDrain(db);
    const after = await readPublished(topic, 7);
    expect(orderByKey(after).get('poisoned')).toEqual(['p1', big, 'p3']);
    expect(idCounts(after).get(heldId!)).toBe(1);
  });

  // Invariant 4 under a refused batch: a row the broker accepted is visible, not merely acknowledged.
  // The refused attempt's other partition is appended and aborted; resending that row under the same
  // producer epoch would be acknowledged as a duplicate of the aborted record and never be seen.
  it('a healthy event refused together with an oversized one in another partition is visible after the narrowing', async () => {
    const db = await database();
    const topic = uniqueName('refused');
    const admin = testKafka().admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'max.message.bytes', value: '4096' }] }],
    });
    // Both adapters hash keys as the Java client does (murmur2, sign bit cleared).
    const partitionOf = (key: string): number =>
      Partitioners.DefaultPartitioner()({
        topic,
        partitionMetadata: [0, 1].map((partitionId) => ({
          partitionErrorCode: 0,
          partitionId,
          leader: 1,
          replicas: [1],
          isr: [1],
        })),
        message: { key, value: null },
      });
    const healthyKey = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7'].find(
      (key) => partitionOf(key) !== partitionOf('poisoned'),
    )!;
    // One transaction, so the relay's first batch holds both rows and its first send spans both partitions.
    const [tooBigId, healthyId] = await enqueueCommitted(db, [
      { topic, key: 'poisoned', value: 'x'.repeat(20_000) },
      { topic, key: healthyKey, value: 'fine' },
    ]);
    const relay = await startRelay(subject, db);
    cleanup.push(() => relay.stop());

    await eventually(async () => {
      const status = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus();
      return status.parked === 1 && status.backlog === 0;
    }, 'the oversized event to be parked and the healthy one settled');
    const rows = await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).listParkedEvents();
    expect(rows.map((row) => row.eventId)).toEqual([tooBigId]);
    const published = await readPublished(topic, 1, 30_000);
    expect(published.map((record) => record.id)).toEqual([healthyId]);
    expect(published[0]!.partition).toBe(partitionOf(healthyKey));
  });
});
