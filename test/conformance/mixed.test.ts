// Mixed use: a relay of one adapter feeding an inbox consumer of the other, both ways. What one writes
// the other reads the same: message ids, keys, headers, the partition of a key, and only committed
// transactions (an aborted one written by the other client is never handled).
import { Producer } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInboxDatabase, waitFor } from '../inbox/helpers';
import { enqueueCommitted, waitForDrain } from '../outbox/helpers';
import { brokers, createTopic, type TestDatabase, testKafka, uniqueName } from '../support';
import type { AdapterName } from './adapters';
import { adapter, adaptersUnderTest, startConsumer, startRelay } from './support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Writes `value` to partition 0 of `topic` in a transaction that is aborted, through the client of `by`. */
async function abortedTransaction(by: AdapterName, topic: string, value: string): Promise<void> {
  if (by === 'kafkajs') {
    const producer = testKafka().producer({
      transactionalId: uniqueName('aborting'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    try {
      const transaction = await producer.transaction();
      await transaction.send({
        topic,
        acks: -1,
        messages: [{ key: 'aborted', value, partition: 0, headers: { 'message-id': value } }],
      });
      await transaction.abort();
    } finally {
      await producer.disconnect();
    }
    return;
  }
  const producer = new Producer({
    clientId: 'onceflow-mixed',
    bootstrapBrokers: brokers(),
    idempotent: true,
    transactionalId: uniqueName('aborting'),
    producerId: -1n,
    producerEpoch: -1,
  });
  try {
    const transaction = await producer.beginTransaction();
    await transaction.send({
      messages: [
        {
          topic,
          partition: 0,
          key: Buffer.from('aborted'),
          value: Buffer.from(value),
          headers: new Map([[Buffer.from('message-id'), Buffer.from(value)]]),
        },
      ],
    });
    await transaction.abort();
  } finally {
    await producer.close(true);
  }
}

const both = adaptersUnderTest().length === 2;
const pairs: Array<[AdapterName, AdapterName]> = [
  ['kafkajs', 'platformatic'],
  ['platformatic', 'kafkajs'],
];

describe.skipIf(!both).each(pairs)('a %s relay feeding a %s inbox consumer', (relayName, consumerName) => {
  it('delivers ids, keys, headers and partitions as sent, and nothing of an aborted transaction', async () => {
    const topic = uniqueName('mixed');
    const consumer = uniqueName('c');
    await createTopic(topic, 3);
    const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    // An aborted transaction of the consumer's own client first, then the relay's committed ones.
    await abortedTransaction(consumerName, topic, `${consumer}-aborted`);
    const ids = await enqueueCommitted(
      db,
      keys.map((key, i) => ({
        topic,
        key,
        value: { i },
        headers: { 'x-trace': `trace-${i}`, 'x-bytes': Buffer.from([0, 1, 2, i]) },
      })),
    );
    const relay = await startRelay(adapter(relayName), db);
    try {
      await waitForDrain(db);
    } finally {
      await relay.stop();
    }
    const seen: Array<{
      id: string;
      key: string;
      partition: number;
      trace: string;
      bytes: string;
      value: string;
    }> = [];
    await using _handle = await startConsumer(adapter(consumerName), db, {
      consumer,
      topics: [topic],
      handler: async (message) => {
        const header = (name: string): Buffer =>
          Buffer.isBuffer(message.headers[name])
            ? (message.headers[name] as Buffer)
            : Buffer.from(String(message.headers[name]));
        seen.push({
          id: message.id,
          key: message.key?.toString('utf8') ?? '',
          partition: message.partition,
          trace: header('x-trace').toString('utf8'),
          bytes: header('x-bytes').toString('hex'),
          value: message.value?.toString('utf8') ?? '',
        });
      },
    });
    await waitFor('every relayed event', async () => seen.length >= keys.length);
    // A little longer: anything of the aborted transaction would show now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(seen.map((m) => m.id).sort()).toEqual([...ids].sort());
    expect(seen.some((m) => m.key === 'aborted')).toBe(false);
    const byId = new Map(seen.map((m) => [m.id, m]));
    keys.forEach((key, i) => {
      const message = byId.get(ids[i]!)!;
      expect(message.key).toBe(key);
      expect(message.trace).toBe(`trace-${i}`);
      expect(message.bytes).toBe(Buffer.from([0, 1, 2, i]).toString('hex'));
      expect(JSON.parse(message.value)).toEqual({ i });
    });
    // Both relays hash keys as the Java client does: a key's partition does not depend on the adapter.
    const partitions = new Map<string, number>();
    for (const message of seen) partitions.set(message.key, message.partition);
    const other = uniqueName('mixed-other');
    await createTopic(other, 3);
    await enqueueCommitted(
      db,
      keys.map((key) => ({ topic: other, key, value: 'again' })),
    );
    const otherRelay = await startRelay(adapter(consumerName), db);
    try {
      await waitForDrain(db);
    } finally {
      await otherRelay.stop();
    }
    const again = new Map<string, number>();
    await using _second = await startConsumer(adapter(relayName), db, {
      consumer: uniqueName('c'),
      topics: [other],
      handler: async (message) => {
        again.set(message.key?.toString('utf8') ?? '', message.partition);
      },
    });
    await waitFor('the second relay’s events', async () => again.size >= keys.length);
    expect(again).toEqual(partitions);
  });
});
