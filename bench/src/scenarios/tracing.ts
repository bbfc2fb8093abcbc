import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, fillOnceflowOutbox, produceMessages } from '../services';
import type { ConsumerParams, ConsumerResult } from '../workers/consumers';
import type { RelayParams, RelayResult } from '../workers/relays';
import { benchTraceparent } from '../workers/tracing';

/** Untraced and traced runs alternate this many times each; each side reports its best run. */
const rounds = 3;

/**
 * The cost of OpenTelemetry tracing turned on without an exporter (an SDK tracer provider recording
 * every span, the AsyncLocalStorage context manager, the W3C propagator, `instrumentOnceflow()`):
 * the inbox consumer with a batch handler (one consumer span per handler call, linked to each message's
 * producer) and with a per-message handler (one consumer span per message) over messages that carry a
 * `traceparent`, and the relay draining a backlog of events that carry one (one producer span
 * per event), each against the same run with tracing off. Runs alternate, so background load hits
 * both sides alike; the best run of each side is compared.
 */
export async function runTracingGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const topic = `${ctx.runId}-tracing-inbox`;
  const relayTopic = `${ctx.runId}-tracing-relay`;
  await createTopics(ctx.admin, [topic, relayTopic], config.partitions);
  ctx.topics.push(topic, relayTopic);
  ctx.log(
    `tracing: ${config.messages} messages and ${config.relayEvents}-event backlogs carrying a traceparent`,
  );
  await produceMessages(ctx.kafka, [topic], {
    runId: `${ctx.runId}-traced`,
    count: config.messages,
    valueBytes: config.valueBytes,
    keys: config.keys,
    traceparent: benchTraceparent,
  });

  const inbox = {
    batch: { plain: 0, traced: 0 },
    'per-message': { plain: 0, traced: 0 },
  };
  const relay = { plain: 0, traced: 0 };
  let offset = 0;
  for (let pass = 0; pass < rounds; pass++) {
    for (const handler of ['batch', 'per-message'] as const)
      for (const tracing of [false, true]) {
        const name = `${ctx.runId}-inbox-${handler}-${tracing ? 'traced' : 'plain'}-${pass}`;
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
          tracing,
        };
        const result = await spawnWorker<ConsumerResult>(
          'inbox-consumer',
          params as unknown as Record<string, unknown>,
        ).result();
        const label = `inbox-${handler === 'batch' ? 'batch' : 'per-msg'}-${tracing ? 'traced' : 'untraced'}`;
        ctx.log(
          `  ${label.padEnd(26)} ${String(result.messages).padStart(7)} msgs in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.msgsPerS)}/s`,
        );
        if (result.effects !== config.messages)
          ctx.notes.push(
            `tracing inbox check failed: ${result.effects} effects for ${config.messages} messages`,
          );
        const side = tracing ? 'traced' : 'plain';
        inbox[handler][side] = Math.max(inbox[handler][side], result.msgsPerS);
      }
    for (const tracing of [false, true]) {
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
      const params: RelayParams = {
        ...ctx.services,
        schema: ctx.schema,
        syncCommit: 'server',
        expected: config.relayEvents,
        tracing,
      };
      const result = await spawnWorker<RelayResult>(
        'onceflow-relay',
        params as unknown as Record<string, unknown>,
      ).result();
      ctx.log(
        `  ${`relay-${tracing ? 'traced' : 'untraced'}`.padEnd(26)} ${String(result.events).padStart(7)} events in ${(result.elapsedMs / 1000).toFixed(2)} s = ${Math.round(result.eventsPerS)}/s`,
      );
      const side = tracing ? 'traced' : 'plain';
      relay[side] = Math.max(relay[side], result.eventsPerS);
    }
  }
  results.inbox_untraced_msgs_per_s = round(inbox.batch.plain);
  results.inbox_traced_msgs_per_s = round(inbox.batch.traced);
  results.inbox_tracing_overhead_ratio = round(inbox.batch.traced / inbox.batch.plain, 3);
  results.inbox_per_msg_handler_untraced_msgs_per_s = round(inbox['per-message'].plain);
  results.inbox_per_msg_handler_traced_msgs_per_s = round(inbox['per-message'].traced);
  results.inbox_per_msg_handler_tracing_overhead_ratio = round(
    inbox['per-message'].traced / inbox['per-message'].plain,
    3,
  );
  results.relay_untraced_events_per_s = round(relay.plain);
  results.relay_traced_events_per_s = round(relay.traced);
  results.relay_tracing_overhead_ratio = round(relay.traced / relay.plain, 3);
}
