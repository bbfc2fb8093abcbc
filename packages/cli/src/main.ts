import { isConnectionError, isOnceflowError } from '@onceflow/core';
import { createOutboxRelay } from '@onceflow/kafkajs';
import {
  defaultSchemaName,
  describePool,
  migrate,
  readOutboxStatus,
  validateIdentifier,
} from '@onceflow/postgres';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { addInboxCommands } from './commands/inbox-reset-positions';

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0)
    throw new InvalidArgumentError('expected a non-negative integer');
  return parsed;
}

function schemaName(value: string): string {
  try {
    return validateIdentifier(value);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

function requireSetting(value: string | undefined, what: string, flag: string, env: string): string {
  if (value === undefined || value === '')
    throw new CliUsageError(`${what} is required: pass ${flag} or set ${env}`);
  return value;
}

class CliUsageError extends Error {}

/** A failure the CLI explains itself: printed as is, exit code 1. */
class CliFailure extends Error {}

interface PoolSettings {
  max: number;
  /** Longest wait for a connection, 0 for none. */
  connectTimeoutMs: number;
  /** Longest wait for one statement (server and client side), 0 or undefined for none. */
  statementTimeoutMs?: number;
}

function openPool(url: string, settings: PoolSettings): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.max,
    // A host that accepts connections and never answers would otherwise hold the command forever.
    connectionTimeoutMillis: settings.connectTimeoutMs,
    ...(settings.statementTimeoutMs
      ? { statement_timeout: settings.statementTimeoutMs, query_timeout: settings.statementTimeoutMs + 1_000 }
      : {}),
  });
  // An idle connection dropping is reported here; the relay retries on its own.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `work` on a pool of its own and ends the pool, turning "the database does not answer" into a
 * message that says where the command tried and what to check.
 */
async function withPool<T>(
  url: string,
  settings: PoolSettings,
  work: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pool = openPool(url, settings);
  try {
    return await work(pool);
  } catch (error) {
    const target = describePool(pool);
    const reason = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: unknown }).code;
    if (code === '57014' || (error instanceof Error && error.message === 'Query read timeout'))
      throw new CliFailure(
        `${target} did not finish a statement within ${settings.statementTimeoutMs} ms (${reason}). Check the server's load and locks (is another migrate running?), or raise --statement-timeout-ms.`,
      );
    if (isConnectionError(error))
      throw new CliFailure(
        `could not reach ${target} (${reason}${
          /timeout/i.test(reason) ? ` within ${settings.connectTimeoutMs} ms` : ''
        }). Check that the server is running and answering at that address (--database-url or DATABASE_URL), that no firewall or proxy holds the connection, or raise --connect-timeout-ms for a slow network.`,
        { cause: error },
      );
    throw error;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Builds the `onceflow` command. */
