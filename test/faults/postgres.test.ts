// Faults of the database under load (issue items 1, 2, 3): Postgres restarted fast and immediate while
// the relay drains a backlog, onceflow's backends terminated at random (busy, idle, inside a
// transaction), and Postgres down when the processes start. The invariants: nothing lost, nothing
// doubled, nothing of a rolled-back transaction, per-key commit order, and no process exits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, startFaultCluster } from './support/cluster';
import { runScenario } from './support/scenario';

describe('fault suite: Postgres', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await startFaultCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('postgres restarted fast, then immediate, while the relay drains a backlog: no loss, no double effect, no process exits', async () => {
    const summary = await runScenario(cluster, {
      name: 'pg-restart',
      async nemesis(ctx) {
        for (const mode of ['fast', 'immediate'] as const) {
          await ctx.burst(3_000);
          await ctx.waitForDraining(3_000);
          ctx.note(`postgres restart (${mode})`);
          await cluster.postgres.restart({ mode });
          await ctx.recovered(`postgres restart ${mode}`);
        }
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('onceflow backends terminated at random, idle or in a transaction: no process exits, no message dead-lettered, no double effect', async () => {
    const summary = await runScenario(cluster, {
      name: 'pg-terminate',
      async nemesis(ctx) {
        let terminated = 0;
        for (let round = 0; round < 16; round++) {
          terminated += await ctx.terminateBackends(2);
          await ctx.sleep(400);
        }
        ctx.note(`${terminated} backends terminated`);
        await ctx.recovered('backend terminations');
        // Aimed: the relay's settle while it drains a backlog (it runs beside the next batch's claim
        // and publish), and the consumers' transactions, several times in a row.
        await ctx.burst(3_000);
        await ctx.terminateWhileRunning({
          application: 'onceflow-relay',
          statement: 'DELETE FROM',
          hits: 3,
          timeoutMs: 15_000,
        });
        await ctx.recovered('relay settles terminated');
        await ctx.terminateWhileRunning({
          application: 'onceflow-consumer',
          statement: 'in-transaction',
          hits: 8,
          timeoutMs: 15_000,
        });
        await ctx.recovered('consumer transactions terminated');
        // All connections at once, including the relay's LISTEN connection.
        cluster.pgProxy.cutAll();
        await ctx.recovered('all postgres connections cut');
      },
    });
    expect(summary.violations).toEqual([]);
  });

  it('postgres down when the relay (onceflow relay) and consumers start: they wait and say so, then work once it is up', async () => {
    const summary = await runScenario(cluster, {
      name: 'pg-down-at-start',
      relayCommand: 'cli',
      startProcessesFirst: false,
      warmupMs: 0,
      async nemesis(ctx) {
        await cluster.postgres.stop('fast');
        ctx.note('postgres stopped; starting the processes');
        await ctx.startProcesses({ waitForStart: false });
        // A logged wait from each process: the proof that they are waiting, not hung or dead.
        await Promise.all(
          [...ctx.relays, ...ctx.consumers].map((p) => p.waitForLine(/waiting for Postgres/i)),
        );
        await ctx.sleep(2_000);
        await cluster.postgres.start();
        const upAt = Date.now();
        ctx.note('postgres started');
        await ctx.recovered('postgres up after start', upAt);
      },
    });
    expect(summary.violations).toEqual([]);
  });
});
