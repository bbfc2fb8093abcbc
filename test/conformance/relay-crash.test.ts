import { fileURLToPath } from 'node:url';
import { createOnceflowAdmin } from '@onceflow/postgres';
import { afterEach, describe, expect, it } from 'vitest';
import {
  enqueueCommitted,
  eventually,
  idCounts,
  orderByKey,
  readPublished,
  waitForDrain,
} from '../outbox/helpers';
import {
  type ChildHandle,
  createTestDatabase,
  createTopic,
  spawnTs,
  type TestDatabase,
  uniqueName,
} from '../support';
import { adapter, adapterEnv, adaptersUnderTest, startRelay } from './support';

const relayProcess = fileURLToPath(new URL('./fixtures/relay-process.ts', import.meta.url));

// Invariants 4 and 1 across crashes: a committed event reaches Kafka at least once with a stable id,
// in commit order per key, also when the relay publishing it dies or is replaced.
describe.each(adaptersUnderTest())('outbox relay crashes and takeovers (%s)', (name) => {
  const subject = adapter(name);
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function setup(): Promise<{ db: TestDatabase; topic: string }> {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const topic = uniqueName('relay-crash');
    await createTopic(topic, 3);
    return { db, topic };
  }

  function spawnRelay(db: TestDatabase, env: Record<string, string> = {}): ChildHandle {
    const child = spawnTs(relayProcess, { env: { ...adapterEnv(subject), SCHEMA: db.schema, ...env } });
    cleanup.push(() => child.kill('SIGKILL'));
    return child;
  }

  it('a relay SIGKILLed between broker ack and settle is republished with the same message id, nothing lost', async () => {
    const { db, topic } = await setup();
    const events = Array.from({ length: 30 }, (_, i) => ({
      topic,
      key: i % 3 === 0 ? 'pause' : `k${i % 5}`,
      value: `v${i}`,
    }));
    const ids = await enqueueCommitted(db, events);

    const child = spawnRelay(db, { RELAY_PAUSE: 'after-ack', PAUSE_KEY: 'pause' });
    const acked = (await child.waitForLine(/^acked /)).slice('acked '.length).split(',');
    await child.kill('SIGKILL');
    // The acknowledged rows were never settled: they are still in the outbox.
    expect(
      (await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).backlog,
    ).toBeGreaterThanOrEqual(acked.length);

    const relay = await startRelay(subject, db);
    cleanup.push(() => relay.stop());
    await waitForDrain(db);
    const published = await readPublished(topic, events.length + acked.length);
    const counts = idCounts(published);
    for (const id of ids) expect(counts.get(id), `event ${id}`).toBeGreaterThanOrEqual(1);
    for (const id of acked) expect(counts.get(id), `acked event ${id}`).toBe(2);
    const byKey = orderByKey(published);
    for (const key of new Set(events.map((event) => event.key)))
      expect(byKey.get(key)).toEqual(events.filter((event) => event.key === key).map((event) => event.value));
  });

  it('two relays share the lanes; when one is killed mid-stream the other takes over and per-key order holds', async () => {
    const { db, topic } = await setup();
    const child = spawnRelay(db);
    await child.waitForLine(/^started /);
    await eventually(
      async () =>
        (await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).outboxStatus()).ownedLanes === 16,
      'relay A to own all lanes',
    );

    const relay = await startRelay(subject, db);
    cleanup.push(() => relay.stop());
    // Fair share: with two live relays each ends up with half the lanes.
    await eventually(() => relay.ownedLanes().length === 8, 'relay B to own its fair share of lanes');

    const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
    const expected = new Map<string, string[]>(keys.map((key) => [key, []]));
    let killed = false;
    for (let txn = 0; txn < 40; txn++) {
      const events = keys.slice(0, 5).map((_, j) => {
        const key = keys[(txn + j * 3) % keys.length]!;
        return { topic, key, value: `t${txn}-${j}` };
      });
      await enqueueCommitted(db, events);
      for (const event of events) expected.get(event.key)!.push(event.value);
      if (txn === 15) {
        await child.waitForLine(/^published /);
        await child.kill('SIGKILL');
        killed = true;
      }
    }
    expect(killed).toBe(true);
    await eventually(() => relay.ownedLanes().length === 16, "relay B to take over the dead relay's lanes");
    await waitForDrain(db);
    const total = [...expected.values()].reduce((sum, values) => sum + values.length, 0);
    const byKey = orderByKey(await readPublished(topic, total));
    for (const key of keys) expect(byKey.get(key), `key ${key}`).toEqual(expected.get(key));
  });

  it('a relay paused past its lease (SIGSTOP) is fenced: after SIGCONT nothing it sends becomes visible', async () => {
    const { db, topic } = await setup();
    const before = Array.from({ length: 12 }, (_, i) => ({
      topic,
      key: i % 2 === 0 ? 'fenced' : 'other',
      value: `before-${i}`,
    }));
    const beforeIds = await enqueueCommitted(db, before);

    const stale = spawnRelay(db, { RELAY_PAUSE: 'before-publish', PAUSE_KEY: 'fenced', PAUSE_MS: '4000' });
    const claimed = (await stale.waitForLine(/^claimed /)).slice('claimed '.length).split(',');
    stale.child.kill('SIGSTOP');
    cleanup.push(async () => stale.child.kill('SIGCONT'));

    // Relay B takes the lanes once the stopped relay's leases expire, and publishes everything.
    const relay = await startRelay(subject, db);
    cleanup.push(() => relay.stop());
    await eventually(() => relay.ownedLanes().length === 16, 'the new relay to take over every lane');
    const after = Array.from({ length: 6 }, (_, i) => ({ topic, key: 'fenced', value: `after-${i}` }));
    const afterIds = await enqueueCommitted(db, after);
    await waitForDrain(db);

    // The stale relay wakes up holding a claimed batch and publishes it with its old producer.
    stale.child.kill('SIGCONT');
    await stale.waitForLine(/^resumed/);
    await stale.waitForLine(/^lost lane=/);
    await waitForDrain(db);

    const published = await readPublished(topic, before.length + after.length);
    const counts = idCounts(published);
    expect(claimed.length).toBeGreaterThan(0);
    // Exactly once: the stale relay's transaction was aborted by the fence, nothing of it is visible.
    for (const id of [...beforeIds, ...afterIds]) expect(counts.get(id), `event ${id}`).toBe(1);
    expect(published).toHaveLength(before.length + after.length);
    expect(stale.output()).not.toMatch(/^published /m);
    const byKey = orderByKey(published);
    expect(byKey.get('fenced')).toEqual(
      [...before, ...after].filter((e) => e.key === 'fenced').map((e) => e.value),
    );
    expect(byKey.get('other')).toEqual(before.filter((e) => e.key === 'other').map((e) => e.value));
  });
});
