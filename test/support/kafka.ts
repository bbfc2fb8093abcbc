import type { IHeaders } from 'kafkajs';
import { testKafka, uniqueName } from './services';

/** A message as read back from a topic. */
export interface RawRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  timestamp: string;
}

/** A message to produce as is, headers included. */
export interface RawMessage {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Record<string, string | Buffer>;
  partition?: number;
}

/** Creates a topic with `partitions` partitions and waits for its leaders. */
export async function createTopic(
  name: string,
  partitions = 1,
  configEntries: Record<string, string> = {},
): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        {
          topic: name,
          numPartitions: partitions,
          replicationFactor: 1,
          configEntries: Object.entries(configEntries).map(([configName, value]) => ({
            name: configName,
            value,
          })),
        },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/** Produces messages exactly as given (no onceflow headers added), acknowledged by all replicas. */
export async function produceRaw(topic: string, messages: RawMessage[]): Promise<void> {
  const producer = testKafka().producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 500) {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(i, i + 500).map((m) => ({
          key: m.key ?? null,
          value: m.value,
          ...(m.headers ? { headers: m.headers } : {}),
          ...(m.partition === undefined ? {} : { partition: m.partition }),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

function toHeaders(headers: IHeaders | undefined): Record<string, Buffer> {
  const result: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) result[name] = Buffer.isBuffer(first) ? first : Buffer.from(first);
  }
  return result;
}

/** Options of {@link readTopic}. */
export interface ReadTopicOptions {
  /** Keep reading until at least this many records arrived (beyond the current end if needed). */
  minMessages?: number;
  /** Fail after this many milliseconds. Default: 30 000. */
  timeoutMs?: number;
}

/**
 * Reads a topic from the beginning (read_committed) up to its end as it is when called, or until
 * `minMessages` records arrived. Records come in partition order within each partition.
 */
export async function readTopic(topic: string, options: ReadTopicOptions = {}): Promise<RawRecord[]> {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  const reached = new Map<number, bigint>();
  const records: RawRecord[] = [];
  const minMessages = options.minMessages ?? 0;
  const done = (): boolean =>
    records.length >= minMessages &&
    [...ends].every(([partition, end]) => end === 0n || (reached.get(partition) ?? -1n) + 1n >= end);
  if (done()) return records;

  const consumer = kafka.consumer({
    groupId: uniqueName('read'),
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 30_000;
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `readTopic(${topic}): ${records.length} records after ${timeoutMs} ms, expected ${minMessages || 'the end'}`,
            ),
          ),
        timeoutMs,
      );
      // Progress comes from the batch-end event, which also fires for batches that hold only
      // transaction markers or aborted records: a partition that ends in an aborted transaction
      // never reaches eachBatch with its last offset.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const last = BigInt(payload.lastOffset);
        if (last > (reached.get(payload.partition) ?? -1n)) reached.set(payload.partition, last);
        if (done()) {
          clearTimeout(timer);
          resolve();
        }
      });
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) {
              records.push({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: toHeaders(m.headers),
                timestamp: m.timestamp,
              });
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}
