import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOnceflowAdmin, quoteIdentifier } from '@onceflow/postgres';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { benchEvents, createTopics, enqueueEvents, fillNaiveOutbox, fillOnceflowOutbox } from '../services';
import { benchPool, median, nowMs, percentile, type SyncCommit } from '../shared';
import type { RelayParams, RelayResult } from '../workers/relays';

function logRelay(ctx: BenchContext, name: string, result: RelayResult): void {
  ctx.log(
    `  ${name.padEnd(22)} ${String(result.events).padStart(7)} events in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.eventsPerS)}/s, peak RSS ${result.peakRssMb} MiB`,
  );
}

async function naiveDrain(
  ctx: BenchContext,
  topic: string,
  syncCommit: SyncCommit,
  offset: number,
): Promise<RelayResult> {
  const count = ctx.config.relayNaiveEvents;
  await fillNaiveOutbox(ctx.pool, ctx.schema, {
    topic,
    count,
    valueBytes: ctx.config.valueBytes,
    keys: ctx.config.keys,
    offset,
    runId: ctx.runId,
  });
  // Each drain leaves its deleted rows behind; as autovacuum would between bursts in production,
  // they are cleared first, so that the drains of a run start alike whatever ran before them.
  await ctx.pool.query(`VACUUM ${quoteIdentifier(ctx.schema)}.outbox`);
  const params: RelayParams = { ...ctx.services, schema: ctx.schema, syncCommit, expected: count };
  const result = await spawnWorker<RelayResult>(
    'naive-relay',
    params as unknown as Record<string, unknown>,
  ).result();
  logRelay(ctx, `naive-relay${syncCommit === 'off' ? '-sync-off' : ''}`, result);
  return result;
}

async function onceflowDrain(
  ctx: BenchContext,
  topic: string,
  syncCommit: SyncCommit,
  offset: number,
  metrics = false,
  name = 'relay-drain',
  publishedLedger = true,
): Promise<RelayResult> {
  const count = ctx.config.relayEvents;
  await fillOnceflowOutbox(ctx.pool, ctx.schema, {
    topic,
    count,
    valueBytes: ctx.config.valueBytes,
    keys: ctx.config.keys,
    offset,
    runId: ctx.runId,
  });
  // Each drain leaves its deleted rows behind; as autovacuum would between bursts in production,
  // they are cleared first, so that the drains of a run start alike whatever ran before them.
  await ctx.pool.query(`VACUUM ${quoteIdentifier(ctx.schema)}.outbox`);
  const params: RelayParams = {
    ...ctx.services,
    schema: ctx.schema,
    syncCommit,
    expected: count,
    metrics,
    publishedLedger,
  };
  const result = await spawnWorker<RelayResult>(
    'onceflow-relay',
    params as unknown as Record<string, unknown>,
  ).result();
  logRelay(
    ctx,
    `${name}${publishedLedger ? '' : '-no-ledger'}${syncCommit === 'off' ? '-sync-off' : ''}`,
    result,
  );
  const status = await createOnceflowAdmin({ pool: ctx.pool, schema: ctx.schema }).outboxStatus();
  if (status.backlog !== 0)
    ctx.notes.push(`relay drain check: ${status.backlog} events still unpublished after the drain`);
  return result;
}

/**
 * Commit → broker-ack latency at a fixed offered rate (a fresh relay each, measured after a warm-up of
 * the same load, whose figures are reported apart): an open-loop enqueuer commits one small
 * transaction every 10 ms carrying rate/100 events (one enqueue() call per event, sent as one
 * statement; a slow commit never lowers the offered rate),
 * noting when it sent COMMIT for each event; the relay notes when the broker acknowledged each one.
 */
