import { createHash } from 'node:crypto';
import { createInboxConsumer } from '@onceflow/kafkajs';
import type { TransactionContext } from '@onceflow/postgres';
import { registerOnceflowMetrics } from '@onceflow/prometheus';
import {
  createReplicationSegmentMutexConcurrencyController,
  executeTransaction,
  getDisabledLogger,
  initializeMessageStorage,
  initializePollingMessageListener,
  initializeReplicationMessageListener,
  type PollingListenerConfig,
  type ReplicationListenerConfig,
  type TransactionalMessageHandler,
} from 'pg-transactional-outbox';
import { Registry } from 'prom-client';
import {
  benchKafka,
  benchPool,
  instrumentPool,
  nowMs,
  type QueryTimings,
  type SyncCommit,
  summarizeTimings,
} from '../shared';
import {
  announceReady,
  finishWith,
  observeConsumers,
  terminated,
  type WorkerParams,
  workerParams,
} from './protocol';
import { enableTracing } from './tracing';

/** Parameters of the consumer workers. */
export interface ConsumerParams extends WorkerParams {
  topic: string;
  groupId: string;
  /** High watermark per partition at the start: the scenario is done when every partition reached it. */
  endOffsets: Record<number, string>;
  concurrency: number;
  syncCommit: SyncCommit;
  /** Stop after this many messages (the slow baselines); default: all of them. */
  limit?: number;
  /** The inbox consumer name (dedup namespace). */
  consumerName?: string;
  /**
   * The inbox consumer's handler: `batch` (default) writes the effect rows of a batch's new messages
   * in one multi-row insert (`handleBatch`); `per-message` writes one row per `handler` call;
   * `hot-rows` is a batch handler that, per message in order, adds 1 to one of the 10 rows of
   * `hot_rows` (message number mod 10), and `distinct-rows` the same on the message's own row of
   * `distinct_rows` (no two messages share a row).
   */
  inboxHandler?: 'batch' | 'per-message' | 'hot-rows' | 'distinct-rows';
  /** Register onceflow's Prometheus metrics in the worker (the engine then publishes its channels). */
  metrics?: boolean;
  /**
   * Run until SIGTERM instead of until every partition reached its end offset: one of several
   * members of a group, whose progress the harness reads from the database.
   */
  untilTerminated?: boolean;
  /** Turns OpenTelemetry tracing on, without an exporter (see workers/tracing.ts). */
  tracing?: boolean;
}

/** What a consumer worker reports. */
export interface ConsumerResult {
  messages: number;
  elapsedMs: number;
  msgsPerS: number;
  /** Effect rows this worker's handler wrote (a check that the work was really done). */
  effects: number;
  peakRssMb: number;
  /**
   * Inbox consumers: transactions rolled back and retried, by the SQLSTATE the report named
   * (`none` when it named none), from the errors the consumer reported.
   */
  rollbacks?: Record<string, number>;
}

function report(
  messages: number,
  startedAt: number | undefined,
  doneAt: number | undefined,
  effects: number,
  extra: Record<string, unknown> = {},
): never {
  const elapsedMs = (doneAt ?? nowMs()) - (startedAt ?? nowMs());
  finishWith({
    messages,
    elapsedMs,
    msgsPerS: elapsedMs > 0 ? (messages / elapsedMs) * 1000 : 0,
    effects,
    ...extra,
  });
}

/** The number of a bench message, from its id (`<run>-<8 digits>`). */
function messageNumber(id: string): number {
  return Number(id.slice(-8));
}

/** kafkajs `eachBatch` that does nothing: the ceiling of any consumer on this machine. */
export async function rawConsumer(): Promise<void> {
  const p = workerParams<ConsumerParams>();
  const { kafka, progress } = observeConsumers(benchKafka(p), p.topic, p.endOffsets);
  const consumer = kafka.consumer({ groupId: p.groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: [p.topic], fromBeginning: true });
  announceReady();
  await consumer.run({ partitionsConsumedConcurrently: p.concurrency, eachBatch: async () => undefined });
  await progress.done;
  const total = progress.messages;
  await consumer.disconnect();
  report(total, progress.joinedAt, progress.doneAt, 0);
}

