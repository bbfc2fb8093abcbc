// Bad configuration and unreachable services (issue items 6 and 7, and the "Done when" rule): each
// ends in one clear onceflow error or a logged wait, never a hang without output, a hot loop or a
// crash with a raw driver error.
import { fileURLToPath } from 'node:url';
import { quoteIdentifier } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultCluster, startFaultCluster } from './support/cluster';
import { checkerKafka, createTopics } from './support/kafka-tools';
import { resultsDir, workloadSchema } from './support/scenario';
import { type RunOutcome, runToExit, Supervisor } from './support/supervisor';
import { createWorkloadSchema } from './support/workload';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/bin/onceflow.js', import.meta.url));

/**
 * Longest time, in milliseconds, a misconfigured or cut-off program may take to say what is wrong:
 * a liveness bound far above any connect timeout, so that only a hang reaches it.
 */
const answerBoundMs = 90_000;

/** A raw driver failure: a stack trace of an error that is not onceflow's. */
function rawCrash(output: string): boolean {
  return /^\s+at /m.test(output) && !/OF_[A-Z_]+/.test(output);
}

function describeOutcome(outcome: RunOutcome): string {
  return `code ${outcome.code}${outcome.timedOut ? ' (killed after the bound: a hang)' : ''}; output:\n${outcome.output.slice(-2_000)}`;
}

