import {
  checkDurationMs,
  invalidOptions,
  type LanePublisher,
  OnceflowError,
  type PublisherTransport,
  type PublishRecord,
} from '@onceflow/core';
import { type Kafka, type Message, Partitioners, type Producer } from 'kafkajs';

/** Options of {@link createKafkajsPublisherTransport}. */
export interface KafkajsPublisherOptions {
  /**
   * Broker-side limit in milliseconds for one open transaction; a publisher that dies mid-batch
   * holds read_committed consumers of its partitions back at most this long (less when another
   * relay takes the lane over first). Default: 60000.
   */
  transactionTimeoutMs?: number;
  /** Retries of kafkajs itself per request before the relay's own backoff takes over. Default: 6. */
  requestRetries?: number;
  /**
   * First delay in milliseconds before kafkajs retries a request; it doubles per retry. Short on
   * purpose: a transactional producer that begins its next transaction while the broker is still
   * writing the previous one's commit markers gets CONCURRENT_TRANSACTIONS, which clears within
   * milliseconds (the Java client retries it after 20 ms). Default: 10.
   */
  requestRetryInitialDelayMs?: number;
}

/** Defaults of {@link KafkajsPublisherOptions}. */
export const defaultKafkajsPublisherOptions = Object.freeze({
  transactionTimeoutMs: 60_000,
  requestRetries: 6,
  requestRetryInitialDelayMs: 10,
});

// Errors that mean a newer producer with our transactional id exists: we were fenced.
const fencedCodes = new Set([47 /* INVALID_PRODUCER_EPOCH */, 90 /* PRODUCER_FENCED */]);
// Errors that will recur for these records however often they are retried.
const permanentCodes = new Set([
  10 /* MESSAGE_TOO_LARGE */, 18 /* RECORD_LIST_TOO_LARGE */, 87 /* INVALID_RECORD */,
]);
// Refusals of a whole topic: the other topics of the call may well succeed. What each means; only an
// invalid name can never change, a topic may be created and a write permission granted.
const topicRefusals = new Map<number, { means: string; retriable: boolean }>([
  [3 /* UNKNOWN_TOPIC_OR_PARTITION */, { means: 'does not exist', retriable: true }],
  [29 /* TOPIC_AUTHORIZATION_FAILED */, { means: 'may not be written by this client', retriable: true }],
  [17 /* INVALID_TOPIC_EXCEPTION */, { means: 'is not a valid topic name', retriable: false }],
]);