/**
 * The way most people write it: per message, one transaction that inserts the id (skipping a
 * duplicate) and the effect row, commit, then commit the offset of that message.
 */
export async function naiveConsumer(): Promise<void> {
  const p = workerParams<ConsumerParams>();
  const { kafka, progress } = observeConsumers(benchKafka(p), p.topic, p.endOffsets);
  const pool = benchPool(p, p.syncCommit, p.concurrency + 1);
  const limit = p.limit ?? Number.MAX_SAFE_INTEGER;
  let processed = 0;
  let effects = 0;
  let doneAt: number | undefined;
  let markDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    markDone = resolve;
  });
  void progress.done.then(markDone);
  const consumer = kafka.consumer({ groupId: p.groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: [p.topic], fromBeginning: true });
  announceReady();
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: p.concurrency,
    eachMessage: async ({ topic, partition, message }) => {
      if (processed >= limit) return;
      const id = message.headers?.['message-id']?.toString() ?? `${topic}/${partition}/${message.offset}`;
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const inserted = await client.query(
          `INSERT INTO "${p.schema}".naive_inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
          [p.groupId, id],
        );
        if (inserted.rowCount === 1) {
          await client.query(
            `INSERT INTO "${p.schema}".effects (consumer, message_id, topic, partition, "offset", bytes) VALUES ($1, $2, $3, $4, $5, $6)`,
            [p.groupId, id, topic, partition, message.offset, message.value?.length ?? 0],
          );
          effects++;
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
      await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      processed++;
      if (processed >= limit && doneAt === undefined) {
        doneAt = nowMs();
        markDone();
      }
    },
  });
  await done;
  doneAt ??= progress.doneAt;
  await consumer.disconnect();
  await pool.end();
  report(processed, progress.joinedAt, doneAt, effects);
}

/**
 * onceflow's inbox consumer in batch mode; the handler writes one effect row per message, either with
 * one multi-row insert per batch (`handleBatch`) or one insert per message (`handler`).
 */
export async function inboxConsumer(): Promise<void> {
  const p = workerParams<ConsumerParams>();
  if (p.metrics) registerOnceflowMetrics({ registry: new Registry() });
  if (p.tracing) enableTracing();
  const { kafka, progress } = observeConsumers(benchKafka(p), p.topic, p.endOffsets);
  const pool = benchPool(p, p.syncCommit, p.concurrency + 2);
  const timings: QueryTimings = {};
  if (process.env.BENCH_QUERY_TIMING === '1') instrumentPool(pool, timings);
  let effects = 0;
  const consumerName = p.consumerName ?? p.groupId;
  const effectsTable = `"${p.schema}".effects`;
  const common = {
    kafka,
    pool,
    schema: p.schema,
    consumer: consumerName,
    groupId: p.groupId,
    topics: [p.topic],
    partitionsConsumedConcurrently: p.concurrency,
    mode: 'batch' as const,
    pruneIntervalMs: 0,
    // The bench never dead-letters; a missing dead-letter topic must not stop it.
    onMissingDeadLetterTopic: 'ignore' as const,
  };
  const rollbacks: Record<string, number> = {};
  const kind = p.inboxHandler ?? 'batch';
  const rowTable = `"${p.schema}".${kind === 'hot-rows' ? 'hot_rows' : 'distinct_rows'}`;
  const inbox =
    kind === 'batch'
      ? createInboxConsumer({
          ...common,
          handleBatch: async (messages, context: TransactionContext) => {
            const first = messages[0]!;
            await context.client.query(
              `INSERT INTO ${effectsTable} (consumer, message_id, topic, partition, "offset", bytes)
               SELECT $1, u.id, $2, $3, u.off, u.bytes FROM unnest($4::text[], $5::text[], $6::int[]) AS u(id, off, bytes)`,
              [
                consumerName,
                first.topic,
                first.partition,
                messages.map((m) => m.id),
                messages.map((m) => m.offset),
                messages.map((m) => m.value?.length ?? 0),
              ],
            );
            effects += messages.length;
          },
        })
      : kind === 'hot-rows' || kind === 'distinct-rows'
        ? createInboxConsumer({
            ...common,
            // The way a handler is commonly written: one update per message, in message order.
            handleBatch: async (messages, context: TransactionContext) => {
              for (const message of messages) {
                const n = messageNumber(message.id);
                await context.client.query(`UPDATE ${rowTable} SET n = n + 1 WHERE k = $1`, [
                  kind === 'hot-rows' ? n % 10 : n,
                ]);
              }
              effects += messages.length;
            },
            onError: (error) => {
              // Transaction failures name the message they were at; startup warnings do not.
              if (error.details.offset === undefined) return;
              const state = typeof error.details.sqlState === 'string' ? error.details.sqlState : 'none';
              rollbacks[state] = (rollbacks[state] ?? 0) + 1;
              if (process.env.BENCH_VERBOSE === '1') console.error(error.message);
            },
          })
        : createInboxConsumer({
            ...common,
            handler: async (message, context: TransactionContext) => {
              await context.client.query(
                `INSERT INTO ${effectsTable} (consumer, message_id, topic, partition, "offset", bytes) VALUES ($1, $2, $3, $4, $5, $6)`,
                [
                  consumerName,
                  message.id,
                  message.topic,
                  message.partition,
                  message.offset,
                  message.value?.length ?? 0,
                ],
              );
              effects++;
            },
          });
  const handle = await inbox.start();
  announceReady();
  await (p.untilTerminated ? terminated() : progress.done);
  await handle.stop();
  await pool.end();
  if (process.env.BENCH_QUERY_TIMING === '1')
    console.error(JSON.stringify(summarizeTimings(timings), null, 1));
  report(progress.messages, progress.joinedAt, progress.doneAt, effects, { rollbacks });
}

type GeneralHandler = Exclude<
  Parameters<typeof initializePollingMessageListener>[1],
  TransactionalMessageHandler[]
>;

/** A peer run ends when nothing moved for this long, in milliseconds (the harness notes the shortfall). */
export const peerStallMs = 15_000;

/** How the peer library's listener runs: polling (its default) or logical replication (its fast path). */
export interface PeerModeParams {
  peerSchema: string;
  peerTable: string;
  /** Polling: its next-messages function. */
  peerFunction: string;
  /** Polling: messages per poll. */
  batchSize: number;
  peerMode: 'polling' | 'replication';
  /** Replication: the publication and the logical replication slot of the table. */
  publication?: string;
  slot?: string;
}

/**
 * Starts pg-transactional-outbox's listener on its table in the given mode, as its README wires it:
 * polling with full batches from the first poll and a 50 ms interval, or logical replication with one
 * mutex per segment (per key, so per-key order holds while keys run concurrently). Returns its message
 * store (for the inbox side) and its shutdown.
 */
export function startPeerListener(
  outboxOrInbox: 'inbox' | 'outbox',
  p: PeerModeParams & { databaseUrl: string; syncCommit: SyncCommit },
  handler: GeneralHandler,
  logger: ReturnType<typeof getDisabledLogger>,
): { store: ReturnType<typeof initializeMessageStorage>; shutdown: () => Promise<void> } {
  const dbListenerConfig = {
    connectionString: p.databaseUrl,
    ...(p.syncCommit === 'off' ? { options: '-c synchronous_commit=off' } : {}),
  };
  const common = {
    dbSchema: p.peerSchema,
    dbTable: p.peerTable,
    enableMaxAttemptsProtection: outboxOrInbox === 'inbox',
    enablePoisonousMessageProtection: outboxOrInbox === 'inbox',
    messageCleanupIntervalInMs: 0,
  };
  if (p.peerMode === 'replication') {
    const config: ReplicationListenerConfig = {
      outboxOrInbox,
      dbListenerConfig,
      settings: { ...common, dbPublication: p.publication!, dbReplicationSlot: p.slot! },
    };
    const [shutdown] = initializeReplicationMessageListener(config, handler, logger, {
      concurrencyStrategy: createReplicationSegmentMutexConcurrencyController(),
    });
    return { store: initializeMessageStorage(config, logger), shutdown };
  }
  const config: PollingListenerConfig = {
    outboxOrInbox,
    dbListenerConfig,
    settings: {
      ...common,
      nextMessagesFunctionSchema: p.peerSchema,
      nextMessagesFunctionName: p.peerFunction,
      nextMessagesBatchSize: p.batchSize,
      nextMessagesPollingIntervalInMs: 50,
    },
  };
  const [shutdown] = initializePollingMessageListener(
    config,
    handler,
    logger,
    // Full batches from the first poll: the default ramp (one message per poll for the first
    // batch-size polls) would only make the peer look slower.
    { batchSizeStrategy: () => Promise.resolve(p.batchSize) },
  );
  return { store: initializeMessageStorage(config, logger), shutdown };
}

/** A deterministic UUID for a message id: the peer keys its inbox by UUID. */
function uuidOf(id: string): string {
  const hex = createHash('sha1').update(id).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * pg-transactional-outbox's inbox, polling mode, as its README wires it: a kafkajs receiver stores
 * each message in the inbox table (one transaction per message, then the offset), and the polling
 * listener runs the handler, which writes the effect row in the listener's transaction.
 */
export async function peerInboxConsumer(): Promise<void> {
  const p = workerParams<ConsumerParams & PeerModeParams>();
  const { kafka, progress } = observeConsumers(benchKafka(p), p.topic, p.endOffsets);
  const pool = benchPool(p, p.syncCommit, p.concurrency + 1);
  const limit = p.limit ?? Number.MAX_SAFE_INTEGER;
  const logger = getDisabledLogger();
  const handler: GeneralHandler = {
    handle: async (message, client) => {
      await client.query(
        `INSERT INTO "${p.schema}".effects (consumer, message_id, topic, partition, "offset", bytes) VALUES ($1, $2, $3, $4, $5, $6)`,
        [p.groupId, message.id, p.topic, 0, message.aggregateId, JSON.stringify(message.payload).length],
      );
    },
  };
  const { store, shutdown } = startPeerListener('inbox', p, handler, logger);
  const consumer = kafka.consumer({ groupId: p.groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: [p.topic], fromBeginning: true });
  announceReady();
  let received = 0;
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: p.concurrency,
    eachMessage: async ({ topic, partition, message }) => {
      if (received >= limit) return;
      received++;
      const id = message.headers?.['message-id']?.toString() ?? `${topic}/${partition}/${message.offset}`;
      await executeTransaction(await pool.connect(), async (client) => {
        await store(
          {
            id: uuidOf(id),
            aggregateType: 'bench',
            aggregateId: `${partition}/${message.offset}`,
            messageType: 'bench_message',
            segment: message.key?.toString() ?? 'none',
            concurrency: 'sequential',
            payload: JSON.parse(message.value?.toString() ?? 'null'),
            createdAt: new Date().toISOString(),
          },
          client,
        );
      });
      await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
    },
  });
  let effects = 0;
  let doneAt: number | undefined;
  let movedAt = nowMs();
  while (doneAt === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${p.schema}".effects WHERE consumer = $1`,
      [p.groupId],
    );
    const now = Number(rows[0]!.n);
    if (now !== effects) movedAt = nowMs();
    effects = now;
    if (effects >= limit) doneAt = nowMs();
    // The peer's listener may leave messages unprocessed for good: report what it did by then.
    else if (nowMs() - movedAt > peerStallMs) doneAt = movedAt;
  }
  await consumer.disconnect();
  await shutdown();
  await pool.end();
  report(effects, progress.joinedAt, doneAt, effects);
}
