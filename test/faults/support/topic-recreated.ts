// Issue item 4: a topic deleted and recreated under the same name while consumers run. The stored
// positions then lie beyond the new log's end. Two consumer groups read the topic:
//   - `effects` keeps the default policy (`fail`): each affected partition must be stopped loudly
//     (OF_POSITION_AHEAD naming topic and partition), without a hot loop and without skipping a
//     message; the operator then resets the positions with `onceflow inbox reset-positions` and
//     restarts the consumers, which process every message of the new log once.
//   - `effects-reset` opts into `reset-to-earliest`: it processes the new log by itself, once.
import { fileURLToPath } from 'node:url';
import { quoteIdentifier } from '@onceflow/postgres';
import type { FaultCluster } from './cluster';
import { checkerKafka, createTopics, deleteTopics } from './kafka-tools';
import {
  livenessBoundMs,
  pollUntil,
  type Recovery,
  recordSummary,
  resultsDir,
  type ScenarioSummary,
  workloadSchema,
} from './scenario';
import { runToExit, type Supervised, Supervisor } from './supervisor';
import { createWorkloadSchema } from './workload';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const cli = fileURLToPath(new URL('../../../packages/cli/bin/onceflow.js', import.meta.url));

/**
 * Most database transactions the scenario's database may commit in 5 s while the `fail` group holds
 * its partitions stopped. The loop this guards against ran 40-60 transactions a second per partition
 * (600-900 in 5 s for three partitions); what legitimately runs meanwhile (inbox rotation attempts
 * every 2 s per consumer, the checks' own queries) stays far below.
 */
export const idleTransactionBound = 100;

const partitions = 3;

