import { writeFileSync } from 'node:fs';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { createPgOutboxStore } from '@onceflow/postgres';
import { registerOnceflowMetrics } from '@onceflow/prometheus';
import { getDisabledLogger } from 'pg-transactional-outbox';
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
import { type PeerModeParams, peerStallMs, startPeerListener } from './consumers';
import { announceReady, finishWith, terminated, type WorkerParams, workerParams } from './protocol';
import { enableTracing } from './tracing';

/** Parameters of the relay workers. */
export interface RelayParams extends WorkerParams {
  syncCommit: SyncCommit;
  /** Events to publish before reporting (drain runs); absent: run until SIGTERM (latency runs). */
  expected?: number;
  /** false: the relay's store keeps no published ledger (migration 0006), to measure what it costs. */
  publishedLedger?: boolean;
  /** Latency runs: file to write `eventId ackMs publishStartMs` lines to. */
  ackFile?: string;
  topic?: string;
  /** Peer runs: its schema, outbox table, next-messages function and batch size. */
  peerSchema?: string;
  peerTable?: string;
  peerFunction?: string;
  batchSize?: number;
  /** Register onceflow's Prometheus metrics in the worker, with backlog reads every 5 s as by default. */
  metrics?: boolean;
  /** Turns OpenTelemetry tracing on, without an exporter (see workers/tracing.ts). */
  tracing?: boolean;
}

/** What a relay worker reports. */
export interface RelayResult {
  events: number;
  elapsedMs: number;
  eventsPerS: number;
  peakRssMb: number;
}

function report(events: number, startedAt: number, doneAt: number): never {
  const elapsedMs = doneAt - startedAt;
  finishWith({ events, elapsedMs, eventsPerS: elapsedMs > 0 ? (events / elapsedMs) * 1000 : 0 });
}

/**
 * onceflow's relay. Drain runs count published events through the metrics observer; latency runs
 * note when the broker acknowledged each event (the relay's after-publish point) for the harness
 * to compare with the enqueuer's commit times.
 */
export async function onceflowRelay(): Promise<void> {
  const p = workerParams<RelayParams>();
  if (p.metrics) registerOnceflowMetrics({ registry: new Registry() });
  if (p.tracing) enableTracing();
  const pool = benchPool(p, p.syncCommit, 24);
  const timings: QueryTimings = {};
  if (process.env.BENCH_QUERY_TIMING === '1') instrumentPool(pool, timings);
  const acks: string[] = [];
  const publishStartedAt = new Map<number, number>();
  let published = 0;
  let doneAt: number | undefined;
  let markDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    markDone = resolve;
  });
  const relay = createOutboxRelay({
    ...(p.publishedLedger === false
      ? { store: createPgOutboxStore(pool, { schema: p.schema, publishedLedger: false }) }
      : { pool, schema: p.schema }),
    kafka: benchKafka(p, 'onceflow-bench-relay'),
    metricsIntervalMs: p.metrics ? 5_000 : 0,
    observer: {
      onPublished: (batch) => {
        published += batch.count;
        if (p.expected !== undefined && published >= p.expected && doneAt === undefined) {
          doneAt = nowMs();
          markDone();
        }
      },
    },
    onError: (error) => console.error(`relay error (${String(error.details.operation)}): ${error.message}`),
    ...(p.ackFile
      ? {
          testHooks: {
            // When the claimed batch was handed to the publish, per lane, for the phase breakdown.
            beforePublish: async (lane, _rows) => {
              publishStartedAt.set(lane, nowMs());
            },
            afterPublish: async (lane, rows) => {
              const at = nowMs().toFixed(3);
              const started = (publishStartedAt.get(lane) ?? nowMs()).toFixed(3);
              for (const row of rows) acks.push(`${row.eventId} ${at} ${started}`);
            },
          },
        }
      : {}),
  });
  const startedAt = nowMs();
  const handle = await relay.start();
  announceReady();
  if (p.expected !== undefined) await done;
  else await terminated();
  await handle.stop();
  await pool.end();
  if (p.ackFile) writeFileSync(p.ackFile, `${acks.join('\n')}\n`);
  if (process.env.BENCH_QUERY_TIMING === '1')
    console.error(JSON.stringify(summarizeTimings(timings), null, 1));
  report(published, startedAt, doneAt ?? nowMs());
}

/** The one-at-a-time loop: select the oldest unpublished row, publish it, mark it, repeat. */
export async function naiveRelay(): Promise<void> {
  const p = workerParams<RelayParams>();
  const pool = benchPool(p, p.syncCommit, 2);
  const producer = benchKafka(p, 'onceflow-bench-naive-relay').producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  announceReady();
  const expected = p.expected ?? 0;
  const startedAt = nowMs();
  let published = 0;
  while (published < expected) {
    const { rows } = await pool.query<{
      id: string;
      topic: string;
      key: Buffer;
      value: Buffer;
      message_id: string;
    }>(
      `SELECT id, topic, key, value, message_id FROM "${p.schema}".naive_outbox WHERE published_at IS NULL ORDER BY id LIMIT 1`,
    );
    const row = rows[0];
    if (!row) break;
    await producer.send({
      topic: row.topic,
      acks: -1,
      messages: [{ key: row.key, value: row.value, headers: { 'message-id': row.message_id } }],
    });
    await pool.query(`UPDATE "${p.schema}".naive_outbox SET published_at = now() WHERE id = $1`, [row.id]);
    published++;
  }
  const doneAt = nowMs();
  await producer.disconnect();
  await pool.end();
  report(published, startedAt, doneAt);
}

/**
 * pg-transactional-outbox's outbox listener (polling or logical replication), publishing each
 * message with an idempotent kafkajs producer (its handler is called once per message).
 */
export async function peerRelay(): Promise<void> {
  const p = workerParams<RelayParams>();
  const pool = benchPool(p, p.syncCommit, 2);
  const producer = benchKafka(p, 'onceflow-bench-peer-relay').producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const startedAt = nowMs();
  const { shutdown } = startPeerListener(
    'outbox',
    { ...(p as RelayParams & PeerModeParams), batchSize: p.batchSize ?? 5 },
    {
      handle: async (message) => {
        await producer.send({
          topic: p.topic!,
          acks: -1,
          messages: [
            {
              key: message.segment ?? null,
              value: JSON.stringify(message.payload),
              headers: { 'message-id': message.id },
            },
          ],
        });
      },
    },
    getDisabledLogger(),
  );
  announceReady();
  const expected = p.expected ?? 0;
  let processed = 0;
  let movedAt = nowMs();
  let doneAt: number | undefined;
  while (doneAt === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${p.peerSchema}"."${p.peerTable}" WHERE processed_at IS NOT NULL`,
    );
    const now = Number(rows[0]!.n);
    if (now !== processed) movedAt = nowMs();
    processed = now;
    if (processed >= expected) doneAt = nowMs();
    // The peer's listener may leave messages unprocessed for good: report what it did by then.
    else if (nowMs() - movedAt > peerStallMs) doneAt = movedAt;
  }
  await shutdown();
  await producer.disconnect();
  await pool.end();
  report(processed, startedAt, doneAt);
}
