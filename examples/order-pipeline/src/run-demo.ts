import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startConsole } from '@onceflow/console';
import { quoteIdentifier } from '@onceflow/postgres';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { type ChaosAction, type ChaosSchedule, describeSchedule, planRun } from './chaos';
import {
  allTopics,
  type ConsumerName,
  configEnv,
  consumerNames,
  loadConfig,
  type PipelineConfig,
  sourceTopicOf,
} from './config';
import { deleteGroups, deleteTopics, ensureTopics, readWholeTopic, reproduce } from './kafka-tools';
import { driveLoad, type LoadResult } from './load';
import { spanFileEnv } from './observability';
import {
  expectedHops,
  formatMetrics,
  formatTrace,
  type ProcessMetrics,
  pickExampleTrace,
  readSpanFiles,
  scrapeProcess,
} from './observations';
import { selfKillEnv } from './processes/consumer';
import { createProgressView, type PipelineSnapshot, type ProgressOutput, readSnapshot } from './progress';
import { type RedriveOutcome, redrivePoisonOrder, redriveRow } from './redrive';
import { type DemoReport, formatTable, type ProgressSample, writeReport } from './report';
import { migratePipeline } from './schema';
import { createSupervisor, type ProcessEvent, type SupervisedProcess } from './supervisor';
import { type ChaosAccount, verifyPipeline } from './verify';

/** True when every consumer group committed past the last record of every partition of its topic. */
async function consumersCaughtUp(kafka: Kafka, admin: Admin, config: PipelineConfig): Promise<boolean> {
  for (const consumer of consumerNames) {
    const topic = sourceTopicOf(config, consumer);
    const records = await readWholeTopic(kafka, topic);
    const [committed] = await admin.fetchOffsets({ groupId: config.groups[consumer], topics: [topic] });
    for (const record of records) {
      const at = committed?.partitions.find((p) => p.partition === record.partition)?.offset ?? '-1';
      if (BigInt(at) <= BigInt(record.offset)) return false;
    }
  }
  return true;
}

/** Faults planned by the schedule against faults that really happened, by kind. */
function chaosAccount(
  schedule: ChaosSchedule,
  events: ProcessEvent[],
  injected: Record<ConsumerName, number>,
  timeouts: number,
): ChaosAccount {
  const count = (kind: ChaosAction['kind']) => schedule.actions.filter((a) => a.kind === kind).length;
  const consumer = (e: ProcessEvent) => (consumerNames as readonly string[]).includes(e.process);
  return {
    planned: {
      'relay kills': count('kill-relay'),
      'consumer kills': count('kill-consumer') + (schedule.selfKill ? 1 : 0),
      'injected dups': schedule.actions.reduce(
        (n, a) => n + (a.kind === 'inject-duplicates' ? a.count : 0),
        0,
      ),
      'client timeouts': schedule.orders.filter((o) => o.timeout).length,
    },
    actual: {
      'relay kills': events.filter((e) => e.process === 'relay' && e.kind === 'killed').length,
      'consumer kills': events.filter((e) => consumer(e) && (e.kind === 'killed' || e.kind === 'crashed'))
        .length,
      'injected dups': consumerNames.reduce((n, c) => n + injected[c], 0),
      'client timeouts': timeouts,
    },
  };
}

/**
 * Scrapes every process's /metrics until two scrapes half a second apart agree (the last commits'
 * counters are updated right after the rows the run waited for became visible).
 */
