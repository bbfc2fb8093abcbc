// One Jepsen-style run: workload processes under a nemesis, then heal-and-drain, then checks.
//
//   setup      a database of its own on the file's private Postgres, a topic (and its dead-letter
//              topic) of its own on the private broker
//   load       inbox consumers and a relay as child processes (through the proxies), a producer
//              enqueuing traceable events in transactions, some rolled back on purpose
//   nemesis    the scenario's faults, while the load runs; after each fault the scenario calls
//              `recovered()`, which enqueues a probe event and measures how long after the server's
//              return its effect appears (the recovery time)
//   heal       proxies healed, servers up, producer stopped
//   drain      until the outbox is empty and every committed event has an effect; the bound is a
//              liveness bound (a stuck pipeline fails), not a speed assertion
//   checks     ./checks.ts, plus: no process exited unless the nemesis killed it, each stops cleanly
//
// The figures go to the console as one line and to test/faults/results/<scenario>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createOnceflowAdmin, quoteIdentifier } from '@onceflow/postgres';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { evaluateRun, type RunFigures } from './checks';
import type { FaultCluster } from './cluster';
import { checkerKafka, createTopics, endOffsets, injectedHeader, readAll } from './kafka-tools';
import { type ProcessSpec, type Supervised, Supervisor } from './supervisor';
import { createWorkloadSchema, enqueueBurst, enqueueTransaction } from './workload';

/** Folder of the run's figures and process logs (git-ignored). */
export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const cli = fileURLToPath(new URL('../../../packages/cli/bin/onceflow.js', import.meta.url));

/** onceflow's tables and the workload's live in this schema of the scenario's database. */
export const workloadSchema = 'onceflow';

/**
 * Longest wait, in milliseconds, for the pipeline to make progress again after a server returned,
 * and for the drain after heal. Liveness bounds: far above what a healthy run needs, so that only a
 * stuck or crashed pipeline reaches them on a loaded machine.
 */
export const livenessBoundMs = 90_000;

/** What a nemesis can do and see. */
export interface NemesisContext {
  cluster: FaultCluster;
  database: string;
  topic: string;
  relays: Supervised[];
  consumers: Supervised[];
  /** Milliseconds since the load started. */
  elapsed(): number;
  sleep(ms: number): Promise<void>;
  /** A line in the scenario's log (and in the report when the run fails). */
  note(line: string): void;
  /**
   * Call when the fault is over (server back, process restarted, proxy healed): enqueues a probe
   * event and waits until a consumer has applied it, recording the time since `since` (default: now).
   */
  recovered(what: string, since?: number): Promise<void>;
  /** Records a recovery time measured by the scenario itself. */
  recordRecovery(what: string, ms: number): void;
  /** Enqueues `events` committed events in one transaction, so the relay has a backlog at once. */
  burst(events: number): Promise<void>;
  /** Waits until the relay has published some of a backlog of `burst` events, so the next fault hits a drain. */
  waitForDraining(burst: number): Promise<void>;
  /** Starts the relay and consumer processes (for scenarios that start them themselves). */
  startProcesses(options?: { waitForStart?: boolean }): Promise<void>;
  /**
   * Terminates up to `count` random backends of the onceflow processes (pg_terminate_backend), busy
   * or idle, in or out of a transaction. Returns how many it hit.
   */
  terminateBackends(count: number): Promise<number>;
  /**
   * Watches the onceflow backends of `application` (`onceflow-relay`, `onceflow-consumer`) and
   * terminates each one caught running a statement that contains `statement`, or caught inside a
   * transaction when `statement` is `in-transaction`, until it has hit `hits` or `timeoutMs` passed.
   * A precise fault: it lands in the middle of that statement. Returns the hits.
   */
  terminateWhileRunning(options: {
    application: 'onceflow-relay' | 'onceflow-consumer';
    statement: string;
    hits: number;
    timeoutMs: number;
  }): Promise<number>;
  /**
   * Writes `count` new events straight to Kafka, as a duplicating producer would: in ascending order
   * to partition 0 and, as copies with the same ids, to every other partition, in descending or
   * shuffled order, all in one request. Consumers then claim overlapping ids from several partitions
   * at once, in opposite orders. The events count as committed (they are in `produced`).
   */
  injectTwins(count: number): Promise<void>;
  /** Enqueues events for `topic` in one committed transaction (recorded in `produced` like the rest). */
  enqueue(topic: string, events: ReadonlyArray<{ id: string; key: string }>): Promise<void>;
  /** The suite's own pool on the scenario's database (direct, not through the proxy). */
  db: pg.Pool;
  /** The kafkajs client of the checks (direct, not through the proxy). */
  kafka: Kafka;
}

