import { randomBytes } from 'node:crypto';
import type { Admin, IHeaders, Kafka } from 'kafkajs';

/** A record as read back from a topic. */
export interface TopicRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
}

/** Creates the topics that do not exist yet and waits for their leaders (auto-creation may be off). */
export async function ensureTopics(kafka: Kafka, topics: string[], partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0)
      await admin.createTopics({
        topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
        waitForLeaders: true,
      });
  } finally {
    await admin.disconnect();
  }
}

/** Deletes topics (missing ones are ignored). */
export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await admin.deleteTopics({ topics: present, timeout: 10_000 });
  } finally {
    await admin.disconnect();
  }
}

/** Deletes consumer groups (they must be empty: stop their consumers first). */
export async function deleteGroups(kafka: Kafka, groups: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups(groups);
  } finally {
    await admin.disconnect();
  }
}

/** Sum over partitions of each topic's end offset, and of each group's committed offset on it. */
export interface TopicProgress {
  /** Records written to the topic (transaction markers included, so slightly above the message count). */
  end: number;
  /** Offsets committed by the reading group: how far it got. */
  committed: number;
  /** End minus committed, per partition, summed. */
  lag: number;
  /**
   * Largest lag of one partition. A partition whose last record is a transaction marker (the relay
   * publishes in transactions) never gets below 1, so "caught up" is `maxPartitionLag <= 1`.
   */
  maxPartitionLag: number;
}

/** Reads end offsets of `topic` and the committed offsets of `groupId` on it, through a connected admin client. */
export async function topicProgress(admin: Admin, topic: string, groupId: string): Promise<TopicProgress> {
  const ends = await admin.fetchTopicOffsets(topic);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  let end = 0;
  let done = 0;
  let lag = 0;
  let maxPartitionLag = 0;
  for (const p of ends) {
    const high = Number(p.high);
    const at = Math.max(
      Number(committed?.partitions.find((c) => c.partition === p.partition)?.offset ?? -1),
      0,
    );
    end += high;
    done += at;
    lag += high - at;
    maxPartitionLag = Math.max(maxPartitionLag, high - at);
  }
  return { end, committed: done, lag, maxPartitionLag };
}

function toHeaders(headers: IHeaders | undefined): Record<string, Buffer> {
  const result: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) result[name] = Buffer.isBuffer(first) ? first : Buffer.from(first);
  }
  return result;
}

/**
 * Reads a topic from the beginning to its end as of the call, read_committed (what consumers see).
 * Fails after `timeoutMs`.
 */
export async function readWholeTopic(
  kafka: Kafka,
  topic: string,
  timeoutMs = 60_000,
): Promise<TopicRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  const reached = new Map<number, bigint>();
  const records: TopicRecord[] = [];
  const complete = () => [...ends].every(([p, end]) => end === 0n || (reached.get(p) ?? -1n) + 1n >= end);
  if (complete()) return records;
  const consumer = kafka.consumer({
    groupId: `order-pipeline-reader-${randomBytes(6).toString('hex')}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic}: not at its end after ${timeoutMs} ms`)),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages)
              records.push({
                partition: batch.partition,
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: toHeaders(m.headers),
              });
            const last = BigInt(batch.lastOffset());
            if (last > (reached.get(batch.partition) ?? -1n)) reached.set(batch.partition, last);
            if (complete()) {
              clearTimeout(timer);
              resolve();
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

/**
 * Produces records again exactly as they were (key, value, every header, so the same `message-id`):
 * the duplicate a retrying producer or a replayed backup would create.
 */
export async function reproduce(kafka: Kafka, topic: string, records: TopicRecord[]): Promise<void> {
  if (records.length === 0) return;
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true });
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: records.map((r) => ({
        key: r.key,
        value: r.value,
        headers: r.headers,
        partition: r.partition,
      })),
    });
  } finally {
    await producer.disconnect();
  }
}