/** Runs the scenario; the violations are in the summary, not thrown. */
export async function runTopicRecreatedScenario(cluster: FaultCluster): Promise<ScenarioSummary> {
  const name = 'topic-recreated';
  const startedAt = Date.now();
  const database = 's_topic_recreated';
  const topic = `${name}.events`;
  const s = quoteIdentifier(workloadSchema);
  const violations: string[] = [];
  const recoveries: Recovery[] = [];
  const supervisor = new Supervisor(`${resultsDir}${name}`);
  const kafka = checkerKafka(cluster.directBrokers);

  const root = cluster.adminPool('postgres');
  await root.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)} WITH (FORCE)`);
  await root.query(`CREATE DATABASE ${quoteIdentifier(database)}`);
  const db = cluster.adminPool(database);
  await createWorkloadSchema(db, workloadSchema);
  const dlq = { name: `${topic}.dlq`, partitions: 1 };
  await createTopics(kafka, [{ name: topic, partitions }, dlq]);

  const env = {
    DATABASE_URL: cluster.processDatabaseUrl(database),
    KAFKA_BROKERS: cluster.processBrokers(),
    SCHEMA: workloadSchema,
    TOPICS: topic,
  };
  const failGroup: Supervised[] = [0, 1].map((i) =>
    supervisor.start({
      name: `fail-${i}`,
      entry: `${fixtures}consumer.ts`,
      env: { ...env, CONSUMER: 'effects' },
    }),
  );
  const resetGroup = supervisor.start({
    name: 'reset-0',
    entry: `${fixtures}consumer.ts`,
    env: {
      ...env,
      CONSUMER: 'effects-reset',
      OPTIONS_JSON: JSON.stringify({ onPositionAhead: 'reset-to-earliest' }),
    },
  });

  const produce = async (prefix: string, count: number): Promise<string[]> => {
    const ids = Array.from({ length: count }, (_, i) => `${name}-${prefix}-${i}`);
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: ids.map((id, i) => ({
          partition: i % partitions,
          key: `k${i % partitions}`,
          value: id,
          headers: { 'message-id': id },
        })),
      });
    } finally {
      await producer.disconnect();
    }
    return ids;
  };
  const effectCounts = async (group: string): Promise<Map<string, number>> => {
    const { rows } = await db.query<{ message_id: string; n: number }>(
      `SELECT message_id, count(*)::int AS n FROM ${s}.effects WHERE consumer = $1 GROUP BY message_id`,
      [group],
    );
    return new Map(rows.map((r) => [r.message_id, r.n]));
  };
  const allApplied = async (group: string, ids: readonly string[]): Promise<boolean> => {
    const counts = await effectCounts(group);
    return ids.every((id) => counts.has(id));
  };
  const aheadReports = (): Set<number> => {
    const found = new Set<number>();
    // The fixture prints onError's message: "... in <topic>[<partition>] is <stored>, beyond the
    // partition's log end <end> ...".
    const pattern = new RegExp(
      `${topic.replace('.', '\\.')}\\[(\\d+)\\] is \\d+, beyond the partition's log end`,
    );
    for (const p of failGroup)
      for (const line of p.output().split('\n')) {
        const match = pattern.exec(line);
        if (match?.[1] !== undefined) found.add(Number(match[1]));
      }
    return found;
  };
  const xactCommits = async (): Promise<number> => {
    const { rows } = await root.query<{ n: string }>(
      'SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1',
      [database],
    );
    return Number(rows[0]!.n);
  };
  const check = (ok: boolean, violation: string): boolean => {
    if (!ok) violations.push(violation);
    return ok;
  };

  let oldIds: string[] = [];
  let newIds: string[] = [];
  try {
    await Promise.all([...failGroup, resetGroup].map((p) => p.waitForLine(/^consumer-started/)));
    oldIds = await produce('old', 600);
    if (
      !check(
        await pollUntil(
          async () => (await allApplied('effects', oldIds)) && (await allApplied('effects-reset', oldIds)),
          livenessBoundMs,
        ),
        'the messages of the first log were not all processed',
      )
    )
      return await finish();

    await deleteTopics(kafka, [topic]);
    await createTopics(kafka, [{ name: topic, partitions }]);
    const recreatedAt = Date.now();
    newIds = await produce('new', 150);

    // Opted in: the consumer resets by itself and processes the new log.
    if (
      check(
        await pollUntil(() => allApplied('effects-reset', newIds), livenessBoundMs),
        'reset-to-earliest: the new log was not processed',
      )
    )
      recoveries.push({ what: 'reset-to-earliest after recreation', ms: Date.now() - recreatedAt });

    // Default: every partition stopped and reported, loudly.
    const reported = await pollUntil(async () => aheadReports().size === partitions, livenessBoundMs);
    check(
      reported,
      `fail policy: OF_POSITION_AHEAD reported for partitions [${[...aheadReports()]}] of ${topic}, expected all ${partitions}`,
    );
    const before = await xactCommits();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const during = (await xactCommits()) - before;
    check(
      during < idleTransactionBound,
      `fail policy: ${during} transactions in 5 s while the partitions are stopped (a hot loop; bound ${idleTransactionBound})`,
    );
    const skipped = [...(await effectCounts('effects')).keys()].filter((id) => newIds.includes(id));
    check(
      skipped.length === 0,
      `fail policy: ${skipped.length} messages of the new log were processed before the operator acted`,
    );

    // The operator: stop the consumers, reset the positions, start them again.
    for (const p of failGroup) {
      const code = await p.stop();
      check(code === 0, `${p.name} exited with ${code} on SIGTERM`);
    }
    const reset = await runToExit(
      {
        name: 'reset-positions',
        entry: cli,
        args: ['inbox', 'reset-positions', '--consumer', 'effects', '--topic', topic, '--to', 'earliest'],
        env,
      },
      livenessBoundMs,
    );
    if (
      !check(
        reset.code === 0,
        `onceflow inbox reset-positions exited with ${reset.code}:\n${reset.output.slice(-2_000)}`,
      )
    )
      return await finish();
    const operatorAt = Date.now();
    for (const p of failGroup) p.restart();
    await Promise.all(failGroup.map((p) => p.waitForLine(/^consumer-started/)));
    if (
      check(
        await pollUntil(() => allApplied('effects', newIds), livenessBoundMs),
        'fail policy: the new log was not processed after the operator reset the positions',
      )
    )
      recoveries.push({ what: 'operator reset and restart', ms: Date.now() - operatorAt });
    const stopping = [...failGroup, resetGroup].filter((p) => p.alive());
    for (const p of stopping) {
      const code = await p.stop();
      check(code === 0, `${p.name} exited with ${code} on SIGTERM`);
    }
  } catch (error) {
    violations.push(`scenario aborted: ${(error as Error).stack ?? String(error)}`);
  }
  return finish();

  async function finish(): Promise<ScenarioSummary> {
    await supervisor.closeAll();
    const expected = [...oldIds, ...newIds];
    let lost = 0;
    let doubled = 0;
    for (const group of ['effects', 'effects-reset']) {
      const counts = await effectCounts(group);
      const missing = expected.filter((id) => !counts.has(id));
      const twice = [...counts].filter(([, n]) => n > 1);
      const foreign = [...counts.keys()].filter((id) => !expected.includes(id));
      lost += missing.length;
      doubled += twice.reduce((sum, [, n]) => sum + n - 1, 0);
      if (missing.length > 0) violations.push(`${group}: ${missing.length} messages never processed`);
      if (twice.length > 0) violations.push(`${group}: ${twice.length} messages processed more than once`);
      if (foreign.length > 0) violations.push(`${group}: effects of unknown messages ${foreign.slice(0, 5)}`);
    }
    const exits = supervisor.unexpectedExits();
    for (const exit of exits)
      violations.push(`${exit.name} exited on its own (code ${exit.code}); last output:\n${exit.tail}`);
    const summary: ScenarioSummary = {
      scenario: name,
      recoveries,
      drainMs: null,
      figures: {
        committedEvents: expected.length,
        kafkaRecords: expected.length,
        eventsLost: lost,
        phantomEvents: 0,
        kafkaDuplicates: 0,
        keysOutOfOrder: 0,
        effectsMissing: lost,
        doubleEffects: doubled,
        phantomEffects: 0,
        lag: 0,
        deadLetters: 0,
        parked: 0,
      },
      processesExited: exits.map((e) => `${e.name}:${e.code ?? e.signal}`),
      killedByNemesis: 0,
      deadlocks: 0,
      violations,
      durationMs: Date.now() - startedAt,
    };
    recordSummary(summary);
    return summary;
  }
}
