import { migrate, quoteIdentifier } from '@onceflow/postgres';
import { spawnWorker, type Worker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, fillOnceflowOutbox, produceMessages } from '../services';
import { nowMs } from '../shared';
import type { ConsumerParams, ConsumerResult } from '../workers/consumers';
import type { RelayParams, RelayResult } from '../workers/relays';

/** What a scaling run measured: the rate between 10 % and 90 % of the work, read from the database. */
interface Rate {
  perS: number;
  peakRssMb: number[];
}

/**
 * Polls `done()` (units of work finished so far) until it reaches `total`, and returns the rate
 * between 10 % (or the moment `settled()` first answers true, if later) and 90 % of it: the start
 * (processes joining, the rebalance that follows) and the tail (the last partitions) are left out,
 * so one process and two are measured alike.
 */
async function rateBetween(
  total: number,
  done: () => Promise<number>,
  timeoutMs: number,
  settled: () => Promise<boolean> = async () => true,
): Promise<number> {
  const deadline = nowMs() + timeoutMs;
  let t10: number | undefined;
  let t90: number | undefined;
  let n10 = 0;
  let n90 = 0;
  let isSettled = false;
  for (;;) {
    const n = await done();
    const at = nowMs();
    isSettled ||= await settled();
    if (t10 === undefined && isSettled && n >= total * 0.1 && n < total * 0.9) {
      t10 = at;
      n10 = n;
    }
    if (t90 === undefined && n >= total * 0.9) {
      t90 = at;
      n90 = n;
    }
    if (n >= total) break;
    if (at > deadline) throw new Error(`only ${n} of ${total} done within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (t10 === undefined || t90 === undefined || t90 <= t10) return Number.NaN;
  return ((n90 - n10) / (t90 - t10)) * 1000;
}

async function stopAll<R extends { peakRssMb: number }>(workers: Array<Worker<R>>): Promise<number[]> {
  const results = await Promise.all(workers.map((worker) => worker.finish()));
  return results.map((result) => result.peakRssMb);
}

/** `processes` inbox consumer processes in one group over all of `topic` (batch handler). */
async function inboxRun(ctx: BenchContext, topic: string, processes: number, name: string): Promise<Rate> {
  const consumerName = `${ctx.runId}-${name}`;
  const params: ConsumerParams = {
    ...ctx.services,
    schema: ctx.schema,
    topic,
    groupId: consumerName,
    endOffsets: await endOffsets(ctx.admin, topic),
    concurrency: ctx.config.consumerConcurrency,
    syncCommit: 'server',
    consumerName,
    inboxHandler: 'batch',
    untilTerminated: true,
  };
  const total = ctx.config.messages;
  const workers = Array.from({ length: processes }, () =>
    spawnWorker<ConsumerResult>('inbox-consumer', params as unknown as Record<string, unknown>),
  );
  try {
    await Promise.all(workers.map((worker) => worker.ready()));
    const perS = await rateBetween(
      total,
      async () => {
        const { rows } = await ctx.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${ctx.schema}".effects WHERE consumer = $1`,
          [consumerName],
        );
        return rows[0]!.n;
      },
      600_000,
      async () => {
        // Counted once every process is a member of the settled group.
        const { groups } = await ctx.admin.describeGroups([consumerName]);
        return groups[0]?.state === 'Stable' && groups[0].members.length === processes;
      },
    );
    const peakRssMb = await stopAll(workers);
    ctx.log(
      `  ${name.padEnd(22)} ${processes} process(es): ${Math.round(perS)} msgs/s (10 %→90 %), peak RSS ${peakRssMb.join(', ')} MiB`,
    );
    return { perS, peakRssMb };
  } finally {
    for (const worker of workers) worker.kill();
  }
}