describe('fault suite: misconfiguration and unreachable services', () => {
  let cluster: FaultCluster;
  const database = 's_misconfiguration';
  const topic = 'misconfiguration.events';
  let env: Record<string, string>;
  beforeAll(async () => {
    cluster = await startFaultCluster();
    const root = cluster.adminPool('postgres');
    await root.query(`CREATE DATABASE ${quoteIdentifier(database)}`);
    await createWorkloadSchema(cluster.adminPool(database), workloadSchema);
    await createTopics(checkerKafka(cluster.directBrokers), [
      { name: topic, partitions: 1 },
      { name: `${topic}.dlq`, partitions: 1 },
    ]);
    env = {
      DATABASE_URL: cluster.processDatabaseUrl(database),
      KAFKA_BROKERS: cluster.processBrokers(),
      SCHEMA: workloadSchema,
      CONSUMER: 'effects',
      TOPICS: topic,
    };
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('interval options above 2^31-1 ms are refused at construction with OF_INVALID_OPTIONS naming the option, never run as a hot loop', async () => {
    const cases = [
      { entry: 'relay.ts', options: { pollIntervalMs: 2 ** 31 }, names: /pollIntervalMs/ },
      {
        entry: 'relay.ts',
        options: { leaseMs: 2 ** 32, heartbeatIntervalMs: 2 ** 31 },
        names: /leaseMs|heartbeatIntervalMs/,
      },
      { entry: 'consumer.ts', options: { pruneIntervalMs: 2 ** 31 }, names: /pruneIntervalMs/ },
      {
        entry: 'consumer.ts',
        options: { consumerConfig: { sessionTimeout: 10_000, heartbeatInterval: 2 ** 31 } },
        names: /heartbeatInterval/,
      },
    ];
    const outcomes = await Promise.all(
      cases.map((c) =>
        runToExit(
          {
            name: c.entry,
            entry: `${fixtures}${c.entry}`,
            env: { ...env, OPTIONS_JSON: JSON.stringify(c.options) },
          },
          answerBoundMs,
        ),
      ),
    );
    const cliOutcome = await runToExit(
      { name: 'cli', entry: cli, args: ['relay', '--poll-interval-ms', String(2 ** 31)], env },
      answerBoundMs,
    );
    for (const [i, outcome] of outcomes.entries()) {
      const text = describeOutcome(outcome);
      expect(outcome.timedOut, text).toBe(false);
      expect(outcome.code, text).not.toBe(0);
      expect(outcome.output, text).toMatch(/OF_INVALID_OPTIONS/);
      expect(outcome.output, text).toMatch(cases[i]!.names);
    }
    const text = describeOutcome(cliOutcome);
    expect(cliOutcome.timedOut, text).toBe(false);
    expect(cliOutcome.code, text).not.toBe(0);
    expect(cliOutcome.output, text).toMatch(/^onceflow: .*pollIntervalMs/m);
    expect(rawCrash(cliOutcome.output), text).toBe(false);
  });

  it('the CLI against a database that accepts connections and never answers ends with one clear error, never a silent hang', async () => {
    cluster.pgProxy.stall();
    // The relay command waits instead (a supervisor starts it before the database): it must say so.
    const supervisor = new Supervisor(`${resultsDir}misconfiguration`);
    try {
      const relay = supervisor.start({ name: 'cli-relay', entry: cli, args: ['relay'], env });
      const [outcomes, line] = await Promise.all([
        Promise.all(
          [['status'], ['migrate', '--schema', 'of_never']].map((args) =>
            runToExit({ name: `cli ${args[0]}`, entry: cli, args, env }, answerBoundMs),
          ),
        ),
        relay.waitForLine(/postgres|database/i, answerBoundMs).catch(() => undefined),
      ]);
      for (const outcome of outcomes) {
        const text = describeOutcome(outcome);
        expect(outcome.timedOut, text).toBe(false);
        expect(outcome.code, text).not.toBe(0);
        expect(outcome.output, text).toMatch(/^onceflow: /m);
        expect(rawCrash(outcome.output), text).toBe(false);
      }
      const exited = supervisor.unexpectedExits()[0];
      if (exited !== undefined) {
        expect(exited.tail, 'an exit must be one clear onceflow error').toMatch(/^onceflow: OF_[A-Z_]+/m);
        expect(rawCrash(exited.tail), exited.tail).toBe(false);
      } else {
        expect(line, `no word about the database within the bound:\n${relay.output()}`).toBeDefined();
        expect(await relay.stop(), relay.output()).toBe(0);
      }
    } finally {
      await supervisor.closeAll();
      cluster.pgProxy.heal();
    }
  });

  it('an unreachable broker makes the relay and the consumer wait and say so (or end with one clear error); both stop on SIGTERM', async () => {
    const unreachable = { ...env, KAFKA_BROKERS: '127.0.0.1:9' };
    const supervisor = new Supervisor(`${resultsDir}misconfiguration`);
    try {
      const processes = [
        supervisor.start({ name: 'relay-no-broker', entry: `${fixtures}relay.ts`, env: unreachable }),
        supervisor.start({ name: 'consumer-no-broker', entry: `${fixtures}consumer.ts`, env: unreachable }),
      ];
      const said = await Promise.all(
        processes.map((p) =>
          p
            .waitForLine(/error|waiting|unreachable|broker/i, answerBoundMs)
            .then(() => true)
            .catch(() => false),
        ),
      );
      for (const [i, p] of processes.entries()) {
        const exit = supervisor.unexpectedExits().find((e) => e.name === p.name);
        if (exit !== undefined) {
          expect(exit.tail, `${p.name} exited: it must be one clear onceflow error`).toMatch(/OF_[A-Z_]+/);
          expect(rawCrash(exit.tail), exit.tail).toBe(false);
          continue;
        }
        expect(said[i], `${p.name} said nothing about the broker:\n${p.output()}`).toBe(true);
        expect(await p.stop(), p.output()).toBe(0);
      }
    } finally {
      await supervisor.closeAll();
    }
  });

  it('a consumer whose dead-letter topic does not exist refuses to start with one clear error naming that topic', async () => {
    const orphan = 'misconfiguration.no-dlq';
    await createTopics(checkerKafka(cluster.directBrokers), [{ name: orphan, partitions: 1 }]);
    const outcome = await runToExit(
      { name: 'consumer-no-dlq', entry: `${fixtures}consumer.ts`, env: { ...env, TOPICS: orphan } },
      answerBoundMs,
    );
    const text = describeOutcome(outcome);
    expect(outcome.timedOut, text).toBe(false);
    expect(outcome.code, text).not.toBe(0);
    expect(outcome.output, text).toMatch(/OF_TOPIC_MISSING/);
    expect(outcome.output, text).toContain(`${orphan}.dlq`);
  });
});
