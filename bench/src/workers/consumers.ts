import { createHash } from 'node:crypto';
import { createInboxConsumer } from '@onceflow/kafkajs';
import type { TransactionContext } from '@onceflow/postgres';
import {
  executeTransaction,
  getDisabledLogger,
  initializeMessageStorage,
  initializePollingMessageListener,
  type PollingListenerConfig,
} from 'pg-transactional-outbox';
import {
  benchKafka,
  benchPool,
  instrumentPool,
  nowMs,
  type QueryTimings,
  type SyncCommit,
  summarizeTimings,
} from '../shared';
import { announceReady, finishWith, observeConsumers, type WorkerParams, workerParams } from './protocol';
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
   * in one multi-row insert (`handleBatch`); `per-message` writes one row per `handler` call.
   */
  inboxHandler?: 'batch' | 'per-message';
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
}

function report(
  messages: number,
  startedAt: number | undefined,
  doneAt: number | undefined,
  effects: number,
): never {
  const elapsedMs = (doneAt ?? nowMs()) - (startedAt ?? nowMs());
  finishWith({ messages, elapsedMs, msgsPerS: elapsedMs > 0 ? (messages / elapsedMs) * 1000 : 0, effects });
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
  const inbox =
    (p.inboxHandler ?? 'batch') === 'batch'
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
  await progress.done;
  await handle.stop();
  await pool.end();
  if (process.env.BENCH_QUERY_TIMING === '1')
    console.error(JSON.stringify(summarizeTimings(timings), null, 1));
  report(progress.messages, progress.joinedAt, progress.doneAt, effects);
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
  const p = workerParams<
    ConsumerParams & { peerSchema: string; peerTable: string; peerFunction: string; batchSize: number }
  >();
  const { kafka, progress } = observeConsumers(benchKafka(p), p.topic, p.endOffsets);
  const pool = benchPool(p, p.syncCommit, p.concurrency + 1);
  const limit = p.limit ?? Number.MAX_SAFE_INTEGER;
  const logger = getDisabledLogger();
  const dbListenerConfig = {
    connectionString: p.databaseUrl,
    ...(p.syncCommit === 'off' ? { options: '-c synchronous_commit=off' } : {}),
  };
  const config: PollingListenerConfig = {
    outboxOrInbox: 'inbox',
    dbListenerConfig,
    settings: {
      dbSchema: p.peerSchema,
      dbTable: p.peerTable,
      nextMessagesFunctionSchema: p.peerSchema,
      nextMessagesFunctionName: p.peerFunction,
      nextMessagesBatchSize: p.batchSize,
      nextMessagesPollingIntervalInMs: 50,
      enableMaxAttemptsProtection: true,
      enablePoisonousMessageProtection: true,
      messageCleanupIntervalInMs: 0,
    },
  };
  const store = initializeMessageStorage(config, logger);
  const [shutdown] = initializePollingMessageListener(
    config,
    {
      handle: async (message, client) => {
        await client.query(
          `INSERT INTO "${p.schema}".effects (consumer, message_id, topic, partition, "offset", bytes) VALUES ($1, $2, $3, $4, $5, $6)`,
          [p.groupId, message.id, p.topic, 0, message.aggregateId, JSON.stringify(message.payload).length],
        );
      },
    },
    logger,
    // Full batches from the first poll: the default ramp (one message per poll for the first
    // batch-size polls) would only make the peer look slower.
    { batchSizeStrategy: () => Promise.resolve(p.batchSize) },
  );
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
  while (doneAt === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${p.schema}".effects WHERE consumer = $1`,
      [p.groupId],
    );
    effects = Number(rows[0]!.n);
    if (effects >= limit) doneAt = nowMs();
  }
  await consumer.disconnect();
  await shutdown();
  await pool.end();
  report(effects, progress.joinedAt, doneAt, effects);
}
