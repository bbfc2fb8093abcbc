// Faults of the broker under load (issue item 10 and the broker faults of the fault list): the broker
// SIGKILLed and restarted, and the broker frozen (SIGSTOP) for longer than the consumers' session
// timeout, then continued. Kafka being away must cost time, never an event or an effect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, startFaultCluster } from './support/cluster';
import { runScenario } from './support/scenario';
import { runTopicRecreatedScenario } from './support/topic-recreated';

/** Session timeout of the consumer processes, in milliseconds (their fixture's default). */
const sessionTimeoutMs = 10_000;

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
});
