// Invariants 1, 4 and 7 for an event whose topic does not exist (auto topic creation is off, as in
// production): only that event's key waits, every other key keeps flowing, and after a bounded time the
// event is parked with an error that names the topic — never dropped, never stalling the relay.
import type { ParkedEvent } from '@onceflow/outbox';
import { listParkedOutboxEvents, readOutboxStatus, unparkOutboxEvents } from '@onceflow/postgres';
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
      observer: { onError: (error) => errors.push(error) },
    });
    cleanup.push(() => relay.stop());

    const first = await readPublished(s.first, 20);
    const second = await readPublished(s.second, 20);
    expect(orderByKey(first)).toEqual(s.expectedByKey(s.first));
    expect(orderByKey(second)).toEqual(s.expectedByKey(s.second));
    await eventually(async () => {
      const status = await readOutboxStatus(s.db.pool, { schema: s.db.schema });
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
      const status = await readOutboxStatus(s.db.pool, { schema: s.db.schema });
      return status.parked === 1 && status.backlog === 1;
    }, 'the first event of the missing topic to be parked, the second held back behind it');
    const rows = await listParkedOutboxEvents(s.db.pool, { schema: s.db.schema });
    expect(rows.map((row) => row.eventId)).toEqual([s.missingEventIds[0]]);
    expect(rows[0]!.lastError).toContain(`topic "${s.missing}"`);
    expect(rows[0]!.lastError).toMatch(/create the topic/i);
    expect(parked.map((event) => event.topic)).toEqual([s.missing]);

    await createTopic(s.missing, 1);
    expect(
      await unparkOutboxEvents(s.db.pool, { schema: s.db.schema, eventIds: [s.missingEventIds[0]!] }),
    ).toBe(1);
    await waitForDrain(s.db);
    expect(orderByKey(await readPublished(s.missing, 2)).get('x')).toEqual(['x1', 'x2']);
  });
});
