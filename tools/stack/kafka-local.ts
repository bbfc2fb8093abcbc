import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { kafkaDir, localKafkaBrokers, repoRoot } from './paths';
import { alivePid, stopPid } from './pid-file';
import { kafkaAnswers, waitFor } from './probe';

const run = promisify(execFile);
const pom = `${repoRoot}tools/stack/kafka-pom.xml`;
const log4j = `${repoRoot}tools/stack/kafka-log4j2.properties`;
const libsDir = `${kafkaDir}libs/`;
const dataDir = `${kafkaDir}data/`;
const logsDir = `${kafkaDir}logs/`;
const pidFile = `${kafkaDir}broker.pid`;
const propertiesFile = `${kafkaDir}server.properties`;
const markerFile = `${libsDir}.resolved`;
const [host, port] = localKafkaBrokers.split(':') as [string, string];
const controllerPort = Number(port) + 1;

/** What differs between two single-node brokers: where they listen and keep their data. */
interface BrokerLayout {
  host: string;
  port: number;
  controllerPort: number;
  dataDir: string;
  /** Internal topics' partitions: few keep the first group join and the first transaction fast. */
  internalPartitions: number;
}

// Single node: every internal topic at replication factor 1, or consumer groups and transactions never
// get a coordinator. Few internal partitions keep the first group join fast.
function brokerPropertiesOf(layout: BrokerLayout): string {
  const { host, port, controllerPort, dataDir, internalPartitions } = layout;
  return `
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${host}:${controllerPort}
listeners=PLAINTEXT://${host}:${port},CONTROLLER://${host}:${controllerPort}
advertised.listeners=PLAINTEXT://${host}:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${dataDir}
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=${internalPartitions}
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=${internalPartitions}
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
`;
}

const brokerProperties = brokerPropertiesOf({
  host,
  port: Number(port),
  controllerPort,
  dataDir,
  internalPartitions: 10,
});

/** Heap of the local broker: capped so Node and Postgres keep their share of a small machine. */
const javaOptions = [
  '-Xms256m',
  '-Xmx768m',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-Djava.awt.headless=true',
];

function pomDigest(): string {
  return createHash('sha256').update(readFileSync(pom)).digest('hex');
}