/** `relays` relay processes draining a backlog of `ctx.config.relayEvents` events. */
async function relayRun(
  ctx: BenchContext,
  schema: string,
  topic: string,
  relays: number,
  offset: number,
): Promise<Rate> {
  const total = ctx.config.relayEvents;
  await fillOnceflowOutbox(ctx.pool, schema, {
    topic,
    count: total,
    valueBytes: ctx.config.valueBytes,
    keys: ctx.config.keys,
    offset,
    runId: `${ctx.runId}-scale`,
  });
  // Progress is read from the published ledger (narrow rows), not from outboxStatus(): counting the
  // 1 KiB rows still waiting, every 50 ms, kept a Postgres backend busy beside the relays it measured.
  const published = async (): Promise<number> => {
    const { rows } = await ctx.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${quoteIdentifier(schema)}.outbox_published`,
    );
    return rows[0]!.n;
  };
  const before = await published();
  const params: RelayParams = { ...ctx.services, schema, syncCommit: 'server' };
  const workers = Array.from({ length: relays }, () =>
    spawnWorker<RelayResult>('onceflow-relay', params as unknown as Record<string, unknown>),
  );
  try {
    const perS = await rateBetween(total, async () => (await published()) - before, 600_000);
    const peakRssMb = await stopAll(workers);
    ctx.log(
      `  relay-scaling          ${relays} relay(s): ${Math.round(perS)} events/s (10 %→90 %), peak RSS ${peakRssMb.join(', ')} MiB`,
    );
    return { perS, peakRssMb };
  } finally {
    for (const worker of workers) worker.kill();
  }
}

/**
 * Scaling out: the inbox with two consumer processes in one group against one, the same inbox over
 * 24 partitions against 6 (one process), and two relays draining one backlog against one. Each is a
 * rate between 10 % and 90 % of the work, read from the database, so that starting and joining are
 * measured alike for one process and for two.
 */
export async function runScalingGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const six = `${ctx.runId}-scale-6`;
  const twentyFour = `${ctx.runId}-scale-24`;
  const relayTopic = `${ctx.runId}-scale-relay`;
  await createTopics(ctx.admin, [six, relayTopic], config.partitions);
  await createTopics(ctx.admin, [twentyFour], 24);
  ctx.topics.push(six, twentyFour, relayTopic);
  ctx.log(`scaling: producing ${config.messages} messages to a 6- and a 24-partition topic`);
  await produceMessages(ctx.kafka, [six, twentyFour], {
    runId: ctx.runId,
    count: config.messages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  const one = await inboxRun(ctx, six, 1, 'inbox-1-process');
  const two = await inboxRun(ctx, six, 2, 'inbox-2-processes');
  const wide = await inboxRun(ctx, twentyFour, 1, 'inbox-24-partitions');
  results.inbox_1_process_msgs_per_s = round(one.perS);
  results.inbox_2_processes_msgs_per_s = round(two.perS);
  results.inbox_2_processes_ratio = round(two.perS / one.perS, 3);
  results.inbox_24_partitions_msgs_per_s = round(wide.perS);
  results.inbox_24_partitions_ratio = round(wide.perS / one.perS, 3);
  results.inbox_2_processes_peak_rss_mb = Math.max(...two.peakRssMb);
  // The relays get an outbox of their own: the run's schema may hold events no relay took (the HTTP
  // scenario's), which they would publish too.
  const relaySchema = `${ctx.schema}_scale`;
  await migrate(ctx.pool, { schema: relaySchema });
  try {
    const relayOne = await relayRun(ctx, relaySchema, relayTopic, 1, 0);
    const relayTwo = await relayRun(ctx, relaySchema, relayTopic, 2, config.relayEvents);
    results.relay_1_relay_events_per_s = round(relayOne.perS);
    results.relay_2_relays_events_per_s = round(relayTwo.perS);
    results.relay_2_relays_ratio = round(relayTwo.perS / relayOne.perS, 3);
  } finally {
    await ctx.pool.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(relaySchema)} CASCADE`);
  }
}
