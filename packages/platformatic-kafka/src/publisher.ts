import {
  checkDurationMs,
  invalidOptions,
  type LanePublisher,
  OnceflowError,
  type PublisherTransport,
  type RetryPolicy,
  resolveRetryPolicy,
} from '@onceflow/core';
import { Admin, compatibilityPartitioner, Producer } from '@platformatic/kafka';
import { clientIdFor, isConnection, type PlatformaticKafkaConnection } from './client';
import { classifyPublishError, topicRefused } from './errors';

/** Options of {@link createPlatformaticPublisherTransport}. */
export interface PlatformaticPublisherTransportOptions {
  /** How to reach the cluster (`bootstrapBrokers`, `tls`, `sasl`...). Required. */
  kafka: PlatformaticKafkaConnection;
  /**
   * Broker-side limit in milliseconds for one open transaction; a publisher that dies mid-batch
   * holds read_committed consumers of its partitions back at most this long (less when another
   * relay takes the lane over first). Default: 60000.
   */
  transactionTimeoutMs?: number;
  /**
   * How @platformatic/kafka retries one request before the relay's own backoff takes over:
   * `maxAttempts` per request (at least 3: the client retries an idempotent producer's requests
   * without end when given fewer), delays from `initialDelayMs` growing by `multiplier` up to
   * `maxDelayMs`, with `jitter`. Default: 7 attempts, 10 ms doubling up to 2 s, 20% jitter.
   */
  retry?: Partial<RetryPolicy>;
}

/** Defaults of {@link PlatformaticPublisherTransportOptions}. */
export const defaultPlatformaticPublisherTransportOptions = Object.freeze({
  transactionTimeoutMs: 60_000,
  retry: Object.freeze({
    maxAttempts: 7,
    initialDelayMs: 10,
    maxDelayMs: 2_000,
    multiplier: 2,
    jitter: 0.2,
  }) as Readonly<RetryPolicy>,
});

/** A @platformatic/kafka `retryDelay` function following `policy`. */
export function retryDelayOf(
  policy: RetryPolicy,
): (client: unknown, operation: string, attempt: number) => number {
  return (_client, _operation, attempt) => {
    const base = Math.min(
      policy.maxDelayMs,
      policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt - 1),
    );
    return Math.round(base * (1 + policy.jitter * (Math.random() * 2 - 1)));
  };
}

