import { createOnceflowAdmin, quoteIdentifier } from '@onceflow/postgres';
import type { Admin } from 'kafkajs';
import logUpdate from 'log-update';
import type { Pool } from 'pg';
import { type ConsumerName, consumerNames, type PipelineConfig, sourceTopicOf } from './config';
import { type TopicProgress, topicProgress } from './kafka-tools';
import type { ProgressSample } from './report';

/** A full reading of the pipeline's counters, from the database and the brokers. */
export interface PipelineSnapshot extends ProgressSample {
  /** Effect rows, distinct orders among them, and the group's progress on its topic, per consumer. */
  consumers: Record<ConsumerName, { rows: number; distinctOrders: number; topic: TopicProgress }>;
  outboxBacklog: number;
  /** Duplicates re-produced into each consumer's topic so far. */
  injected: Record<ConsumerName, number>;
}

/** Reads a snapshot. `injected` and `restarts` come from the runner, the rest from Postgres and Kafka. */
export async function readSnapshot(input: {
  pool: Pool;
  admin: Admin;
  config: PipelineConfig;
  startedAt: number;
  ordersAccepted: number;
  restarts: number;
  injected: Record<ConsumerName, number>;
}): Promise<PipelineSnapshot> {
  const { pool, admin, config } = input;
  const s = quoteIdentifier(config.appSchema);
  const { rows } = await pool.query<{
    orders: number;
    p: number;
    pd: number;
    sh: number;
    shd: number;
    n: number;
    nd: number;
  }>(
    `SELECT (SELECT count(*) FROM ${s}.orders)::int AS orders,
            (SELECT count(*) FROM ${s}.payments)::int AS p,
            (SELECT count(DISTINCT order_id) FROM ${s}.payments)::int AS pd,
            (SELECT count(*) FROM ${s}.shipments)::int AS sh,
            (SELECT count(DISTINCT order_id) FROM ${s}.shipments)::int AS shd,
            (SELECT count(*) FROM ${s}.notifications)::int AS n,
            (SELECT count(DISTINCT order_id) FROM ${s}.notifications)::int AS nd`,
  );
  const r = rows[0]!;
  const outbox = await createOnceflowAdmin({ pool: pool, schema: config.onceflowSchema }).outboxStatus();
  const progress = async (c: ConsumerName) =>
    topicProgress(admin, sourceTopicOf(config, c), config.groups[c]);
  const consumers = {
    payments: { rows: r.p, distinctOrders: r.pd, topic: await progress('payments') },
    fulfilment: { rows: r.sh, distinctOrders: r.shd, topic: await progress('fulfilment') },
    notifications: { rows: r.n, distinctOrders: r.nd, topic: await progress('notifications') },
  };
  // Live estimate: injected duplicates that did not turn into a second effect. The final table counts
  // every duplicate on the topics exactly, relay republishes included.
  const suppressed = consumerNames.reduce(
    (sum, c) => sum + Math.max(0, input.injected[c] - (consumers[c].rows - consumers[c].distinctOrders)),
    0,
  );
  return {
    atMs: Date.now() - input.startedAt,
    ordersAccepted: input.ordersAccepted,
    // Every order, payment and shipment enqueued one event; what is no longer in the outbox was published.
    eventsPublished: Math.max(0, r.orders + r.p + r.sh - outbox.backlog),
    payments: r.p,
    shipments: r.sh,
    notifications: r.n,
    duplicatesSuppressed: suppressed,
    restarts: input.restarts,
    consumers,
    outboxBacklog: outbox.backlog,
    injected: { ...input.injected },
  };
}

/** The compact live table. */
export function renderSnapshot(snapshot: PipelineSnapshot, totalOrders: number): string {
  const seconds = (snapshot.atMs / 1000).toFixed(0).padStart(4);
  const head = `${seconds}s  orders accepted ${snapshot.ordersAccepted}/${totalOrders}   events published ${snapshot.eventsPublished} (outbox backlog ${snapshot.outboxBacklog})   restarts ${snapshot.restarts}`;
  const lines = [head, '       consumer        processed  dups injected  double effects'];
  for (const c of consumerNames) {
    const info = snapshot.consumers[c];
    lines.push(
      `       ${c.padEnd(14)}  ${String(info.rows).padStart(9)}  ${String(snapshot.injected[c]).padStart(13)}  ${String(info.rows - info.distinctOrders).padStart(14)}`,
    );
  }
  lines.push(`       duplicates suppressed so far: ${snapshot.duplicatesSuppressed}`);
  return lines.join('\n');
}

/** How progress is shown: redrawn in place on a terminal, a line every few seconds otherwise, or not at all. */
export type ProgressOutput = 'auto' | 'lines' | 'silent';

/** Shows snapshots; `done()` leaves the last one on screen. */
export function createProgressView(output: ProgressOutput, totalOrders: number, log: (line: string) => void) {
  const live = output === 'auto' && process.stdout.isTTY === true;
  let lastLine = 0;
  return {
    show(snapshot: PipelineSnapshot) {
      if (output === 'silent') return;
      if (live) {
        logUpdate(renderSnapshot(snapshot, totalOrders));
        return;
      }
      if (snapshot.atMs - lastLine < 5_000) return;
      lastLine = snapshot.atMs;
      const c = snapshot.consumers;
      log(
        `${(snapshot.atMs / 1000).toFixed(0)}s orders ${snapshot.ordersAccepted}/${totalOrders} published ${snapshot.eventsPublished} payments ${c.payments.rows} shipments ${c.fulfilment.rows} notifications ${c.notifications.rows} dups suppressed ${snapshot.duplicatesSuppressed} restarts ${snapshot.restarts}`,
      );
    },
    done() {
      if (live) logUpdate.done();
    },
    /** Prints a line above the live table (faults as they happen). */
    note(line: string) {
      if (output === 'silent') return;
      if (live) {
        logUpdate.clear();
        log(line);
      } else log(line);
    },
  };
}
