import { quoteIdentifier } from '@onceflow/postgres';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, fillOnceflowOutbox, produceMessages } from '../services';
import { median } from '../shared';
import type { ConsumerParams, ConsumerResult } from '../workers/consumers';
import type { RelayParams, RelayResult } from '../workers/relays';
import { benchTraceparent } from '../workers/tracing';

/** The three sides of each comparison: nothing on, tracing on, and metrics with tracing on. */
const sides = ['plain', 'traced', 'observed'] as const;
type Side = (typeof sides)[number];

/** The order of the sides in round `pass`: each goes first once in three rounds. */
const sidesOf = (pass: number): Side[] => sides.map((_, i) => sides[(i + pass) % sides.length]!);

const label = { plain: 'untraced', traced: 'traced', observed: 'metrics+traced' } as const;

/**
 * The cost of observing onceflow with OpenTelemetry tracing turned on without an exporter (an SDK
 * tracer provider recording every span, the AsyncLocalStorage context manager, the W3C propagator,
 * `instrumentOnceflow()`), alone and together with onceflow's Prometheus metrics registered: the
 * inbox consumer with a batch handler (one consumer span per handler call, linked to its messages'
 * producers) and with a per-message handler (one consumer span per message) over messages that carry
 * a `traceparent`, and the relay draining a backlog of events that carry one (one producer span per
 * event), each against the same run with both off. Each round runs every side once, the first side
 * changing every round; a ratio is the median over the rounds of a side's rate over the plain rate of
 * the same round, so that background load hits every side alike.
 */
export async function runTracingGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const topic = `${ctx.runId}-tracing-inbox`;
  const relayTopic = `${ctx.runId}-tracing-relay`;
  await createTopics(ctx.admin, [topic, relayTopic], config.partitions);
  ctx.topics.push(topic, relayTopic);
  ctx.log(
    `tracing: ${config.messages} messages and ${config.relayEvents}-event backlogs carrying a traceparent, ${config.overheadRounds} round(s)`,
  );
  await produceMessages(ctx.kafka, [topic], {
    runId: `${ctx.runId}-traced`,
    count: config.messages,
    valueBytes: config.valueBytes,
    keys: config.keys,
    traceparent: benchTraceparent,
  });

  // Each side's rates, a rate per round.
  const rates = (): Record<Side, number[]> => ({ plain: [], traced: [], observed: [] });
  const inbox = { batch: rates(), 'per-message': rates() };
  const relay = rates();
  let offset = 0;
  for (let pass = 0; pass < config.overheadRounds; pass++) {
    for (const handler of ['batch', 'per-message'] as const)
      for (const side of sidesOf(pass)) {
        const name = `${ctx.runId}-inbox-${handler}-${side}-${pass}`;
        const params: ConsumerParams = {
          ...ctx.services,
          schema: ctx.schema,
          topic,
          groupId: name,
          endOffsets: await endOffsets(ctx.admin, topic),
          concurrency: config.consumerConcurrency,
          syncCommit: 'server',
          consumerName: name,
          inboxHandler: handler,
          tracing: side !== 'plain',
          metrics: side === 'observed',
        };
        const result = await spawnWorker<ConsumerResult>(
          'inbox-consumer',
          params as unknown as Record<string, unknown>,
        ).result();
        const runLabel = `inbox-${handler === 'batch' ? 'batch' : 'per-msg'}-${label[side]}`;
        ctx.log(
          `  ${runLabel.padEnd(30)} ${String(result.messages).padStart(7)} msgs in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.msgsPerS)}/s`,
        );
        if (result.effects !== config.messages)
          ctx.notes.push(
            `tracing inbox check failed: ${result.effects} effects for ${config.messages} messages`,
          );
        inbox[handler][side].push(result.msgsPerS);
      }
    for (const side of sidesOf(pass)) {
      await fillOnceflowOutbox(ctx.pool, ctx.schema, {
        topic: relayTopic,
        count: config.relayEvents,
        valueBytes: config.valueBytes,
        keys: config.keys,
        offset,
        runId: `${ctx.runId}-traced`,
        traceparent: benchTraceparent,
      });
      offset += config.relayEvents;
      // The deleted rows of the drain before are cleared first, as autovacuum would.
      await ctx.pool.query(`VACUUM ${quoteIdentifier(ctx.schema)}.outbox`);
      const params: RelayParams = {
        ...ctx.services,
        schema: ctx.schema,
        syncCommit: 'server',
        expected: config.relayEvents,
        tracing: side !== 'plain',
        metrics: side === 'observed',
      };
      const result = await spawnWorker<RelayResult>(
        'onceflow-relay',
        params as unknown as Record<string, unknown>,
      ).result();
      ctx.log(
        `  ${`relay-${label[side]}`.padEnd(30)} ${String(result.events).padStart(7)} events in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.eventsPerS)}/s`,
      );
      relay[side].push(result.eventsPerS);
    }
  }
  // A side's rate is the median of its rounds; an overhead ratio is the median over the rounds of the
  // side's rate over the plain rate of the same round, so that a burst of load spoils a round, not the figure.
  const rate = (side: number[]) => round(median(side));
  const ratio = (of: Record<Side, number[]>, side: Side) =>
    round(median(of[side].map((value, pass) => value / of.plain[pass]!)), 3);
  const batch = inbox.batch;
  const perMessage = inbox['per-message'];
  results.inbox_untraced_msgs_per_s = rate(batch.plain);
  results.inbox_traced_msgs_per_s = rate(batch.traced);
  results.inbox_tracing_overhead_ratio = ratio(batch, 'traced');
  results.inbox_observed_msgs_per_s = rate(batch.observed);
  results.inbox_observed_overhead_ratio = ratio(batch, 'observed');
  results.inbox_per_msg_handler_untraced_msgs_per_s = rate(perMessage.plain);
  results.inbox_per_msg_handler_traced_msgs_per_s = rate(perMessage.traced);
  results.inbox_per_msg_handler_tracing_overhead_ratio = ratio(perMessage, 'traced');
  results.inbox_per_msg_handler_observed_overhead_ratio = ratio(perMessage, 'observed');
  results.relay_untraced_events_per_s = rate(relay.plain);
  results.relay_traced_events_per_s = rate(relay.traced);
  results.relay_tracing_overhead_ratio = ratio(relay, 'traced');
  results.relay_observed_events_per_s = rate(relay.observed);
  results.relay_observed_overhead_ratio = ratio(relay, 'observed');
}