/** A scenario. */
export interface ScenarioOptions {
  name: string;
  nemesis(ctx: NemesisContext): Promise<void>;
  /** Partitions of the workload topic. Default: 3. */
  partitions?: number;
  /** Consumer instances (one group). Default: 2. */
  consumers?: number;
  /** Relay instances. Default: 1. */
  relays?: number;
  /** `fixture`: test/faults/fixtures/relay.ts; `cli`: `onceflow relay`. Default: fixture. */
  relayCommand?: 'fixture' | 'cli';
  /** Load before the nemesis starts, in milliseconds. Default: 2000. */
  warmupMs?: number;
  /** When false, the nemesis starts the processes itself through `startProcesses`. Default: true. */
  startProcessesFirst?: boolean;
  /** Extra environment of the consumer processes. */
  consumerEnv?: Record<string, string>;
  /** Extra environment of the relay processes. */
  relayEnv?: Record<string, string>;
  /** When true, a "deadlock detected" error in the scenario's database is a violation. Default: false. */
  noDeadlocks?: boolean;
}

/** One recovery measurement. */
export interface Recovery {
  what: string;
  ms: number;
}

/** What a scenario reports. */
export interface ScenarioSummary {
  scenario: string;
  recoveries: Recovery[];
  /** Milliseconds from heal until drained; null when the drain did not finish. */
  drainMs: number | null;
  figures: RunFigures | null;
  /** Exits no one caused, as `name:code/signal`. */
  processesExited: string[];
  /** Processes the nemesis killed on purpose. */
  killedByNemesis: number;
  /** "deadlock detected" errors in this scenario's database. */
  deadlocks: number;
  violations: string[];
  durationMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function seconds(ms: number | null): string {
  return ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`;
}

/** The summary as one line, for the console. */
export function summaryLine(s: ScenarioSummary): string {
  const recovery =
    s.recoveries.length === 0
      ? 'recovery n/a'
      : `recovery ${s.recoveries.map((r) => `${seconds(r.ms)} (${r.what})`).join(', ')}`;
  const f = s.figures;
  return [
    `[faults] ${s.scenario}: ${recovery}`,
    `events lost ${f?.eventsLost ?? '?'} of ${f?.committedEvents ?? '?'}`,
    `double effects ${f?.doubleEffects ?? '?'}`,
    `kafka duplicates ${f?.kafkaDuplicates ?? '?'}`,
    `processes exited ${s.processesExited.length}${s.processesExited.length ? ` (${s.processesExited.join(', ')})` : ''}`,
    `killed by nemesis ${s.killedByNemesis}`,
    `drained in ${seconds(s.drainMs)}`,
    `deadlocks ${s.deadlocks}`,
    `${s.violations.length === 0 ? 'OK' : `${s.violations.length} violations`} in ${seconds(s.durationMs)}`,
  ].join('; ');
}

/** Writes the summary next to the others of the run. */
export function recordSummary(summary: ScenarioSummary): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(`${resultsDir}${summary.scenario}.json`, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(summaryLine(summary));
}

/** Polls `check` every 100 ms until it is true (errors count as false); false after `timeoutMs`. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // The server may be away for a moment; the deadline decides.
    }
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

let probeCounter = 0;
let burstCounter = 0;
let twinCounter = 0;

/**
 * Runs `work` on a client of `pool` that has an error listener while it is checked out: a backend
 * killed between two statements would otherwise end the test process.
 */
async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const ignore = (): void => undefined;
  client.on('error', ignore);
  try {
    const result = await work(client);
    client.off('error', ignore);
    client.release();
    return result;
  } catch (error) {
    // The listener stays: a broken connection may still report its end after the failed query.
    client.release(error as Error);
    throw error;
  }
}

/** Runs one scenario against `cluster` and returns its summary (violations included, not thrown). */
export async function runScenario(cluster: FaultCluster, options: ScenarioOptions): Promise<ScenarioSummary> {
  const startedAt = Date.now();
  const database = `s_${options.name.replace(/[^a-z0-9]/g, '_')}`;
  const topic = `${options.name}.events`;
  const group = 'effects';
  const schema = workloadSchema;
  const s = quoteIdentifier(schema);
  const violations: string[] = [];
  const recoveries: Recovery[] = [];
  const logDir = `${resultsDir}${options.name}`;
  const supervisor = new Supervisor(logDir);
  const notes: string[] = [];
  const note = (line: string): void => {
    notes.push(`+${((Date.now() - startedAt) / 1000).toFixed(1)} s ${line}`);
  };
  let killedByNemesis = 0;
  let nemesisRunning = false;

  const root = cluster.adminPool('postgres');
  await root.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)} WITH (FORCE)`);
  await root.query(`CREATE DATABASE ${quoteIdentifier(database)}`);
  const db = cluster.adminPool(database);
  await createWorkloadSchema(db, schema);
  const kafka = checkerKafka(cluster.directBrokers);
  const partitions = options.partitions ?? 3;
  await createTopics(kafka, [
    { name: topic, partitions },
    { name: `${topic}.dlq`, partitions: 1 },
  ]);

