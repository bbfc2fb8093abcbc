// `pnpm bench [--quick] [--only inbox|hot-rows|relay|http|peer|scaling|recovery|pipeline|tracing|console]`: every onceflow scenario beside its baseline
// in one run against the real local Kafka and Postgres; prints a table and writes bench/results/.
import { randomBytes } from 'node:crypto';
import { ensureStack } from '../../tools/stack/index';
import { buildWorkers } from './child';
import { type BenchGroup, parseArgs } from './config';
import type { BenchContext } from './context';
import { machineInfo, serverSynchronousCommit } from './machine';
import { formatTable, writeResults } from './report';
import { runConsoleGroup } from './scenarios/console';
import { runHttpGroup } from './scenarios/http';
import { runHotRowsGroup, runInboxGroup } from './scenarios/inbox';
import { runPeerGroup } from './scenarios/peer';
import { runPipelineGroup } from './scenarios/pipeline';
import { runRecoveryGroup } from './scenarios/recovery';
import { runRelayGroup } from './scenarios/relay';
import { runScalingGroup } from './scenarios/scaling';
import { runTracingGroup } from './scenarios/tracing';
import { createBenchSchema, dropBenchSchema } from './services';
import { benchKafka, benchPool } from './shared';

const groupRunners: Record<BenchGroup, (ctx: BenchContext) => Promise<void>> = {
  inbox: runInboxGroup,
  'hot-rows': runHotRowsGroup,
  relay: runRelayGroup,
  http: runHttpGroup,
  peer: runPeerGroup,
  scaling: runScalingGroup,
  recovery: runRecoveryGroup,
  pipeline: runPipelineGroup,
  tracing: runTracingGroup,
  console: runConsoleGroup,
};

async function main(): Promise<number> {
  const config = parseArgs(process.argv.slice(2));
  const log = (line: string): void => console.log(line);
  const started = new Date();
  const t0 = Date.now();
  await buildWorkers();
  log(
    `workers: built into one JavaScript bundle in ${Date.now() - t0} ms (they run without a TypeScript loader)`,
  );
  const stack = await ensureStack({ log: (line) => log(`stack: ${line}`) });
  const services = { brokers: stack.kafka.brokers, databaseUrl: stack.postgres.url };
  const runId = `bench_${started.getTime().toString(36)}${randomBytes(2).toString('hex')}`;
  const pool = benchPool(services, 'server', 4);
  const kafka = benchKafka(services);
  const admin = kafka.admin();
  await admin.connect();
  const ctx: BenchContext = {
    config,
    services,
    runId,
    schema: runId,
    peer: await createBenchSchema(pool, runId),
    kafka,
    admin,
    pool,
    topics: [],
    results: {},
    notes: [],
    log,
  };
  const failures: string[] = [];
  let cleanedUp = false;
  const cleanup = async (): Promise<void> => {
    if (cleanedUp) return;
    cleanedUp = true;
    if (ctx.topics.length > 0) await admin.deleteTopics({ topics: ctx.topics }).catch(() => undefined);
    await dropBenchSchema(pool, ctx.schema).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await pool.end().catch(() => undefined);
  };
  process.once('SIGINT', () => {
    void cleanup().finally(() => process.exit(130));
  });
  try {
    const machine = await machineInfo(pool);
    const synchronousCommit = await serverSynchronousCommit(pool);
    log(
      `onceflow bench (${config.mode}, ${config.groups.join(', ')}): ${machine.cores} cores ${machine.cpuModel}, Node ${machine.node}, Postgres ${machine.postgres} (synchronous_commit=${synchronousCommit}), Kafka ${machine.kafka}`,
    );
    for (const group of config.groups) {
      const t0 = Date.now();
      try {
        await groupRunners[group](ctx);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failures.push(`${group}: ${message}`);
        log(`${group}: FAILED: ${message}`);
      }
      log(`${group}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const finished = new Date();
    const report = {
      schemaVersion: 1,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationS: Math.round((finished.getTime() - started.getTime()) / 100) / 10,
      mode: config.mode,
      groups: config.groups,
      machine,
      postgres: {
        synchronous_commit: synchronousCommit,
        note: 'Figures use the server setting above; fields ending in _sync_off ran with synchronous_commit=off set per session (the server configuration is never changed).',
      },
      services: { kafka: stack.kafka.mode, postgres: stack.postgres.mode },
      params: {
        messages: config.messages,
        valueBytes: config.valueBytes,
        partitions: config.partitions,
        keys: config.keys,
        naiveMessages: config.naiveMessages,
        relayEvents: config.relayEvents,
        relayNaiveEvents: config.relayNaiveEvents,
        latencySeconds: config.latencySeconds,
        httpSeconds: config.httpSeconds,
        httpConnections: config.httpConnections,
        peerMessages: config.peerMessages,
        consumerConcurrency: config.consumerConcurrency,
      },
      results: ctx.results,
      notes: ctx.notes,
      failures,
    };
    const paths = writeResults(report);
    log('');
    log(formatTable(ctx.results));
    for (const note of [...ctx.notes, ...failures.map((f) => `FAILED ${f}`)]) log(`note: ${note}`);
    log(`\nwrote ${paths.latest} and ${paths.dated} (${report.durationS} s)`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
