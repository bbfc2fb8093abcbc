import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { localKafkaPid, startLocalKafka, stopLocalKafka } from './kafka-local';
import { composeDatabaseUrl, localDatabaseUrl, localKafkaBrokers, repoRoot } from './paths';
import {
  embeddedDatabaseUrl,
  embeddedPostgresPid,
  startEmbeddedPostgres,
  stopEmbeddedPostgres,
} from './postgres-local';
import { dockerEngineAnswers, kafkaAnswers, postgresAnswers } from './probe';

const run = promisify(execFile);

/** How Kafka was found. */
export type KafkaMode = 'env' | 'docker-compose' | 'local-jars';
/** How Postgres was found. */
export type PostgresMode = 'env' | 'local-server' | 'docker-compose' | 'embedded';

/** The services a run uses, and whether this call started them. */
export interface StackServices {
  kafka: { brokers: string[]; mode: KafkaMode; startedHere: boolean };
  postgres: { url: string; mode: PostgresMode; startedHere: boolean };
}

/** Options of {@link ensureStack}. */
export interface EnsureStackOptions {
  log?: (line: string) => void;
  /** Force a Postgres mode instead of the first that answers (`embedded` is handy to try the fallback). */
  postgres?: PostgresMode;
}

async function composeUp(service: 'kafka' | 'postgres', log: (line: string) => void): Promise<void> {
  log(`${service}: starting it with docker compose`);
  await run('docker', ['compose', '-f', `${repoRoot}docker-compose.yml`, 'up', '-d', '--wait', service], {
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function ensureKafka(log: (line: string) => void): Promise<StackServices['kafka']> {
  const fromEnv = process.env.KAFKA_BROKERS;
  if (fromEnv) {
    const brokers = fromEnv.split(',').map((b) => b.trim());
    if (!(await kafkaAnswers(brokers)))
      throw new Error(
        `kafka: KAFKA_BROKERS=${fromEnv} does not answer. Start that broker, or unset KAFKA_BROKERS and run \`pnpm stack:up\`.`,
      );
    return { brokers, mode: 'env', startedHere: false };
  }
  const brokers = [localKafkaBrokers];
  if (await kafkaAnswers(brokers))
    return {
      brokers,
      mode: localKafkaPid() === undefined && (await dockerEngineAnswers()) ? 'docker-compose' : 'local-jars',
      startedHere: false,
    };
  if (await dockerEngineAnswers()) {
    await composeUp('kafka', log);
    return { brokers, mode: 'docker-compose', startedHere: true };
  }
  const state = await startLocalKafka(log);
  return { brokers, mode: 'local-jars', startedHere: state === 'started' };
}

async function ensurePostgres(
  log: (line: string) => void,
  forced?: PostgresMode,
): Promise<StackServices['postgres']> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv && forced === undefined) {
    if (!(await postgresAnswers(fromEnv)))
      throw new Error(
        'postgres: DATABASE_URL does not answer. Start that server, or unset DATABASE_URL and run `pnpm stack:up`.',
      );
    return { url: fromEnv, mode: 'env', startedHere: false };
  }
  if ((forced === undefined || forced === 'local-server') && (await postgresAnswers(localDatabaseUrl)))
    return { url: localDatabaseUrl, mode: 'local-server', startedHere: false };
  if (forced === undefined || forced === 'docker-compose') {
    if (await postgresAnswers(composeDatabaseUrl))
      return { url: composeDatabaseUrl, mode: 'docker-compose', startedHere: false };
    if (await dockerEngineAnswers()) {
      await composeUp('postgres', log);
      return { url: composeDatabaseUrl, mode: 'docker-compose', startedHere: true };
    }
  }
  const state = await startEmbeddedPostgres(log);
  return { url: embeddedDatabaseUrl, mode: 'embedded', startedHere: state === 'started' };
}

/**
 * Finds Kafka and Postgres, starting what is missing: environment variables first, then what already
 * answers locally, then Docker Compose where a Docker engine answers, then the local launchers
 * (Apache Kafka from its Maven Central jars; an embedded Postgres). Idempotent.
 */
export async function ensureStack(options: EnsureStackOptions = {}): Promise<StackServices> {
  const log = options.log ?? ((line: string) => console.log(line));
  const [kafka, postgres] = await Promise.all([ensureKafka(log), ensurePostgres(log, options.postgres)]);
  return { kafka, postgres };
}

/** Stops what the local launchers started (and docker compose's services, where Docker runs). */
export async function stopStack(log: (line: string) => void = console.log): Promise<void> {
  await Promise.all([stopLocalKafka(log), stopEmbeddedPostgres(log)]);
  if (await dockerEngineAnswers()) {
    await run('docker', ['compose', '-f', `${repoRoot}docker-compose.yml`, 'down'], {
      maxBuffer: 16 * 1024 * 1024,
    }).catch(() => undefined);
  }
}

/** One line per service: where it is and whether it answers. */
export async function stackStatus(): Promise<string[]> {
  const brokers = process.env.KAFKA_BROKERS?.split(',') ?? [localKafkaBrokers];
  const kafkaPid = localKafkaPid();
  const pgPid = embeddedPostgresPid();
  const urls = process.env.DATABASE_URL
    ? [process.env.DATABASE_URL]
    : [localDatabaseUrl, composeDatabaseUrl, embeddedDatabaseUrl];
  const lines = [
    `kafka    ${brokers.join(',')}  ${(await kafkaAnswers(brokers)) ? 'up' : 'down'}${kafkaPid ? ` (local broker pid ${kafkaPid})` : ''}`,
  ];
  for (const url of urls) {
    const up = await postgresAnswers(url, 1_500);
    if (up || url === urls[0])
      lines.push(
        `postgres ${url.replace(/:[^:@/]+@/, ':***@')}  ${up ? 'up' : 'down'}${url === embeddedDatabaseUrl && pgPid ? ` (embedded pid ${pgPid})` : ''}`,
      );
  }
  return lines;
}
