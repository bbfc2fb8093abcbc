import { describe, expect, it } from 'vitest';
import { createTestDatabase, createTopic, produceRaw, readTopic, testKafka, uniqueName } from '../support';

describe('test harness against the real services', () => {
  it('produces to a fresh topic on the real broker and consumes the same records back, headers included', async () => {
    const topic = uniqueName('harness');
    await createTopic(topic, 3);
    const sent = Array.from({ length: 30 }, (_, i) => ({
      key: `k${i % 5}`,
      value: `v${i}`,
      headers: { 'message-id': `m${i}` },
    }));
    await produceRaw(topic, sent);
    const got = await readTopic(topic);
    expect(got.map((r) => r.value?.toString()).sort()).toEqual(sent.map((m) => m.value).sort());
    expect(new Set(got.map((r) => r.headers['message-id']?.toString()))).toEqual(
      new Set(sent.map((m) => m.headers['message-id'])),
    );
    // Same key, same partition: the broker kept per-key order.
    for (const key of ['k0', 'k1']) {
      const values = got
        .filter((r) => r.key?.toString() === key)
        .map((r) => Number(r.value?.toString().slice(1)));
      expect(values).toEqual([...values].sort((a, b) => a - b));
    }
  });

  it('reads to the end of a partition whose last records belong to an aborted transaction', async () => {
    const topic = uniqueName('harness_aborted');
    await createTopic(topic, 1);
    await produceRaw(topic, [{ key: 'k', value: 'committed' }]);
    const producer = testKafka().producer({
      transactionalId: uniqueName('harness_tx'),
      maxInFlightRequests: 1,
      idempotent: true,
    });
    await producer.connect();
    try {
      const tx = await producer.transaction();
      await tx.send({ topic, messages: [{ key: 'k', value: 'aborted' }] });
      await tx.abort();
    } finally {
      await producer.disconnect();
    }
    const got = await readTopic(topic, { timeoutMs: 20_000 });
    expect(got.map((r) => r.value?.toString())).toEqual(['committed']);
  });

  it('writes and reads a Postgres row in a fresh migrated schema', async () => {
    await using db = await createTestDatabase();
    await db.pool.query(`CREATE TABLE "${db.schema}".probe (id int PRIMARY KEY, note text)`);
    await db.pool.query(`INSERT INTO "${db.schema}".probe VALUES (1, 'hello')`);
    const { rows } = await db.pool.query(`SELECT note FROM "${db.schema}".probe WHERE id = 1`);
    expect(rows).toEqual([{ note: 'hello' }]);
    const migrations = await db.pool.query(
      `SELECT version FROM "${db.schema}".schema_migrations ORDER BY version`,
    );
    expect(migrations.rows.length).toBeGreaterThan(0);
  });
});
