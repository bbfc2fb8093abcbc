import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, produceMessages } from '../services';
import type { SyncCommit } from '../shared';
import { median } from '../shared';
import type { ConsumerParams, ConsumerResult } from '../workers/consumers';

async function consume(
  ctx: BenchContext,
  kind: 'raw-consumer' | 'naive-consumer' | 'inbox-consumer',
  topic: string,
  name: string,
  syncCommit: SyncCommit,
  extra: Partial<ConsumerParams> = {},
): Promise<ConsumerResult> {
  const params: ConsumerParams = {
    ...ctx.services,
    schema: ctx.schema,
    topic,
    groupId: `${ctx.runId}-${name}`,
    endOffsets: await endOffsets(ctx.admin, topic),
    concurrency: ctx.config.consumerConcurrency,
    syncCommit,
    ...extra,
  };
  const result = await spawnWorker<ConsumerResult>(
    kind,
    params as unknown as Record<string, unknown>,
  ).result();
  const rollbacks = Object.entries(result.rollbacks ?? {})
    .map(([state, n]) => `${n} × ${state}`)
    .join(', ');
  ctx.log(
    `  ${name.padEnd(22)} ${String(result.messages).padStart(7)} msgs in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.msgsPerS)}/s, peak RSS ${result.peakRssMb} MiB${rollbacks ? `, rolled back: ${rollbacks}` : ''}`,
  );
  return result;
}

/**
 * Hot rows: a batch handler adding 1 to one of 10 rows per message (in message order, one update
 * each), 6 partitions processed concurrently, against the same messages each on a row of its own.
 * Concurrent transactions on the same few rows wait for each other and deadlock; the ratio says what
 * that costs, and the rolled-back transactions are counted by the SQLSTATE their report named.
 */
export async function runHotRowsGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const topic = `${ctx.runId}-hot`;
  await createTopics(ctx.admin, [topic], 6);
  ctx.topics.push(topic);
  const count = config.hotRowsMessages;
  await produceMessages(ctx.kafka, [topic], {
    runId: ctx.runId,
    count,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  await ctx.pool.query(
    `INSERT INTO "${ctx.schema}".distinct_rows (k) SELECT generate_series(0, $1::int - 1)`,
    [count],
  );
  const extra = { concurrency: 6 };
  const distinct = await consume(ctx, 'inbox-consumer', topic, 'inbox-distinct-rows', 'server', {
    ...extra,
    consumerName: `${ctx.runId}-distinct`,
    inboxHandler: 'distinct-rows',
  });
  const hot = await consume(ctx, 'inbox-consumer', topic, 'inbox-hot-rows', 'server', {
    ...extra,
    consumerName: `${ctx.runId}-hot`,
    inboxHandler: 'hot-rows',
  });
  const { rows } = await ctx.pool.query<{ total: string }>(
    `SELECT sum(n) AS total FROM "${ctx.schema}".hot_rows`,
  );
  if (Number(rows[0]!.total) !== count)
    ctx.notes.push(`hot rows check failed: the 10 rows add up to ${rows[0]!.total}, not ${count}`);
  const rolledBack = Object.values(hot.rollbacks ?? {}).reduce((a, b) => a + b, 0);
  const named = Object.entries(hot.rollbacks ?? {})
    .map(([state, n]) => `${n} × SQLSTATE ${state}`)
    .join(', ');
  ctx.notes.push(
    `hot rows: ${rolledBack} rolled-back transactions reported${named ? ` (${named})` : ''}, every one with its cause`,
  );
  results.inbox_distinct_rows_msgs_per_s = round(distinct.msgsPerS);
  results.inbox_hot_rows_msgs_per_s = round(hot.msgsPerS);
  results.inbox_hot_rows_ratio = round(hot.msgsPerS / distinct.msgsPerS, 3);
  results.inbox_hot_rows_rollbacks = rolledBack;
}

async function effectCount(ctx: BenchContext, consumer: string): Promise<number> {
  const { rows } = await ctx.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${ctx.schema}".effects WHERE consumer = $1`,
    [consumer],
  );
  return Number(rows[0]!.n);
}

/**
 * Consumer scenarios over the same pre-produced messages: the raw kafkajs ceiling, the naive
 * per-message transaction, onceflow's batch inbox with a per-message handler and with a batch handler
 * (`handleBatch`, the headline figure), and the latter over a replay of the same stream (a second
 * topic with identical messages, so every id is a duplicate).
 */
