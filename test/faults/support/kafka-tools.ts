// Kafka access for the suite's own setup and checks. It talks to the private broker directly, never
// through the proxy, so that what the nemesis does to the processes' network cannot blur the checks.
import { Kafka, logLevel } from 'kafkajs';

/** A record as the checks see it. */
export interface SeenRecord {
  partition: number;
  offset: bigint;
  /** The `message-id` header ('' when missing). */
  id: string;
  key: string | null;
  value: string;
  /** Whether the suite wrote it straight to Kafka as a copy of another record (header `fault-injected`). */
  injected: boolean;
}

/** Header marking the copies the suite writes itself, so the order check can tell them apart. */
export const injectedHeader = 'fault-injected';

/** A kafkajs client on `brokers` that says nothing unless asked. */
export function checkerKafka(brokers: string[]): Kafka {
  return new Kafka({ brokers, clientId: 'fault-checker', logLevel: logLevel.NOTHING });
}

/**
 * Creates topics (replication 1) and waits until every partition has a leader. The wait is its own:
 * kafkajs's fails when a topic of the same name was just deleted (the metadata still says unknown).
 */
export async function createTopics(
  kafka: Kafka,
  topics: ReadonlyArray<{ name: string; partitions: number }>,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: topics.map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1 })),
      waitForLeaders: false,
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = await admin
        .fetchTopicMetadata({ topics: topics.map((t) => t.name) })
        .then((metadata) =>
          metadata.topics.every(
            (t) =>
              t.partitions.length === topics.find((w) => w.name === t.name)?.partitions &&
              t.partitions.every((p) => p.leader >= 0),
          ),
        )
        .catch(() => false);
      if (ready) return;
      if (Date.now() > deadline)
        throw new Error(`topics ${topics.map((t) => t.name)} have no leaders after 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Deletes `topics` and waits until the broker no longer lists them. */
export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics, timeout: 30_000 });
    const deadline = Date.now() + 60_000;
    while ((await admin.listTopics()).some((t) => topics.includes(t))) {
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} still listed after deletion`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/** The end offset (high watermark) of each partition of `topic`. */
export async function endOffsets(kafka: Kafka, topic: string): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads `topic` from the beginning as a read_committed consumer up to the partitions' end offsets
 * taken at the call. Progress counts batches that hold only aborted records or transaction markers,
 * which the relay's aborted transactions leave behind, so the read ends.
 */
export async function readAll(kafka: Kafka, topic: string, timeoutMs = 120_000): Promise<SeenRecord[]> {
  const ends = await endOffsets(kafka, topic);
  const reached = new Map<number, bigint>();
  const records: SeenRecord[] = [];
  const done = (): boolean =>
    [...ends].every(([partition, end]) => end === 0n || (reached.get(partition) ?? -1n) + 1n >= end);
  if (done()) return records;
  const consumer = kafka.consumer({
    groupId: `fault-checker-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 200,
    readUncommitted: false,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `reading ${topic}: only ${records.length} records after ${timeoutMs} ms (ends: ${[...ends]})`,
            ),
          ),
        timeoutMs,
      );
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
            for (const m of batch.messages)
              records.push({
                partition: batch.partition,
                offset: BigInt(m.offset),
                id: m.headers?.['message-id']?.toString() ?? '',
                key: m.key?.toString('utf8') ?? null,
                value: m.value?.toString('utf8') ?? '',
                injected: m.headers?.[injectedHeader] !== undefined,
              });
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}