  const processEnv = {
    DATABASE_URL: cluster.processDatabaseUrl(database),
    KAFKA_BROKERS: cluster.processBrokers(),
    SCHEMA: schema,
  };
  const relays: Supervised[] = [];
  const consumers: Supervised[] = [];
  const relaySpec = (i: number): ProcessSpec =>
    options.relayCommand === 'cli'
      ? {
          name: `relay-${i}`,
          entry: cli,
          args: ['relay', '--schema', schema, '--lease-ms', '3000', '--heartbeat-interval-ms', '500'],
          env: {
            ...processEnv,
            DATABASE_URL: `${processEnv.DATABASE_URL}?application_name=onceflow-relay`,
          },
        }
      : { name: `relay-${i}`, entry: `${fixtures}relay.ts`, env: { ...processEnv, ...options.relayEnv } };
  const relayStarted = options.relayCommand === 'cli' ? /^relay \S+ started/ : /^relay-started/;

  const startProcesses = async ({ waitForStart = true } = {}): Promise<void> => {
    for (let i = 0; i < (options.consumers ?? 2); i++)
      consumers.push(
        supervisor.start({
          name: `consumer-${i}`,
          entry: `${fixtures}consumer.ts`,
          env: { ...processEnv, CONSUMER: group, TOPICS: topic, ...options.consumerEnv },
        }),
      );
    for (let i = 0; i < (options.relays ?? 1); i++) relays.push(supervisor.start(relaySpec(i)));
    if (!waitForStart) return;
    await Promise.all([
      ...consumers.map((c) => c.waitForLine(/^consumer-started/)),
      ...relays.map((r) => r.waitForLine(relayStarted)),
    ]);
  };

  const probe = async (what: string, since: number): Promise<void> => {
    const deadline = since + livenessBoundMs;
    let id: string | undefined;
    // The enqueue itself may meet the end of an outage; each attempt gets an id of its own.
    while (id === undefined && Date.now() < deadline) {
      const candidate = `probe-${++probeCounter}`;
      try {
        await withClient(db, (client) =>
          enqueueTransaction(client, schema, topic, [{ id: candidate, key: 'probe' }]),
        );
        id = candidate;
      } catch {
        await sleep(100);
      }
    }
    const applied =
      id !== undefined &&
      (await pollUntil(async () => {
        const { rows } = await db.query(`SELECT 1 FROM ${s}.effects WHERE message_id = $1`, [id]);
        return rows.length > 0;
      }, deadline - Date.now()));
    if (!applied) {
      violations.push(`no progress within ${livenessBoundMs / 1000} s after ${what}`);
      note(`no recovery after ${what}`);
      return;
    }
    recoveries.push({ what, ms: Date.now() - since });
    note(`recovered from ${what} in ${Date.now() - since} ms`);
  };