async function scrapeAll(processes: SupervisedProcess[]): Promise<ProcessMetrics[]> {
  const once = () =>
    Promise.all(
      processes
        .filter((p) => p.metricsUrl !== undefined)
        .map((p) => scrapeProcess(p.name, p.metricsUrl!, p.restarts)),
    );
  let last = await once();
  for (let i = 0; i < 10; i++) {
    await sleep(500);
    const next = await once();
    if (JSON.stringify(next) === JSON.stringify(last)) break;
    last = next;
  }
  return last;
}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Orders to place. Default: 2000. */
  orders?: number;
  /** Run the chaos schedule (timeouts, duplicates, kills, injections). Default: true. */
  chaos?: boolean;
  /** Seed of the schedule; the same seed gives the same run plan. Default: 1. */
  seed?: number;
  /** Kafka brokers. Required. */
  brokers: string[];
  /** Postgres URL. Required. */
  databaseUrl: string;
  /**
   * Prefix of the run's schemas, topics and groups (a valid lower-case SQL identifier). Other names can
   * still be overridden through the environment variables of {@link loadConfig}. Default: `demo_<time>`.
   */
  namespace?: string;
  /** Where to write the JSON report; the HTML goes next to it. Default: `demo-report.json` in the working directory. */
  reportPath?: string;
  /** Consumers to run WITHOUT the inbox, to watch the verifier fail. Only `fulfilment` is supported. Default: none. */
  unprotected?: ConsumerName[];
  /** Orders in flight at once. Default: 16. */
  concurrency?: number;
  /** Orders started per second (evenly spaced, at most `concurrency` in flight). Default: as fast as the API answers. */
  rate?: number;
  /** Partitions per topic. Default: 3. */
  partitions?: number;
  /** Keep the run's schemas and topics for inspection. Default: false (they are dropped). */
  keepData?: boolean;
  /**
   * Serve the operator console on this port of 127.0.0.1 during the run, and keep it up after the
   * report until SIGINT (Ctrl-C). Default: none.
   */
  consolePort?: number;
  /** Progress display. Default: `auto`. */
  output?: ProgressOutput;
  /** Where progress and notes go. Default: console.log. */
  log?: (line: string) => void;
  /** Longest wait for the pipeline to settle after the load, in milliseconds. Default: 120000. */
  settleTimeoutMs?: number;
}

/** What {@link runDemo} returns. */
export interface DemoResult {
  report: DemoReport;
  reportPath: string;
  htmlPath: string;
  /** The verification table as text. */
  table: string;
  /** The metrics scraped from the processes and the example trace, as text. */
  observations: string;
}

const processesDir = fileURLToPath(new URL('./processes/', import.meta.url));
const exampleDir = fileURLToPath(new URL('../', import.meta.url));