/** Of `topics`, those the broker does not list: missing, or invisible to this client. */
async function unlistedTopics(
  connection: PlatformaticKafkaConnection,
  topics: readonly string[],
): Promise<string[] | undefined> {
  const admin = new Admin({ ...connection, clientId: clientIdFor(connection, 'relay-admin'), retries: 1 });
  try {
    const listed = new Set(await admin.listTopics());
    return topics.filter((topic) => !listed.has(topic));
  } catch {
    return undefined;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

async function narrowRefusal(
  connection: PlatformaticKafkaConnection,
  refused: OnceflowError,
): Promise<OnceflowError> {
  const topics = refused.details.refusedTopics as string[];
  if (topics.length < 2) return refused;
  const unlisted = await unlistedTopics(connection, topics);
  if (unlisted === undefined || unlisted.length === 0 || unlisted.length === topics.length) return refused;
  return topicRefused(
    refused.cause,
    String(refused.details.fencingId),
    refused.details.codes as number[],
    unlisted,
    { means: 'does not exist', retriable: refused.retriable },
  );
}

/**
 * Publishes one lane through its own transactional, idempotent producer (acks from all in-sync
 * replicas), whose transactional id is the lane's fencing id. Opening it runs InitProducerId, which
 * bumps the producer epoch: a relay still holding an older producer for the lane gets
 * INVALID_PRODUCER_EPOCH (or PRODUCER_FENCED) on its next send or commit, and its open transaction is
 * aborted, invisible to read_committed consumers.
 */
async function openLanePublisher(
  connection: PlatformaticKafkaConnection,
  fencingId: string,
  options: { transactionTimeoutMs: number; retry: RetryPolicy },
): Promise<LanePublisher> {
  const producer = new Producer({
    ...connection,
    clientId: clientIdFor(connection, 'relay'),
    transactionalId: fencingId,
    idempotent: true,
    acks: -1,
    // InitProducerId must ask for a new epoch of whatever producer holds the transactional id (-1/-1):
    // the client's default (0/0) names a producer that does not exist, and the broker answers
    // PRODUCER_FENCED whenever an earlier producer with the same id does (that is, at every takeover).
    producerId: -1n,
    producerEpoch: -1,
    autocreateTopics: false,
    // The Java client's (and kafkajs's) key hashing: a key lands in the same partition whichever adapter
    // relays it. The client's own default keeps murmur2's sign bit and sends some keys elsewhere.
    partitioner: compatibilityPartitioner,
    // The transaction timeout InitProducerId registers is the client's request `timeout`.
    timeout: options.transactionTimeoutMs,
    retries: Math.max(2, options.retry.maxAttempts - 1),
    retryDelay: retryDelayOf(options.retry),
  });
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= producer.close(true).catch(() => undefined);
    return closed;
  };
  try {
    // The first transaction runs InitProducerId: the fence is up before this relay reads a row of the lane.
    // Nothing was added to it, so it ends on this side only (the broker refuses to end an empty one).
    const fence = await producer.beginTransaction();
    await fence.cancel();
  } catch (error) {
    await close();
    throw classifyPublishError(error, fencingId);
  }
  return {
    async publish(records) {
      if (records.length === 0) return;
      if (closed)
        throw new OnceflowError('OF_STOPPED', `publisher ${fencingId} is closed`, { retriable: true });
      let transaction: Awaited<ReturnType<Producer['beginTransaction']>> | undefined;
      try {
        transaction = await producer.beginTransaction();
        await transaction.send({
          messages: records.map((record) => ({
            topic: record.topic,
            ...(record.key === null ? {} : { key: record.key }),
            ...(record.value === null ? {} : { value: record.value }),
            // Without serializers the client writes keys and values as given: header names must be bytes too.
            headers: new Map(
              Object.entries(record.headers).map(([name, value]) => [Buffer.from(name), value]),
            ),
          })),
        });
        await transaction.commit();
      } catch (error) {
        if (transaction !== undefined && !transaction.completed)
          await transaction.abort().catch(() => transaction?.cancel().catch(() => undefined));
        const classified = classifyPublishError(error, fencingId, [
          ...new Set(records.map((record) => record.topic)),
        ]);
        throw classified.code === 'OF_TOPIC_MISSING'
          ? await narrowRefusal(connection, classified)
          : classified;
      }
    },
    close,
  };
}

/**
 * The relay's {@link PublisherTransport} on @platformatic/kafka: one transactional, idempotent
 * producer per owned lane (acks from all in-sync replicas), created when the relay takes the lane and
 * closed when it gives it back. Consumers of relayed topics must read committed data (the default of
 * both @platformatic/kafka and kafkajs).
 */
export function createPlatformaticPublisherTransport(
  options: PlatformaticPublisherTransportOptions,
): PublisherTransport {
  // Validation messages name the relay: that is what a user configures these options for.
  const component = 'createOutboxRelay';
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  const { kafka } = options;
  if (!isConnection(kafka))
    invalidOptions(
      component,
      'kafka must be @platformatic/kafka client options ({ bootstrapBrokers: [...] })',
    );
  const defaults = defaultPlatformaticPublisherTransportOptions;
  const resolved = {
    transactionTimeoutMs: checkDurationMs(
      component,
      'transactionTimeoutMs',
      options.transactionTimeoutMs ?? defaults.transactionTimeoutMs,
      { min: 1_000 },
    ),
    retry: resolveRetryPolicy(component, options.retry, defaults.retry),
  };
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