interface KafkajsErrorLike {
  code?: unknown;
  type?: unknown;
  originalError?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** Kafka error codes found anywhere in a kafkajs error (retries and aggregates wrap the broker's answer). */
function protocolCodes(error: unknown, found = new Set<number>(), depth = 0): Set<number> {
  if (depth > 6 || error === null || typeof error !== 'object') return found;
  const e = error as KafkajsErrorLike;
  if (typeof e.code === 'number') found.add(e.code);
  if (e.type === 'INVALID_PRODUCER_EPOCH') found.add(47);
  protocolCodes(e.originalError, found, depth + 1);
  protocolCodes(e.cause, found, depth + 1);
  if (Array.isArray(e.errors)) for (const inner of e.errors) protocolCodes(inner, found, depth + 1);
  return found;
}

/**
 * Maps a kafkajs failure to the relay's error contract (see {@link LanePublisher}). `topics` are the
 * topics of the failed call: a topic refusal names them all in `details.refusedTopics`, since the
 * broker's answer does not say which one it refused.
 */
export function classifyPublishError(
  error: unknown,
  fencingId: string,
  topics: readonly string[] = [],
): OnceflowError {
  const codes = [...protocolCodes(error)];
  const message = error instanceof Error ? error.message : String(error);
  if (codes.some((code) => fencedCodes.has(code)))
    return new OnceflowError(
      'OF_LEASE_LOST',
      `publisher ${fencingId} was fenced by a newer one: ${message}`,
      {
        cause: error,
        details: { fencingId },
      },
    );
  const refusal = codes.map((code) => topicRefusals.get(code)).find((found) => found !== undefined);
  if (refusal !== undefined && topics.length > 0)
    return topicRefused(error, fencingId, codes, topics, refusal);
  if (codes.some((code) => permanentCodes.has(code)))
    return new OnceflowError('OF_PUBLISH_FAILED', `broker refused the records: ${message}`, {
      cause: error,
      retriable: false,
      details: { fencingId, codes },
    });
  return new OnceflowError('OF_PUBLISH_FAILED', `publish failed, will retry: ${message}`, {
    cause: error,
    retriable: true,
    details: { fencingId, codes },
  });
}

function topicRefused(
  error: unknown,
  fencingId: string,
  codes: number[],
  topics: readonly string[],
  refusal: { means: string; retriable: boolean },
): OnceflowError {
  const names = topics.map((topic) => `"${topic}"`).join(', ');
  const message = error instanceof Error ? error.message : String(error);
  return new OnceflowError(
    'OF_TOPIC_MISSING',
    topics.length === 1
      ? `topic ${names} ${refusal.means} (broker: ${message})`
      : `one of the topics ${names} ${refusal.means} (broker: ${message})`,
    { cause: error, retriable: refusal.retriable, details: { fencingId, codes, refusedTopics: [...topics] } },
  );
}

/** Of `topics`, those the broker does not list: missing, or invisible to this client. */
async function unlistedTopics(kafka: Kafka, topics: readonly string[]): Promise<string[] | undefined> {
  const admin = kafka.admin({ retry: { retries: 1 } });
  try {
    await admin.connect();
    const listed = new Set(await admin.listTopics());
    return topics.filter((topic) => !listed.has(topic));
  } catch {
    return undefined;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Narrows a refusal of several topics down to the ones the broker does not list, when there are some:
 * the other topics then go out at once instead of being split and tried one by one.
 */
async function narrowRefusal(kafka: Kafka, refused: OnceflowError): Promise<OnceflowError> {
  const topics = refused.details.refusedTopics as string[];
  if (topics.length < 2) return refused;
  const unlisted = await unlistedTopics(kafka, topics);
  if (unlisted === undefined || unlisted.length === 0 || unlisted.length === topics.length) return refused;
  return topicRefused(
    refused.cause,
    String(refused.details.fencingId),
    refused.details.codes as number[],
    unlisted,
    { means: 'does not exist', retriable: refused.retriable },
  );
}

function groupByTopic(records: readonly PublishRecord[]): { topic: string; messages: Message[] }[] {
  const byTopic = new Map<string, Message[]>();
  for (const record of records) {
    const messages = byTopic.get(record.topic) ?? [];
    if (messages.length === 0) byTopic.set(record.topic, messages);
    messages.push({ key: record.key, value: record.value, headers: record.headers });
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/**
 * Publishes one lane through its own kafkajs transactional producer, whose transactional id is the
 * lane's fencing id. Opening it runs InitProducerId, which bumps the producer epoch: a relay still
 * holding an older producer for the lane gets INVALID_PRODUCER_EPOCH on its next send or commit, and
 * its open transaction is aborted, invisible to read_committed consumers.
 */
async function openLanePublisher(
  kafka: Kafka,
  fencingId: string,
  options: Required<KafkajsPublisherOptions>,
): Promise<LanePublisher> {
  const producer: Producer = kafka.producer({
    transactionalId: fencingId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: options.transactionTimeoutMs,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: {
      retries: options.requestRetries,
      initialRetryTime: options.requestRetryInitialDelayMs,
      maxRetryTime: 2_000,
    },
  });
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= producer.disconnect().catch(() => undefined);
    return closed;
  };
  try {
    await producer.connect();
    // kafkajs initialises the transactional producer id lazily, on the first transaction; do it now so
    // the fence is up before this relay reads a single row of the lane.
    const fence = await producer.transaction();
    await fence.abort();
  } catch (error) {
    await close();
    throw classifyPublishError(error, fencingId);
  }
  return {
    async publish(records) {
      if (records.length === 0) return;
      if (closed)
        throw new OnceflowError('OF_STOPPED', `publisher ${fencingId} is closed`, { retriable: true });
      let transaction: Awaited<ReturnType<Producer['transaction']>> | undefined;
      try {
        transaction = await producer.transaction();
        await transaction.sendBatch({ topicMessages: groupByTopic(records), acks: -1 });
        await transaction.commit();
      } catch (error) {
        if (transaction?.isActive()) await transaction.abort().catch(() => undefined);
        const classified = classifyPublishError(error, fencingId, [
          ...new Set(records.map((record) => record.topic)),
        ]);
        throw classified.code === 'OF_TOPIC_MISSING' ? await narrowRefusal(kafka, classified) : classified;
      }
    },
    close,
  };
}

/**
 * The relay's {@link PublisherTransport} on kafkajs: one transactional, idempotent producer per owned
 * lane (acks from all in-sync replicas), created when the relay takes the lane and disconnected when it
 * gives it back. Consumers of relayed topics must read committed data (kafkajs's default).
 */
export function createKafkajsPublisherTransport(
  kafka: Kafka,
  options: KafkajsPublisherOptions = {},
): PublisherTransport {
  if (!kafka || typeof kafka.producer !== 'function')
    invalidOptions('createOutboxRelay', 'kafka must be a kafkajs Kafka instance');
  const resolved = { ...defaultKafkajsPublisherOptions, ...options };
  checkDurationMs('createOutboxRelay', 'transactionTimeoutMs', resolved.transactionTimeoutMs, { min: 1_000 });
  if (!Number.isInteger(resolved.requestRetries) || resolved.requestRetries < 0)
    invalidOptions(
      'createOutboxRelay',
      `requestRetries must be an integer >= 0 (got ${resolved.requestRetries})`,
    );
  checkDurationMs('createOutboxRelay', 'requestRetryInitialDelayMs', resolved.requestRetryInitialDelayMs);
  const open = new Set<LanePublisher>();
  return {
    async openLane(fencingId) {
      const publisher = await openLanePublisher(kafka, fencingId, resolved);
      open.add(publisher);
      return {
        publish: (records) => publisher.publish(records),
        close: async () => {
          open.delete(publisher);
          await publisher.close();
        },
      };
    },
    async close() {
      const closing = [...open];
      open.clear();
      await Promise.all(closing.map((publisher) => publisher.close()));
    },
  };
}