/**
 * Runs the whole pipeline under a seeded chaos schedule and verifies it: migrates, creates topics,
 * starts the relay, the API and the three consumers as separate processes, drives the load, injects
 * the faults, waits for the pipeline to settle, and computes the verification table from Postgres
 * and Kafka. Writes the JSON and HTML report and cleans up its processes (and, unless `keepData`,
 * its schemas and topics).
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const startedAt = Date.now();
  const totalOrders = options.orders ?? 2000;
  const chaos = options.chaos ?? true;
  const seed = options.seed ?? 1;
  const log = options.log ?? ((line: string) => console.log(line));
  const namespace = options.namespace ?? `demo_${startedAt.toString(36)}`;
  const unprotected = options.unprotected ?? [];
  if (unprotected.some((c) => c !== 'fulfilment'))
    throw new Error('only the fulfilment consumer can run without the inbox (--unprotected fulfilment)');
  const config: PipelineConfig = loadConfig({
    ...process.env,
    DEMO_NAMESPACE: namespace,
    KAFKA_BROKERS: options.brokers.join(','),
    DATABASE_URL: options.databaseUrl,
    TOPIC_PARTITIONS: String(options.partitions ?? 3),
  });
  const schedule = planRun({ seed, orders: totalOrders, chaos });
  const view = createProgressView(options.output ?? 'auto', totalOrders, log);
  view.note(`onceflow order pipeline: namespace ${namespace}`);
  for (const line of describeSchedule(schedule)) view.note(`  ${line}`);

  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4 });
  const kafka = new Kafka({
    clientId: 'order-pipeline-demo',
    brokers: config.brokers,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const logDirectory = await mkdtemp(join(tmpdir(), `onceflow-demo-${namespace}-`));
  const supervisor = createSupervisor({ logDirectory, cwd: exampleDir, startedAt });
  const processes: SupervisedProcess[] = [];
  const injected: Record<ConsumerName, number> = { payments: 0, fulfilment: 0, notifications: 0 };
  const samples: ProgressSample[] = [];
  let load: LoadResult | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;

  let operatorConsole: { url: string; stop(): Promise<void> } | undefined;
  const consolePool =
    options.consolePort === undefined
      ? undefined
      : new pg.Pool({ connectionString: config.databaseUrl, max: 3 });
  consolePool?.on('error', () => undefined);
  try {
    await migratePipeline(pool, config);
    await ensureTopics(kafka, allTopics(config), config.partitions);
    await admin.connect();
    if (consolePool !== undefined) {
      const token = randomBytes(18).toString('base64url');
      operatorConsole = await startConsole({
        pool: consolePool,
        schema: config.onceflowSchema,
        port: options.consolePort ?? 8080,
        kafka: admin,
        token,
      });
      view.note(`  console: ${operatorConsole.url} (sign in with token ${token} to redrive or unpark)`);
    }
    view.note(`  process logs in ${logDirectory}`);

    const env = configEnv(config);
    const spanFile = (name: string) => join(logDirectory, `${name}.spans.jsonl`);
    const spec = (name: string, file: string, extra: Record<string, string> = {}) => ({
      name,
      entry: join(processesDir, file),
      env: { ...env, [spanFileEnv]: spanFile(name) },
      readyPattern: new RegExp(`^${name} ready ?(.*)$`),
      firstLaunchEnv: extra,
    });
    const selfKill = (c: ConsumerName): Record<string, string> =>
      schedule.selfKill?.consumer === c ? { [selfKillEnv]: String(schedule.selfKill.atMessage) } : {};
    const started = await Promise.all([
      supervisor.start(spec('relay', 'relay.ts')),
      supervisor.start(spec('orders-api', 'orders-api.ts')),
      ...consumerNames.map((c) =>
        supervisor.start(spec(c, unprotected.includes(c) ? `${c}-unprotected.ts` : `${c}.ts`, selfKill(c))),
      ),
    ]);
    processes.push(...started);
    const byName = new Map(processes.map((p) => [p.name, p]));
    const baseUrl = byName.get('orders-api')!.readyInfo!;
    const restarts = () => processes.reduce((n, p) => n + p.restarts, 0);

    let accepted = 0;
    let sampling = false;
    let last: PipelineSnapshot | undefined;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        last = await readSnapshot({
          pool,
          admin,
          config,
          startedAt,
          ordersAccepted: accepted,
          restarts: restarts(),
          injected,
        });
        const { consumers: _, outboxBacklog: __, injected: ___, ...plain } = last;
        samples.push(plain);
        view.show(last);
      } catch {
        // A sample that fails (a broker hiccup) is simply skipped.
      } finally {
        sampling = false;
      }
    };
    sampler = setInterval(() => void sample(), 1_000);

    // Faults fire when the load reaches their order count; they run beside the load, not in its way.
    const pending = [...schedule.actions];
    const running: Promise<void>[] = [];
    // Faults on one process run one after the other: a kill never hits a restart still in progress.
    const chains = new Map<string, Promise<void>>();
    const fire = (action: ChaosAction) => {
      const target =
        action.kind === 'kill-relay' ? 'relay' : action.kind === 'kill-consumer' ? action.consumer : 'kafka';
      const next = (chains.get(target) ?? Promise.resolve()).then(() =>
        runAction(action).catch((error: Error) =>
          view.note(`  chaos: ${action.kind} failed: ${error.message.split('\n')[0]}`),
        ),
      );
      chains.set(target, next);
      running.push(next);
    };
    const runAction = async (action: ChaosAction): Promise<void> => {
      if (action.kind === 'kill-relay') {
        view.note(`  chaos: SIGKILL relay (restart in ${action.restartAfterMs} ms)`);
        await byName.get('relay')!.killAndRestart(action.restartAfterMs);
      } else if (action.kind === 'kill-consumer') {
        view.note(`  chaos: SIGKILL ${action.consumer} (restart in ${action.restartAfterMs} ms)`);
        await byName.get(action.consumer)!.killAndRestart(action.restartAfterMs);
      } else {
        const topic = sourceTopicOf(config, action.consumer);
        const rng = xoroshiro128plus(seed + action.atOrder);
        for (let attempt = 0; attempt < 30; attempt++) {
          const records = await readWholeTopic(kafka, topic);
          if (records.length > 0) {
            const picked = Array.from(
              { length: action.count },
              () => records[uniformInt(rng, 0, records.length - 1)]!,
            );
            await reproduce(kafka, topic, picked);
            injected[action.consumer] += picked.length;
            view.note(`  chaos: re-produced ${picked.length} published records into ${topic}`);
            return;
          }
          await sleep(1_000);
        }
        view.note(`  chaos: ${topic} stayed empty, nothing to duplicate`);
      }
    };

    load = await driveLoad({
      baseUrl,
      orders: schedule.orders,
      keyPrefix: namespace,
      concurrency: options.concurrency ?? 16,
      ...(options.rate === undefined ? {} : { rate: options.rate }),
      startedAt,
      onAccepted: (n) => {
        accepted = n;
        while (pending.length > 0 && pending[0]!.atOrder <= n) fire(pending.shift()!);
      },
    });
    // Faults scheduled beyond the accepted count (keys that failed) still run.
    for (const action of pending.splice(0)) fire(action);
    await Promise.all(running);
    view.note(
      `  load done: ${load.stats.accepted} orders accepted, ${load.stats.requests} requests (${load.stats.replayed} replayed, ${load.stats.conflicts} answered 409, ${load.stats.timeouts} timed out)`,
    );

    // Settle: the outbox is empty, every consumer caught up with its topic, and nothing moved for 3 s.
    const expected = load.orderIds.size - 1;
    const settleDeadline = Date.now() + (options.settleTimeoutMs ?? 120_000);
    let stableSince = 0;
    let fingerprint = '';
    while (Date.now() < settleDeadline) {
      await sleep(500);
      await sample();
      if (!last) continue;
      const caughtUp = last.outboxBacklog === 0 && last.notifications >= expected;
      const now = JSON.stringify([
        last.payments,
        last.shipments,
        last.notifications,
        consumerNames.map((c) => last!.consumers[c].topic.committed),
        consumerNames.map((c) => last!.consumers[c].topic.end),
      ]);
      if (!caughtUp || now !== fingerprint) {
        fingerprint = now;
        stableSince = Date.now();
        continue;
      }
      if (Date.now() - stableSince < 3_000) continue;
      // Lag alone cannot tell: transaction markers of the relay's lanes sit after the last records, so
      // compare each group's committed offsets with the offsets of the last real records instead.
      if (await consumersCaughtUp(kafka, admin, config)) break;
      stableSince = Date.now();
    }
    clearInterval(sampler);
    sampler = undefined;
    view.done();

    const verification = await verifyPipeline({
      pool,
      kafka,
      config,
      acceptedOrders: load.orderIds,
      poisonKey: `${namespace}-${schedule.poisonIndex}`,
      inconsistentKeys: load.stats.inconsistentKeys,
      failedKeys: load.stats.failedKeys,
      chaos,
      ...(chaos
        ? { chaosCarriedOut: chaosAccount(schedule, supervisor.events, injected, load.stats.timeouts) }
        : {}),
    });
    // The poison order's card is fixed; its dead letter is redriven with the command line.
    const poisonOrderId = load.orderIds.get(`${namespace}-${schedule.poisonIndex}`);
    let redrive: RedriveOutcome | undefined;
    if (poisonOrderId !== undefined) {
      view.note(
        `  redrive: card of order ${poisonOrderId} fixed, running onceflow dlq redrive --consumer payments --yes`,
      );
      redrive = await redrivePoisonOrder({ pool, config, orderId: poisonOrderId, cwd: exampleDir });
      verification.rows.push(redriveRow(redrive));
      verification.passed &&= redrive.pass;
    }

    // The processes' own view: their metrics now, and one order's trace from their span files.
    const metrics = await scrapeAll(processes);
    const trace = pickExampleTrace(
      await readSpanFiles(processes.map((p) => spanFile(p.name))),
      [...load.orderIds.values()].filter((id) => id !== poisonOrderId),
      expectedHops(config.topics),
    );

    const report: DemoReport = {
      passed: verification.passed,
      seed,
      orders: totalOrders,
      chaos,
      namespace,
      unprotected,
      startedAt: new Date(startedAt).toISOString(),
      durationMs: Date.now() - startedAt,
      schedule: describeSchedule(schedule),
      load: load.stats,
      injectedDuplicates: { ...injected },
      processEvents: supervisor.events,
      verification,
      samples,
      metrics,
      ...(trace ? { exampleTrace: trace } : {}),
      ...(redrive ? { redrive } : {}),
    };
    const reportPath = options.reportPath ?? join(process.cwd(), 'demo-report.json');
    const htmlPath = await writeReport(report, reportPath);
    if (operatorConsole !== undefined) {
      // The pipeline keeps running behind the console until Ctrl-C; the caller prints the table again.
      view.done();
      log(formatTable(verification.rows));
      log(`report: ${reportPath}`);
      log(`console still at ${operatorConsole.url}: press Ctrl-C to stop it, the pipeline and the cleanup`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return {
      report,
      reportPath,
      htmlPath,
      table: formatTable(verification.rows),
      observations: `${formatMetrics(metrics)}\n\n${formatTrace(trace)}`,
    };
  } finally {
    if (sampler) clearInterval(sampler);
    view.done();
    await supervisor.stopAll();
    await operatorConsole?.stop();
    await consolePool?.end();
    await admin.disconnect().catch(() => undefined);
    if (!options.keepData) {
      await deleteTopics(kafka, allTopics(config)).catch(() => undefined);
      await deleteGroups(kafka, Object.values(config.groups)).catch(() => undefined);
      for (const schema of [config.appSchema, config.onceflowSchema])
        await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`).catch(() => undefined);
    }
    await pool.end();
  }
}