export async function runInboxGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const fresh = `${ctx.runId}-inbox-a`;
  const replay = `${ctx.runId}-inbox-replay`;
  await createTopics(ctx.admin, [fresh, replay], config.partitions);
  ctx.topics.push(fresh, replay);
  ctx.log(`inbox: producing ${config.messages} messages of ${config.valueBytes} B to two topics`);
  await produceMessages(ctx.kafka, [fresh, replay], {
    runId: ctx.runId,
    count: config.messages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });

  const raw = await consume(ctx, 'raw-consumer', fresh, 'raw', 'server');
  const naive = await consume(ctx, 'naive-consumer', fresh, 'naive', 'server', {
    limit: config.naiveMessages,
  });
  const perMessageName = `${ctx.runId}-inbox-pm`;
  const perMessage = await consume(ctx, 'inbox-consumer', fresh, 'inbox-per-message', 'server', {
    consumerName: perMessageName,
    inboxHandler: 'per-message',
  });
  const perMessageWritten = await effectCount(ctx, perMessageName);
  if (perMessageWritten !== config.messages)
    ctx.notes.push(
      `inbox per-message handler check failed: ${perMessageWritten} effect rows for ${config.messages} distinct messages`,
    );
  const inboxName = `${ctx.runId}-inbox`;
  const inbox = await consume(ctx, 'inbox-consumer', fresh, 'inbox', 'server', {
    consumerName: inboxName,
    inboxHandler: 'batch',
  });
  const written = await effectCount(ctx, inboxName);
  if (written !== config.messages)
    ctx.notes.push(`inbox check failed: ${written} effect rows for ${config.messages} distinct messages`);
  const duplicates = await consume(ctx, 'inbox-consumer', replay, 'inbox-duplicates', 'server', {
    consumerName: inboxName,
    inboxHandler: 'batch',
  });
  const after = await effectCount(ctx, inboxName);
  if (after !== written)
    ctx.notes.push(`duplicates check failed: the replay added ${after - written} effect rows`);

  // The same run with onceflow's Prometheus metrics registered and without (fresh dedup namespaces
  // each), in pairs back to back, the first of each pair changing every round: the overhead is the
  // median of the pairs' time ratios, so that a burst of background load spoils a pair, not the figure.
  const withRates: number[] = [];
  const timeRatios: number[] = [];
  for (let pass = 0; pass < config.overheadRounds; pass++) {
    const rate = { with: 0, without: 0 };
    for (const metrics of pass % 2 === 0 ? [true, false] : [false, true]) {
      const name = `inbox-${metrics ? '' : 'no-'}metrics-${pass + 1}`;
      const result = await consume(ctx, 'inbox-consumer', fresh, name, 'server', {
        consumerName: `${ctx.runId}-${name}`,
        inboxHandler: 'batch',
        metrics,
      });
      rate[metrics ? 'with' : 'without'] = result.msgsPerS;
    }
    withRates.push(rate.with);
    timeRatios.push(rate.without / rate.with);
  }

  results.raw_consume_msgs_per_s = round(raw.msgsPerS);
  results.inbox_metrics_msgs_per_s = round(median(withRates));
  // Time with metrics over time without: 1.0 is no overhead, 1.05 is 5 % more time.
  results.inbox_metrics_overhead_ratio = round(median(timeRatios), 3);
  results.naive_dedup_msgs_per_s = round(naive.msgsPerS);
  results.inbox_batch_msgs_per_s = round(inbox.msgsPerS);
  results.inbox_batch_per_msg_handler_msgs_per_s = round(perMessage.msgsPerS);
  results.inbox_duplicates_msgs_per_s = round(duplicates.msgsPerS);
  results.inbox_ratio_to_raw = round(inbox.msgsPerS / raw.msgsPerS, 3);
  results.inbox_per_msg_handler_ratio_to_raw = round(perMessage.msgsPerS / raw.msgsPerS, 3);
  results.inbox_speedup_vs_naive = round(inbox.msgsPerS / naive.msgsPerS, 2);
  results.inbox_duplicates_ratio_to_fresh = round(duplicates.msgsPerS / inbox.msgsPerS, 3);
  results.raw_consumer_peak_rss_mb = raw.peakRssMb;
  results.inbox_consumer_peak_rss_mb = inbox.peakRssMb;

  if (config.syncOff) {
    const naiveOff = await consume(ctx, 'naive-consumer', fresh, 'naive-sync-off', 'off', {
      limit: config.naiveMessages,
    });
    const inboxOff = await consume(ctx, 'inbox-consumer', fresh, 'inbox-sync-off', 'off', {
      consumerName: `${ctx.runId}-inbox-off`,
    });
    results.naive_dedup_msgs_per_s_sync_off = round(naiveOff.msgsPerS);
    results.inbox_batch_msgs_per_s_sync_off = round(inboxOff.msgsPerS);
    results.inbox_ratio_to_raw_sync_off = round(inboxOff.msgsPerS / raw.msgsPerS, 3);
    results.inbox_speedup_vs_naive_sync_off = round(inboxOff.msgsPerS / naiveOff.msgsPerS, 2);
  }
}