/** Resolves the Kafka broker jars from Maven Central into the cache, once per version of the pom. */
export async function resolveKafkaJars(log: (line: string) => void): Promise<void> {
  const digest = pomDigest();
  if (existsSync(markerFile) && readFileSync(markerFile, 'utf8') === digest) return;
  log('kafka: resolving the Apache Kafka broker from Maven Central (first run only)...');
  rmSync(libsDir, { recursive: true, force: true });
  // New jars may bring a new metadata version: start from empty storage.
  rmSync(dataDir, { recursive: true, force: true });
  try {
    await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        pom,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${libsDir}`,
        '-DincludeScope=runtime',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: string };
    if (e.code === 'ENOENT')
      throw new Error(
        'kafka: `mvn` was not found. Install Java 17+ and Maven, or Docker, or set KAFKA_BROKERS.',
      );
    throw new Error(`kafka: Maven could not resolve the broker jars:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  writeFileSync(markerFile, digest);
}

function java(args: string[]): Promise<{ stdout: string }> {
  return run('java', [
    ...javaOptions,
    `-Dlog4j2.configurationFile=${log4j}`,
    `-Dkafka.logs.dir=${logsDir}`,
    '-cp',
    `${libsDir}*`,
    ...args,
  ]);
}

/** Starts the local broker unless one already answers; resolves when it accepts metadata requests. */
export async function startLocalKafka(log: (line: string) => void): Promise<'started' | 'running'> {
  const brokers = [localKafkaBrokers];
  if (await kafkaAnswers(brokers)) return 'running';
  const pid = alivePid(pidFile);
  if (pid === undefined) {
    await resolveKafkaJars(log);
    for (const dir of [dataDir, logsDir]) mkdirSync(dir, { recursive: true });
    writeFileSync(propertiesFile, brokerProperties);
    if (!existsSync(`${dataDir}meta.properties`)) {
      // The `=` form: a base64url id may start with '-', which the tool would read as an option.
      const clusterId = randomBytes(16).toString('base64url');
      await java(['kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', propertiesFile]);
    }
    const out = openSync(`${logsDir}stdout.log`, 'a');
    const child = spawn(
      'java',
      [
        ...javaOptions,
        `-Dlog4j2.configurationFile=${log4j}`,
        `-Dkafka.logs.dir=${logsDir}`,
        '-cp',
        `${libsDir}*`,
        'kafka.Kafka',
        propertiesFile,
      ],
      {
        detached: true,
        stdio: ['ignore', out, out],
      },
    );
    child.unref();
    writeFileSync(pidFile, String(child.pid));
    log(
      `kafka: started Apache Kafka (KRaft, single node) on ${localKafkaBrokers}, pid ${child.pid}, logs in .cache/kafka/logs`,
    );
  }
  try {
    await waitFor(
      'the local Kafka broker',
      async () => {
        if (alivePid(pidFile) === undefined)
          throw new Error(
            `kafka: the broker exited during start-up; see .cache/kafka/logs/server.log\n${logTail()}`,
          );
        return kafkaAnswers(brokers);
      },
      120_000,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${logTail()}`);
  }
  return 'started';
}

function logTail(): string {
  const file = `${logsDir}server.log`;
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') : '';
}

/** Stops the local broker (SIGTERM, then SIGKILL after 30 s). Does nothing when none runs. */
export async function stopLocalKafka(log: (line: string) => void): Promise<void> {
  const pid = await stopPid(pidFile);
  if (pid !== undefined) log(`kafka: stopped the local broker (pid ${pid})`);
}

/** The pid of the local broker, when it runs. */
export function localKafkaPid(): number | undefined {
  return alivePid(pidFile);
}

/** Options of {@link startPrivateKafka}. */
export interface PrivateKafkaOptions {
  /**
   * Directory of this broker: its log directories, configuration and logs (`logs/server.log`,
   * `logs/stdout.log`). Created when missing; a directory formatted by an earlier start is reused with
   * its topics. Required.
   */
  dataDir: string;
  /** Client port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** KRaft controller port on 127.0.0.1. Default: a free port. */
  controllerPort?: number;
  /** Maximum Java heap in MiB. Default: 512. */
  heapMb?: number;
  /** Further `server.properties` entries, which win over the defaults (for example `log.retention.ms`). Default: none. */
  properties?: Readonly<Record<string, string>>;
  /** Longest wait in milliseconds for the broker to answer a metadata request, per start. Default: 120000. */
  startTimeoutMs?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

/** A broker of one's own, started by {@link startPrivateKafka}. */
export interface PrivateKafka {
  /** `127.0.0.1:<port>`; the same across restarts. */
  readonly brokers: string[];
  /** The data directory given. */
  readonly dataDir: string;
  /** The broker's process id, or undefined while it is not running. Changes with every restart. */
  readonly pid: number | undefined;
  /**
   * Sends `signal` (default SIGKILL) to the broker. For SIGKILL, SIGTERM and SIGINT it resolves once the
   * process exited; for others (SIGSTOP, SIGCONT) at once. Does nothing while the broker is down.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts the broker again on the same ports and data, stopping it first (SIGTERM) if it still runs;
   * a stopped (SIGSTOP) broker is continued first so that it can exit. Resolves once it answers a
   * metadata request.
   */
  restart(): Promise<void>;
  /** Stops the broker: SIGTERM, then SIGKILL after 15 s. Keeps the data directory. Idempotent. */
  stop(): Promise<void>;
  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Brokers of this process still running, killed when it exits so that none outlives a test run. */
const privateBrokers = new Set<ChildProcess>();
let exitHookInstalled = false;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Starts a single-node Apache Kafka broker (KRaft, the stack's jars) of one's own on 127.0.0.1, for
 * tests that kill, stop or restart a broker without disturbing the shared one. It listens on free
 * ports (or the ones given) which stay the same across restarts, keeps everything in `dataDir`, runs
 * with a capped heap, internal topics at replication factor 1 with one partition each, and no initial
 * rebalance delay. Resolves once it answers a metadata request. The broker is a child of this process
 * and is killed when this process exits.
 */
export async function startPrivateKafka(options: PrivateKafkaOptions): Promise<PrivateKafka> {
  const log = options.log ?? (() => undefined);
  const dir = options.dataDir.endsWith('/') ? options.dataDir : `${options.dataDir}/`;
  const dataPath = `${dir}data/`;
  const logsPath = `${dir}logs/`;
  const properties = `${dir}server.properties`;
  const port = options.port ?? (await freePort());
  const controller = options.controllerPort ?? (await freePort());
  const brokers = [`127.0.0.1:${port}`];
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const heap = options.heapMb ?? 512;
  const jvm = [
    `-Xms${Math.min(128, heap)}m`,
    `-Xmx${heap}m`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
    `-Dkafka.logs.dir=${logsPath}`,
    '-cp',
    `${libsDir}*`,
  ];

  await resolveKafkaJars(log);
  for (const path of [dataPath, logsPath]) mkdirSync(path, { recursive: true });
  // A restarted node waits for its previous incarnation's broker session to expire before it registers
  // again (9 s by default); a shorter session restarts faster while leaving room for a loaded machine.
  const privateDefaults = { 'broker.session.timeout.ms': '4000', 'broker.heartbeat.interval.ms': '1000' };
  const extra = Object.entries({ ...privateDefaults, ...options.properties })
    .map(([name, value]) => `${name}=${value}`)
    .join('\n');
  writeFileSync(
    properties,
    `${brokerPropertiesOf({ host: '127.0.0.1', port, controllerPort: controller, dataDir: dataPath, internalPartitions: 1 })}${extra}\n`,
  );
  if (!existsSync(`${dataPath}meta.properties`)) {
    const clusterId = randomBytes(16).toString('base64url');
    await run('java', [
      ...jvm,
      'kafka.tools.StorageTool',
      'format',
      `--cluster-id=${clusterId}`,
      '-c',
      properties,
    ]);
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const child of privateBrokers) child.kill('SIGKILL');
    });
  }

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | undefined;

  const tail = (): string => {
    const file = `${logsPath}server.log`;
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') : '';
  };

  const spawnBroker = async (): Promise<void> => {
    const out = openSync(`${logsPath}stdout.log`, 'a');
    const started = spawn('java', [...jvm, 'kafka.Kafka', properties], { stdio: ['ignore', out, out] });
    closeSync(out);
    child = started;
    privateBrokers.add(started);
    exited = new Promise((resolve) =>
      started.once('exit', () => {
        privateBrokers.delete(started);
        if (child === started) child = undefined;
        resolve();
      }),
    );
    log(`kafka: private broker on ${brokers[0]}, pid ${started.pid}, data in ${dir}`);
    const deadline = Date.now() + startTimeoutMs;
    while (!(await kafkaAnswers(brokers, 2_000))) {
      if (child !== started)
        throw new Error(
          `kafka: the private broker exited during start-up; see ${logsPath}server.log\n${tail()}`,
        );
      if (Date.now() > deadline)
        throw new Error(
          `kafka: the private broker did not answer within ${Math.round(startTimeoutMs / 1000)} s\n${tail()}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const current = child;
    if (current === undefined) return;
    current.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await exited;
  };

  const shutDown = async (): Promise<void> => {
    const current = child;
    if (current === undefined) return;
    // A stopped process cannot act on SIGTERM.
    current.kill('SIGCONT');
    current.kill('SIGTERM');
    const timer = setTimeout(() => current.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };

  const stop = (): Promise<void> => {
    stopping ??= shutDown();
    return stopping;
  };

  try {
    await spawnBroker();
  } catch (error) {
    await kill('SIGKILL');
    throw error;
  }
  return {
    brokers,
    dataDir: options.dataDir,
    get pid() {
      return child?.pid;
    },
    kill,
    async restart() {
      if (stopping) throw new Error('kafka: the private broker was stopped; start a new one');
      await shutDown();
      await spawnBroker();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