async function latencyRun(ctx: BenchContext, topic: string, rate: number, label: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'onceflow-bench-'));
  const ackFile = join(dir, 'acks.txt');
  const params: RelayParams = { ...ctx.services, schema: ctx.schema, syncCommit: 'server', ackFile };
  const relay = spawnWorker<RelayResult>('onceflow-relay', params as unknown as Record<string, unknown>);
  const pool = benchPool(ctx.services, 'server', 8);
  try {
    await relay.ready();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // let it take its lanes
    const committedAt = new Map<string, number>();
    const tickMs = 10;
    const started = nowMs();
    // Events committed before this instant belong to the warm-up and are reported separately.
    const measureFrom = started + ctx.config.latencyWarmupSeconds * 1000;
    const endAt = measureFrom + ctx.config.latencySeconds * 1000;
    let owed = 0;
    let n = 0;
    const inFlight = new Set<Promise<void>>();
    let failures = 0;
    let lastCommit = started;
    for (let tick = 0; ; tick++) {
      const due = started + tick * tickMs;
      if (due >= endAt) break;
      const wait = due - nowMs();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      owed += (rate * tickMs) / 1000;
      const k = Math.floor(owed);
      owed -= k;
      if (k === 0) continue;
      const first = n;
      n += k;
      const work = (async () => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const events = benchEvents(
            {
              topic,
              valueBytes: ctx.config.valueBytes,
              keys: ctx.config.keys,
              runId: `${ctx.runId}-lat${label}`,
            },
            first,
            first + k,
          );
          await enqueueEvents(client, ctx.schema, events);
          const at = nowMs();
          await client.query('COMMIT');
          for (const event of events) committedAt.set(event.id!, at);
          lastCommit = nowMs();
        } catch {
          failures++;
          await client.query('ROLLBACK').catch(() => undefined);
        } finally {
          client.release();
        }
      })();
      inFlight.add(work);
      void work.then(() => inFlight.delete(work));
    }
    await Promise.all(inFlight);
    const offeredPerS = (committedAt.size / (lastCommit - started)) * 1000;
    const warmupIds = new Set<string>();
    for (const [id, at] of committedAt) if (at < measureFrom) warmupIds.add(id);
    const drainDeadline = nowMs() + 30_000;
    while (
      nowMs() < drainDeadline &&
      (await createOnceflowAdmin({ pool: ctx.pool, schema: ctx.schema }).outboxStatus()).backlog > 0
    )
      await new Promise((resolve) => setTimeout(resolve, 100));
    const result = await relay.finish();
    const latencies: number[] = [];
    const warmupLatencies: number[] = [];
    // Where the measured events' time went: commit → handed to the publish (wake-up, claim, waiting
    // for the cycle in flight), and the publish itself (the Kafka transaction, until the broker acked).
    const toPublish: number[] = [];
    const inPublish: number[] = [];
    for (const line of readFileSync(ackFile, 'utf8').split('\n')) {
      const [id, ack, publishStart] = line.split(' ');
      const at = id === undefined ? undefined : committedAt.get(id);
      if (at === undefined || ack === undefined) continue;
      (warmupIds.has(id!) ? warmupLatencies : latencies).push(Math.max(0, Number(ack) - at));
      if (!warmupIds.has(id!) && publishStart !== undefined) {
        toPublish.push(Math.max(0, Number(publishStart) - at));
        inPublish.push(Number(ack) - Number(publishStart));
      }
    }
    toPublish.sort((a, b) => a - b);
    inPublish.sort((a, b) => a - b);
    latencies.sort((a, b) => a - b);
    warmupLatencies.sort((a, b) => a - b);
    const missing = committedAt.size - latencies.length - warmupLatencies.length;
    ctx.log(
      `  relay-latency-${label.padEnd(8)} warm-up ${ctx.config.latencyWarmupSeconds} s: p50 ${percentile(warmupLatencies, 50).toFixed(1)} ms, p99 ${percentile(warmupLatencies, 99).toFixed(1)} ms (${warmupLatencies.length} events, not in the figures); then offered ${Math.round(offeredPerS)}/s for ${ctx.config.latencySeconds} s: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${percentile(latencies, 100).toFixed(1)} ms (${latencies.length} events, peak RSS ${result.peakRssMb} MiB)`,
    );
    if (missing > 0)
      ctx.notes.push(`relay latency ${label}: ${missing} committed events had no broker ack recorded`);
    if (failures > 0) ctx.notes.push(`relay latency ${label}: ${failures} enqueue transactions failed`);
    const field = `relay_latency_${label}`;
    ctx.results[`${field}_offered_events_per_s`] = round(offeredPerS);
    ctx.results[`${field}_p50_ms`] = round(percentile(latencies, 50), 1);
    ctx.results[`${field}_p99_ms`] = round(percentile(latencies, 99), 1);
    ctx.results[`${field}_max_ms`] = round(percentile(latencies, 100), 1);
    ctx.results[`${field}_warmup_p99_ms`] = round(percentile(warmupLatencies, 99), 1);
    ctx.results[`${field}_peak_rss_mb`] = result.peakRssMb;
    ctx.results[`${field}_to_publish_p50_ms`] = round(percentile(toPublish, 50), 1);
    ctx.results[`${field}_publish_p50_ms`] = round(percentile(inPublish, 50), 1);
  } finally {
    relay.kill();
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Relay scenarios: the one-at-a-time loop, onceflow's relay draining a backlog, and the latency run. */
export async function runRelayGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const topic = `${ctx.runId}-relay`;
  await createTopics(ctx.admin, [topic], config.partitions);
  ctx.topics.push(topic);
  ctx.log(`relay: ${config.relayEvents}-event backlog, ${config.valueBytes} B events, ${config.keys} keys`);
  let offset = 0;
  const naive = await naiveDrain(ctx, topic, 'server', offset);
  offset += config.relayNaiveEvents;
  const drain = await onceflowDrain(ctx, topic, 'server', offset);
  offset += config.relayEvents;
  // The same drain with onceflow's Prometheus metrics registered and without, in pairs back to back,
  // the first of each pair changing every round: the overhead is the median of the pairs' time ratios.
  const withRates: number[] = [];
  const timeRatios: number[] = [];
  for (let pass = 0; pass < config.overheadRounds; pass++) {
    const rate = { with: 0, without: 0 };
    for (const metrics of pass % 2 === 0 ? [true, false] : [false, true]) {
      const name = `relay-drain-${metrics ? '' : 'no-'}metrics-${pass + 1}`;
      const result = await onceflowDrain(ctx, topic, 'server', offset, metrics, name);
      offset += config.relayEvents;
      rate[metrics ? 'with' : 'without'] = result.eventsPerS;
    }
    withRates.push(rate.with);
    timeRatios.push(rate.without / rate.with);
  }
  results.relay_metrics_events_per_s = round(median(withRates));
  // Time with metrics over time without: 1.0 is no overhead, 1.05 is 5 % more time.
  results.relay_metrics_overhead_ratio = round(median(timeRatios), 3);
  results.relay_naive_events_per_s = round(naive.eventsPerS);
  results.relay_drain_events_per_s = round(drain.eventsPerS);
  results.relay_speedup_vs_naive = round(drain.eventsPerS / naive.eventsPerS, 2);
  results.relay_peak_rss_mb = drain.peakRssMb;
  // The published ledger's cost: pairs of drains, one with it and one without, back to back (the first
  // of each pair changing every round), so that drift of a shared machine and the outbox's own history
  // weigh on both of a pair alike. The cost is the median of the pairs' costs: a burst of background
  // load spoils one pair, not the figure. An even number of pairs: the second drain of a pair tends to
  // be the faster one (the machine warms up), so each order must count as often as the other.
  const pairs = config.overheadRounds + (config.overheadRounds % 2);
  const costs: number[] = [];
  let withoutLedger = 0;
  for (let pass = 0; pass < pairs; pass++) {
    const rate = { with: 0, without: 0 };
    for (const ledger of pass % 2 === 0 ? [false, true] : [true, false]) {
      const name = `relay-drain-ledger-${pass + 1}`;
      const result = await onceflowDrain(ctx, topic, 'server', offset, false, name, ledger);
      offset += config.relayEvents;
      rate[ledger ? 'with' : 'without'] = result.eventsPerS;
    }
    costs.push(1 - rate.with / rate.without);
    withoutLedger = Math.max(withoutLedger, rate.without);
  }
  results.relay_drain_no_ledger_events_per_s = round(withoutLedger);
  results.relay_ledger_cost_pct = round(median(costs) * 100, 1);
  ctx.log(
    `  ledger cost per pair: ${costs.map((cost) => `${(cost * 100).toFixed(1)} %`).join(', ')}; median ${(median(costs) * 100).toFixed(1)} %`,
  );
  if (config.syncOff) {
    const naiveOff = await naiveDrain(ctx, topic, 'off', offset);
    offset += config.relayNaiveEvents;
    const drainOff = await onceflowDrain(ctx, topic, 'off', offset);
    results.relay_naive_events_per_s_sync_off = round(naiveOff.eventsPerS);
    results.relay_drain_events_per_s_sync_off = round(drainOff.eventsPerS);
    results.relay_speedup_vs_naive_sync_off = round(drainOff.eventsPerS / naiveOff.eventsPerS, 2);
  }
  results.relay_latency_warmup_s = config.latencyWarmupSeconds;
  results.relay_latency_measured_s = config.latencySeconds;
  // Fixed offered loads: a rate tied to the drain figure would move with the machine's load.
  for (const rate of config.latencyRates) await latencyRun(ctx, topic, rate, `${rate / 1000}k`);
}
