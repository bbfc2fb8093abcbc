// Faults of the broker under load (issue item 10 and the broker faults of the fault list): the broker
// SIGKILLed and restarted, and the broker frozen (SIGSTOP) for longer than the consumers' session
// timeout, then continued. Kafka being away must cost time, never an event or an effect.

import { defaultKafkajsConsumerConfig } from '@onceflow/kafkajs';
import { createOnceflowAdmin } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, startFaultCluster } from './support/cluster';
import { createTopics, readAll } from './support/kafka-tools';
import { livenessBoundMs, pollUntil, runScenario, workloadSchema } from './support/scenario';
import { runTopicRecreatedScenario } from './support/topic-recreated';

/** Session timeout of the consumer processes, in milliseconds: onceflow's default, which they keep. */
const sessionTimeoutMs = defaultKafkajsConsumerConfig.sessionTimeout!;

describe('fault suite: Kafka broker', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await startFaultCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('broker SIGKILLed and restarted under load: no loss, no double effect, processes resume on their own', async () => {
    const summary = await runScenario(cluster, {
      name: 'broker-kill',
      async nemesis(ctx) {
        await cluster.kafka.kill('SIGKILL');
        ctx.note('broker killed');
        await ctx.sleep(2_000);
        await cluster.kafka.restart();
        const backAt = Date.now();
        ctx.note('broker answers again');
        await ctx.recovered('broker restart', backAt);
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('broker frozen (SIGSTOP) beyond the consumers session timeout, then continued: no loss, no double effect, no process exits', async () => {
    const summary = await runScenario(cluster, {
      name: 'broker-stall',
      async nemesis(ctx) {
        await cluster.kafka.kill('SIGSTOP');
        ctx.note('broker stopped (SIGSTOP)');
        await ctx.sleep(sessionTimeoutMs + 3_000);
        await cluster.kafka.kill('SIGCONT');
        const backAt = Date.now();
        ctx.note('broker continued (SIGCONT)');
        await ctx.recovered('broker SIGCONT', backAt);
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('topic deleted and recreated: the default policy stops each partition loudly, with no hot loop and no silent skip; reset-to-earliest and the operator reset process every new message once', async () => {
    const summary = await runTopicRecreatedScenario(cluster);
    expect(summary.violations).toEqual([]);
  });

  it('events for a topic that does not exist hold back only their own key: every other event flows, they are parked naming the topic, and published in order once it exists', async () => {
    const summary = await runScenario(cluster, {
      name: 'missing-topic',
      relayEnv: { OPTIONS_JSON: JSON.stringify({ parkRefusedTopicAfterMs: 3_000 }) },
      async nemesis(ctx) {
        const missing = `${ctx.topic}.missing`;
        const ghosts = Array.from({ length: 5 }, (_, i) => ({
          id: `missing-topic-ghost-${i}`,
          key: 'ghost',
        }));
        // Two transactions: the later events of the key must wait behind the first.
        await ctx.enqueue(missing, ghosts.slice(0, 2));
        await ctx.enqueue(missing, ghosts.slice(2));
        const enqueuedAt = Date.now();
        // The rest of the workload keeps flowing meanwhile.
        await ctx.recovered('event for a missing topic enqueued', enqueuedAt);
        const parked = await pollUntil(
          async () =>
            (await createOnceflowAdmin({ pool: ctx.db, schema: workloadSchema }).listParkedEvents()).length >
            0,
          livenessBoundMs,
        );
        expect(parked, 'the event for the missing topic was never parked').toBe(true);
        const relayOutput = ctx.relays.map((r) => r.output()).join('\n');
        expect(relayOutput, 'the relay must name the missing topic').toContain(missing);
        for (const event of await createOnceflowAdmin({
          pool: ctx.db,
          schema: workloadSchema,
        }).listParkedEvents()) {
          expect(event.topic).toBe(missing);
          expect(event.error).toContain(missing);
        }
        ctx.note('parked; creating the topic and unparking');
        await createTopics(ctx.kafka, [{ name: missing, partitions: 1 }]);
        const fixedAt = Date.now();
        await createOnceflowAdmin({ pool: ctx.db, schema: workloadSchema }).unparkEvents();
        const published = await pollUntil(
          async () => (await readAll(ctx.kafka, missing)).length >= ghosts.length,
          livenessBoundMs,
        );
        expect(published, 'the held-back events were not published once the topic existed').toBe(true);
        ctx.recordRecovery('missing topic created and events unparked', Date.now() - fixedAt);
        const records = await readAll(ctx.kafka, missing);
        const firsts = [...new Set(records.map((r) => r.id))];
        expect(firsts, 'held-back events published out of order or incompletely').toEqual(
          ghosts.map((g) => g.id),
        );
      },
    });
    expect(summary.violations).toEqual([]);
  });
});
