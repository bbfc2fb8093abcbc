// Invariants 1, 4 and 7 for an event whose topic does not exist (auto topic creation is off, as in
// production): only that event's key waits, every other key keeps flowing, and after a bounded time the
// event is parked with an error that names the topic — never dropped, never stalling the relay.
import { createOnceflowAdmin, type ParkedEvent } from '@onceflow/postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, type TestDatabase, uniqueName } from '../support';
import { enqueueCommitted, eventually, orderByKey, readPublished, startRelay, waitForDrain } from './helpers';

describe('an outbox event for a topic that does not exist', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function setup() {
    const db: TestDatabase = await createTestDatabase();
    cleanup.push(() => db.drop());
    const first = uniqueName('healthy_a');
    const second = uniqueName('healthy_b');
    const missing = uniqueName('missing');
    await createTopic(first, 2);
    await createTopic(second, 1);
    // One transaction, the bad events in the middle: the relay's first batch holds all of them.
    const healthy = (topic: string, from: number) =>
      Array.from({ length: 20 }, (_, i) => ({ topic, key: `k${i % 4}`, value: `${topic}-${from + i}` }));
    const ids = await enqueueCommitted(db, [
      ...healthy(first, 0).slice(0, 10),
      { topic: missing, key: 'x', value: 'x1' },
      ...healthy(second, 0).slice(0, 10),
      { topic: missing, key: 'x', value: 'x2' },
      ...healthy(first, 0).slice(10),
      ...healthy(second, 0).slice(10),
    ]);
    const expectedByKey = (topic: string) => {
      const byKey = new Map<string, string[]>();
      for (const event of healthy(topic, 0))
        byKey.set(event.key, [...(byKey.get(event.key) ?? []), event.value]);
      return byKey;
    };
    const missingEventIds = [ids[10]!, ids[21]!];
    return { db, first, second, missing, expectedByKey, missingEventIds };
  }

  it('the 40 events of existing topics are published in order while it waits; once the topic exists it follows without an operator', async () => {
    const s = await setup();
    const errors: unknown[] = [];
    const relay = await startRelay(s.db, {
      parkRefusedTopicAfterMs: 600_000,
      onError: (error) => errors.push(error),
    });
    cleanup.push(() => relay.stop());

    const first = await readPublished(s.first, 20);
    const second = await readPublished(s.second, 20);
    expect(orderByKey(first)).toEqual(s.expectedByKey(s.first));
    expect(orderByKey(second)).toEqual(s.expectedByKey(s.second));
    await eventually(async () => {
      const status = await createOnceflowAdmin({ pool: s.db.pool, schema: s.db.schema }).outboxStatus();
      return status.backlog === 2 && status.parked === 0;
    }, 'only the two events of the missing topic to wait, unparked');
    await eventually(
      () => errors.some((error) => error instanceof Error && error.message.includes(s.missing)),
      'the refusal to be reported with the topic name',
    );

    await createTopic(s.missing, 1);
    await waitForDrain(s.db);
    expect(orderByKey(await readPublished(s.missing, 2)).get('x')).toEqual(['x1', 'x2']);
  });

  it('after parkRefusedTopicAfterMs the first event of its key is parked, naming the topic; unparked after the topic exists, it is published in order', async () => {
    const s = await setup();
    const parked: ParkedEvent[] = [];
    const relay = await startRelay(s.db, {
      parkRefusedTopicAfterMs: 1_000,
      observer: { onParked: (event) => parked.push(event) },
    });
    cleanup.push(() => relay.stop());

    await readPublished(s.first, 20);
    await readPublished(s.second, 20);
    await eventually(async () => {
      const status = await createOnceflowAdmin({ pool: s.db.pool, schema: s.db.schema }).outboxStatus();
      return status.parked === 1 && status.backlog === 1;
    }, 'the first event of the missing topic to be parked, the second held back behind it');
    const rows = await createOnceflowAdmin({ pool: s.db.pool, schema: s.db.schema }).listParkedEvents();
    expect(rows.map((row) => row.eventId)).toEqual([s.missingEventIds[0]]);
    expect(rows[0]!.error).toContain(`topic "${s.missing}"`);
    expect(rows[0]!.error).toMatch(/create the topic/i);
    expect(parked.map((event) => event.topic)).toEqual([s.missing]);

    await createTopic(s.missing, 1);
    expect(
      await createOnceflowAdmin({ pool: s.db.pool, schema: s.db.schema }).unparkEvents({
        eventIds: [s.missingEventIds[0]!],
      }),
    ).toBe(1);
    await waitForDrain(s.db);
    expect(orderByKey(await readPublished(s.missing, 2)).get('x')).toEqual(['x1', 'x2']);
  });

  it('thousands of waiting events of a missing topic, each of its own key, hold back no other topic and are all parked soon after the first', async () => {
    const db: TestDatabase = await createTestDatabase();
    cleanup.push(() => db.drop());
    const healthy = uniqueName('healthy_c');
    const missing = uniqueName('missing_many');
    await createTopic(healthy, 2);
    // Far more events of the missing topic than one claim of their lanes holds, all ahead of the others.
    const waiting = 3_000;
    await enqueueCommitted(
      db,
      Array.from({ length: waiting }, (_, i) => ({ topic: missing, key: `m${i}`, value: `m${i}` })),
    );
    await enqueueCommitted(
      db,
      Array.from({ length: 40 }, (_, i) => ({ topic: healthy, key: `k${i % 4}`, value: `h${i}` })),
    );
    const admin = createOnceflowAdmin({ pool: db.pool, schema: db.schema });
    const relay = await startRelay(db, { parkRefusedTopicAfterMs: 5_000 });
    cleanup.push(() => relay.stop());

    expect(await readPublished(healthy, 40)).toHaveLength(40);
    // The healthy topic went out while the missing topic's events were still held back or being parked.
    const before = await admin.outboxStatus();
    expect(before.parked + before.backlog).toBe(waiting);
    await eventually(
      async () => (await admin.outboxStatus()).parked === waiting,
      `all ${waiting} events of the missing topic to be parked`,
    );
    expect((await admin.outboxStatus()).backlog).toBe(0);
  });
});
