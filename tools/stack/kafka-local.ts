import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

// Single node: every internal topic at replication factor 1, or consumer groups and transactions never
// get a coordinator. Few internal partitions keep the first group join fast.
const brokerProperties = `
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
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
`;

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