export function createCli(io: CliIo = processIo): Command {
  const program = new Command('onceflow')
    .description(
      'onceflow: effectively-once Kafka consumers, a commit-ordered outbox and idempotency keys on Postgres',
    )
    .configureOutput({
      writeOut: (text) => io.out(text.trimEnd()),
      writeErr: (text) => io.err(text.trimEnd()),
    })
    .exitOverride();

  const databaseOption = () =>
    new Option('--database-url <url>', 'Postgres connection string (default: $DATABASE_URL)');
  const schemaOption = () =>
    new Option('--schema <name>', 'schema holding onceflow tables')
      .default(defaultSchemaName)
      .argParser(schemaName);
  const connectTimeoutOption = () =>
    new Option('--connect-timeout-ms <ms>', 'longest wait for a database connection, 0 for none')
      .default(10_000)
      .argParser(positiveInteger);
  const statementTimeoutOption = (defaultMs: number) =>
    new Option('--statement-timeout-ms <ms>', 'longest wait for one statement, 0 for none')
      .default(defaultMs)
      .argParser(positiveInteger);

  program
    .command('migrate')
    .description("create or update onceflow's tables in the schema")
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(300_000))
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        connectTimeoutMs: number;
        statementTimeoutMs: number;
      }) => {
        const url = requireSetting(
          options.databaseUrl ?? io.env.DATABASE_URL,
          'a database URL',
          '--database-url',
          'DATABASE_URL',
        );
        const settings = {
          max: 1,
          connectTimeoutMs: options.connectTimeoutMs,
          statementTimeoutMs: options.statementTimeoutMs,
        };
        const result = await withPool(url, settings, (pool) => migrate(pool, { schema: options.schema }));
        for (const migration of result.applied)
          io.out(`applied ${String(migration.version).padStart(4, '0')}_${migration.name}`);
        io.out(`schema ${result.schema} is at version ${result.version}`);
      },
    );

  program
    .command('status')
    .description('print the outbox backlog, the age of its oldest event, parked events and relays')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--json', 'print one JSON object')
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        json?: boolean;
        connectTimeoutMs: number;
        statementTimeoutMs: number;
      }) => {
        const url = requireSetting(
          options.databaseUrl ?? io.env.DATABASE_URL,
          'a database URL',
          '--database-url',
          'DATABASE_URL',
        );
        const settings = {
          max: 1,
          connectTimeoutMs: options.connectTimeoutMs,
          statementTimeoutMs: options.statementTimeoutMs,
        };
        const status = await withPool(url, settings, (pool) =>
          readOutboxStatus(pool, { schema: options.schema }),
        );
        if (options.json) io.out(JSON.stringify({ schema: options.schema, ...status }));
        else {
          io.out(`schema:        ${options.schema}`);
          io.out(`backlog:       ${status.backlog}`);
          io.out(
            `oldest age:    ${status.oldestAgeMs === null ? '-' : `${Math.round(status.oldestAgeMs)} ms`}`,
          );
          io.out(`parked:        ${status.parked}`);
          io.out(`live relays:   ${status.liveRelays}`);
          io.out(`owned lanes:   ${status.ownedLanes}`);
        }
      },
    );

  program
    .command('relay')
    .description('publish the outbox to Kafka until SIGTERM or SIGINT')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--brokers <list>', 'comma-separated Kafka brokers (default: $KAFKA_BROKERS)')
    .option('--batch-size <n>', 'most events per batch', positiveInteger)
    .option('--poll-interval-ms <ms>', 'polling fallback interval', positiveInteger)
    .option('--lease-ttl-ms <ms>', 'lane lease lifetime', positiveInteger)
    .option('--heartbeat-interval-ms <ms>', 'lease renewal interval', positiveInteger)
    .option('--metrics-interval-ms <ms>', 'interval of the backlog line, 0 for none', positiveInteger, 10_000)
    .option('--pool-size <n>', 'Postgres connections', positiveInteger, 10)
    .addOption(connectTimeoutOption())
    .option(
      '--startup-timeout-ms <ms>',
      'give up when Postgres cannot be reached for this long at start (default: keep trying)',
      positiveInteger,
    )
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        brokers?: string;
        batchSize?: number;
        pollIntervalMs?: number;
        leaseTtlMs?: number;
        heartbeatIntervalMs?: number;
        metricsIntervalMs: number;
        poolSize: number;
        connectTimeoutMs: number;
        startupTimeoutMs?: number;
      }) => {
        const url = requireSetting(
          options.databaseUrl ?? io.env.DATABASE_URL,
          'a database URL',
          '--database-url',
          'DATABASE_URL',
        );
        const brokers = requireSetting(
          options.brokers ?? io.env.KAFKA_BROKERS,
          'Kafka brokers',
          '--brokers',
          'KAFKA_BROKERS',
        )
          .split(',')
          .map((broker) => broker.trim())
          .filter(Boolean);
        const pool = openPool(url, { max: options.poolSize, connectTimeoutMs: options.connectTimeoutMs });
        const kafka = new Kafka({ clientId: 'onceflow-relay', brokers, logLevel: logLevel.NOTHING });
        let published = 0;
        const signal = waitForSignal();
        try {
          const relay = createOutboxRelay({
            pool,
            kafka,
            schema: options.schema,
            ...(options.startupTimeoutMs === undefined ? {} : { startupTimeoutMs: options.startupTimeoutMs }),
            ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
            ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
            ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
            ...(options.heartbeatIntervalMs === undefined
              ? {}
              : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
            metricsIntervalMs: options.metricsIntervalMs,
            observer: {
              onPublished: (batch) => {
                published += batch.count;
              },
              onBacklog: (status) =>
                io.out(
                  `backlog=${status.backlog} oldestAgeMs=${status.oldestAgeMs === null ? '-' : Math.round(status.oldestAgeMs)} parked=${status.parked} published=${published}`,
                ),
              onParked: (event) =>
                io.err(`parked event ${event.eventId} (topic ${event.topic}): ${event.error}`),
              onLaneAcquired: (lane, epoch) => io.out(`lane ${lane} acquired (epoch ${epoch})`),
              onLaneReleased: (lane, reason) => io.out(`lane ${lane} ${reason}`),
              onError: (error, context) =>
                io.err(`${context}: ${error instanceof Error ? error.message : String(error)} (retrying)`),
            },
          });
          // A signal also ends a start still waiting for Postgres.
          const stopped = signal.then(async (received) => {
            io.out(`${received} received, stopping`);
            await relay.stop();
          });
          let handle: Awaited<ReturnType<typeof relay.start>>;
          try {
            handle = await relay.start();
          } catch (error) {
            if (!isOnceflowError(error, 'OF_STOPPED')) throw error;
            await stopped;
            io.out('relay stopped before it started');
            return;
          }
          io.out(`relay ${handle.relayId} started on schema ${options.schema}`);
          await stopped;
          io.out(`relay stopped after publishing ${published} events`);
        } finally {
          await pool.end();
        }
      },
    );

  addInboxCommands(program, {
    io,
    // The default connect timeout of the other commands: a database that never answers ends the
    // command with an error instead of holding it.
    openPool: (url, max) => openPool(url, { max, connectTimeoutMs: 10_000 }),
    requireSetting,
    databaseOption,
    schemaOption,
  });

  return program;
}

/** Runs the CLI with `argv` (as in process.argv) and resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    await createCli(io).parseAsync(argv);
    return 0;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('commander.'))
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
    if (error instanceof CliUsageError) {
      io.err(`onceflow: ${error.message}`);
      return 2;
    }
    if (error instanceof CliFailure) {
      io.err(`onceflow: ${error.message}`);
      return 1;
    }
    io.err(
      `onceflow: ${isOnceflowError(error) ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}`,
    );
    // 42P01 undefined_table: the schema was never migrated, which deserves a hint, not just Postgres's words.
    if (code === '42P01')
      io.err('onceflow: the schema has no onceflow tables yet; run `onceflow migrate` first');
    return 1;
  }
}
