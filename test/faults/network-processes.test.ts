// Faults of the onceflow processes and of their network: the relay and consumers SIGKILLed and
// restarted (as a supervisor would), and the proxies between them and the servers cutting every
// connection, adding latency and stalling traffic like a partition.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, startFaultCluster } from './support/cluster';
import { runScenario } from './support/scenario';

describe('fault suite: processes and network', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await startFaultCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('relay and consumers SIGKILLed and restarted under load: no loss, no double effect, order kept', async () => {
    const summary = await runScenario(cluster, {
      name: 'process-kills',
      async nemesis(ctx) {
        const [relay] = ctx.relays;
        const [first, second] = ctx.consumers;
        await ctx.burst(2_000);
        await relay!.kill('SIGKILL');
        await ctx.sleep(1_000);
        relay!.restart();
        await ctx.recovered('relay restarted');
        await first!.kill('SIGKILL');
        await ctx.sleep(1_000);
        first!.restart();
        await ctx.recovered('consumer restarted');
        await Promise.all([relay!.kill('SIGKILL'), first!.kill('SIGKILL'), second!.kill('SIGKILL')]);
        await ctx.sleep(1_000);
        for (const p of [relay!, first!, second!]) p.restart();
        await ctx.recovered('relay and both consumers restarted');
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('connections cut, slowed and stalled between the processes and both servers: no loss, no double effect, no process exits', async () => {
    const summary = await runScenario(cluster, {
      name: 'network',
      async nemesis(ctx) {
        const { pgProxy, kafkaProxy } = cluster;
        kafkaProxy.cutAll();
        await ctx.recovered('all broker connections cut');
        pgProxy.setLatency(100);
        kafkaProxy.setLatency(100);
        ctx.note('100 ms latency each way to both servers');
        await ctx.sleep(4_000);
        pgProxy.heal();
        kafkaProxy.heal();
        await ctx.recovered('latency removed');
        pgProxy.stall();
        ctx.note('postgres traffic stalled');
        await ctx.sleep(4_000);
        pgProxy.heal();
        await ctx.recovered('postgres traffic flowing again');
        kafkaProxy.stall();
        ctx.note('broker traffic stalled');
        await ctx.sleep(4_000);
        kafkaProxy.heal();
        await ctx.recovered('broker traffic flowing again');
        pgProxy.cutAll();
        kafkaProxy.cutAll();
        await ctx.recovered('all connections to both servers cut');
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('the same ids produced to several partitions at once, in opposite orders: one effect each, and the inbox claims never deadlock', async () => {
    const summary = await runScenario(cluster, {
      name: 'twins',
      noDeadlocks: true,
      partitions: 4,
      async nemesis(ctx) {
        for (let round = 0; round < 8; round++) {
          await ctx.injectTwins(400);
          await ctx.sleep(300);
        }
        await ctx.recovered('duplicate production');
      },
    });
    expect(summary.violations).toEqual([]);
  });
});