  let producer: Supervised | undefined;
  let drainMs: number | null = null;
  let figures: RunFigures | null = null;
  try {
    // The producer starts beside the processes: it only needs Postgres.
    producer = supervisor.start({
      name: 'producer',
      entry: `${fixtures}producer.ts`,
      env: {
        DATABASE_URL: cluster.postgres.urlFor(database),
        SCHEMA: schema,
        TOPIC: topic,
        RUN_ID: options.name,
      },
    });
    await Promise.all([
      options.startProcessesFirst !== false ? startProcesses() : undefined,
      producer.waitForLine(/^producer-started/),
    ]);
    const loadStartedAt = Date.now();
    await sleep(options.warmupMs ?? 2_000);

    const ctx: NemesisContext = {
      cluster,
      database,
      topic,
      relays,
      consumers,
      elapsed: () => Date.now() - loadStartedAt,
      sleep,
      note,
      recovered: (what, since = Date.now()) => probe(what, since),
      recordRecovery: (what, ms) => {
        recoveries.push({ what, ms });
        note(`recovered from ${what} in ${ms} ms`);
      },
      async burst(events) {
        const burst = ++burstCounter;
        const planned = Array.from({ length: events }, (_, i) => ({
          id: `${options.name}-burst${burst}-${i}`,
          key: `k${i % 8}`,
        }));
        await withClient(db, (client) => enqueueBurst(client, schema, topic, planned));
        note(`burst of ${events} events committed`);
      },
      async waitForDraining(burst) {
        // Returns as soon as the relay took the first batches of the burst, so that the next fault
        // meets a drain in full swing (settles running beside claims and publishes).
        let backlog = 0;
        await pollUntil(async () => {
          ({ backlog } = await createOnceflowAdmin({ pool: db, schema }).outboxStatus());
          return backlog < burst;
        }, livenessBoundMs);
        note(`relay draining: backlog ${backlog}`);
      },
      startProcesses,
      db,
      kafka,
      async enqueue(target, events) {
        await withClient(db, (client) => enqueueTransaction(client, schema, target, events));
        note(`${events.length} events enqueued for ${target}`);
      },
      async injectTwins(count) {
        const batch = ++twinCounter;
        const key = `twin${batch}`;
        const events = Array.from({ length: count }, (_, i) => ({
          id: `${options.name}-twin${batch}-${i}`,
          key,
          ordinal: i + 1,
        }));
        await db.query(
          `INSERT INTO ${s}.produced (event_id, topic, key, ordinal)
             SELECT unnest($1::text[]), $2, $3, unnest($4::int[])`,
          [events.map((e) => e.id), topic, key, events.map((e) => e.ordinal)],
        );
        const message = (e: (typeof events)[number], partition: number, injected: boolean) => ({
          partition,
          key: e.key,
          value: JSON.stringify({ id: e.id, key: e.key, ordinal: e.ordinal }),
          headers: { 'message-id': e.id, ...(injected ? { [injectedHeader]: 'twin' } : {}) },
        });
        const copies = Array.from({ length: partitions - 1 }, (_, i) =>
          (i % 2 === 0 ? [...events].reverse() : [...events].sort(() => Math.random() - 0.5)).map((e) =>
            message(e, i + 1, true),
          ),
        );
        const producer = kafka.producer({ allowAutoTopicCreation: false });
        await producer.connect();
        try {
          await producer.sendBatch({
            acks: -1,
            topicMessages: [
              {
                topic,
                messages: [...events.map((e) => message(e, 0, false)), ...copies.flat()],
              },
            ],
          });
        } finally {
          await producer.disconnect();
        }
        note(`${count} twin events written to 3 partitions`);
      },
      async terminateWhileRunning({ application, statement, hits, timeoutMs }) {
        const deadline = Date.now() + timeoutMs;
        let hit = 0;
        const condition =
          statement === 'in-transaction'
            ? `state IN ('idle in transaction', 'active') AND xact_start IS NOT NULL`
            : `state = 'active' AND strpos(query, $3) > 0`;
        while (hit < hits && Date.now() < deadline) {
          const { rows } = await root.query<{ terminated: boolean }>(
            `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
              WHERE datname = $1 AND application_name = $2 AND ${condition}`,
            statement === 'in-transaction' ? [database, application] : [database, application, statement],
          );
          hit += rows.filter((r) => r.terminated).length;
          if (rows.length === 0) await sleep(2);
        }
        note(`${hit} ${application} backends terminated while running ${statement}`);
        return hit;
      },
      async terminateBackends(count) {
        const { rows } = await root.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
            WHERE datname = $1 AND application_name IN ('onceflow-relay', 'onceflow-consumer')
            ORDER BY random() LIMIT $2`,
          [database, count],
        );
        for (const { pid } of rows) await root.query('SELECT pg_terminate_backend($1)', [pid]);
        return rows.length;
      },
    };
    // Count the nemesis's kills through the processes' own kill calls.
    const countKills = (list: Supervised[]): void => {
      for (const p of list) {
        const kill = p.kill.bind(p);
        p.kill = async (signal) => {
          if (nemesisRunning) {
            killedByNemesis++;
            note(`${p.name} killed (${signal ?? 'SIGKILL'})`);
          }
          await kill(signal);
        };
      }
    };
    const originalStart = ctx.startProcesses;
    ctx.startProcesses = async (o) => {
      await originalStart(o);
      countKills([...relays, ...consumers]);
    };
    if (options.startProcessesFirst !== false) countKills([...relays, ...consumers]);

    nemesisRunning = true;
    await options.nemesis(ctx);
    nemesisRunning = false;

    // Heal, then let the pipeline catch up.
    note('heal');
    await cluster.healAll();
    const healedAt = Date.now();
    const producerExit = await producer.stop();
    if (producerExit !== 0) violations.push(`producer exited with ${producerExit} on SIGTERM`);
    const drained = await pollUntil(async () => {
      const { backlog } = await createOnceflowAdmin({ pool: db, schema }).outboxStatus();
      if (backlog > 0) return false;
      const { rows } = await db.query<{ missing: number }>(
        `SELECT count(*)::int AS missing FROM ${s}.produced p
          WHERE p.topic = $1 AND NOT EXISTS (SELECT 1 FROM ${s}.effects e WHERE e.message_id = p.event_id)`,
        [topic],
      );
      return rows[0]!.missing === 0;
    }, livenessBoundMs);
    if (drained) drainMs = Date.now() - healedAt;
    else violations.push(`not drained within ${livenessBoundMs / 1000} s of heal`);
    note(drained ? `drained in ${drainMs} ms` : 'not drained');

    // Checks.
    const [produced, records, effects, positions, dlq, status] = await Promise.all([
      db.query<{ event_id: string; key: string; ordinal: number }>(
        `SELECT event_id, key, ordinal FROM ${s}.produced WHERE topic = $1`,
        [topic],
      ),
      readAll(kafka, topic),
      db.query<{ message_id: string; n: number }>(
        `SELECT message_id, count(*)::int AS n FROM ${s}.effects WHERE consumer = $1 GROUP BY message_id`,
        [group],
      ),
      db.query<{ kafka_partition: number; next_offset: string }>(
        `SELECT kafka_partition, next_offset::text FROM ${s}.inbox_position WHERE consumer = $1 AND topic = $2`,
        [group, topic],
      ),
      // Empty when nothing was ever written to it: no consumer group needed to know.
      endOffsets(kafka, `${topic}.dlq`),
      createOnceflowAdmin({ pool: db, schema }).outboxStatus(),
    ]);
    const evaluation = evaluateRun({
      produced: produced.rows.map((r) => ({ eventId: r.event_id, key: r.key, ordinal: r.ordinal })),
      records,
      effects: new Map(effects.rows.map((r) => [r.message_id, r.n])),
      positions: new Map(positions.rows.map((r) => [r.kafka_partition, BigInt(r.next_offset)])),
      deadLetters: [...dlq.values()].reduce((sum, end) => sum + Number(end), 0),
      parked: status.parked,
    });
    figures = evaluation.figures;
    violations.push(...evaluation.violations);

    for (const p of [...relays, ...consumers])
      if (!p.alive()) violations.push(`${p.name} is not running after heal`);
    await Promise.all(
      [...consumers, ...relays].map(async (p) => {
        try {
          const code = await p.stop();
          if (code !== 0) violations.push(`${p.name} exited with ${code} on SIGTERM`);
        } catch (error) {
          violations.push((error as Error).message.split('\n')[0]!);
        }
      }),
    );
  } catch (error) {
    violations.push(`scenario aborted: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await supervisor.closeAll();
  }

  const exits = supervisor.unexpectedExits();
  for (const exit of exits)
    violations.push(
      `${exit.name} exited on its own at +${(exit.atMs / 1000).toFixed(1)} s (code ${exit.code}, signal ${exit.signal}); last output:\n${exit.tail}`,
    );
  const deadlocks = cluster.postgres
    .log()
    .split('\n')
    .filter((line) => line.includes(` ${database} `) && line.includes('deadlock detected')).length;

  if (options.noDeadlocks && deadlocks > 0)
    violations.push(`${deadlocks} "deadlock detected" errors in the database of the scenario`);
  const summary: ScenarioSummary = {
    scenario: options.name,
    recoveries,
    drainMs,
    figures,
    processesExited: exits.map((e) => `${e.name}:${e.code ?? e.signal}`),
    killedByNemesis,
    deadlocks,
    violations,
    durationMs: Date.now() - startedAt,
  };
  writeFileSync(`${logDir}/notes.log`, `${notes.join('\n')}\n`);
  recordSummary(summary);
  return summary;
}
