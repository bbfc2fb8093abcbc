import { createRequire } from 'node:module';
import { defaultSchemaName, isOnceflowError, validateIdentifier } from '@onceflow/core';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Pool } from 'pg';
import { type KafkaFlags, kafkaOptions, resolveKafkaConfig } from './kafka-settings';

// Postgres, kafkajs and the engines are imported by the commands that use them, so that `--help` and
// `--version` start in the time Node needs for commander alone.
const cliVersion: string = createRequire(import.meta.url)('../package.json').version;

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

async function openPool(url: string, max: number): Promise<Pool> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle connection dropping is reported here; the relay retries on its own.
  pool.on('error', () => undefined);
  return pool;
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const parent = process.ppid;
    const finish = (reason: string): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      clearInterval(parentWatch);
      resolve(reason);
    };
    const onSignal = (signal: NodeJS.Signals): void => finish(`${signal} received`);
    // npx (npm exec) hands SIGTERM to the `sh -c` it started, which exits without passing it on and
    // leaves this process orphaned: under a package manager's wrapper (npm_command set: npx, npm exec,
    // pnpm exec, npm run), a parent that went away is taken as the stop request it swallowed. Started any
    // other way (a shell's `nohup … &`, a supervisor), losing the parent means nothing.
    const parentWatch = setInterval(() => {
      if (process.env.npm_command && process.ppid !== parent) finish(`parent process ${parent} exited`);
    }, 1_000);
    parentWatch.unref();
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

const relayClientId = 'onceflow-relay';

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
    .version(cliVersion, '-V, --version', 'print the version of @onceflow/cli')
    .exitOverride();

  const databaseOption = () =>
    new Option('--database-url <url>', 'Postgres connection string (default: $DATABASE_URL)');
  const schemaOption = () =>
    new Option('--schema <name>', 'schema holding onceflow tables')
      .default(defaultSchemaName)
      .argParser(schemaName);

  program
    .command('migrate')
    .description("create or update onceflow's tables in the schema")
    .addOption(databaseOption())
    .addOption(schemaOption())
    .action(async (options: { databaseUrl?: string; schema: string }) => {
      const url = requireSetting(
        options.databaseUrl ?? io.env.DATABASE_URL,
        'a database URL',
        '--database-url',
        'DATABASE_URL',
      );
      const { migrate } = await import('@onceflow/postgres');
      const pool = await openPool(url, 1);
      try {
        const result = await migrate(pool, { schema: options.schema });
        for (const migration of result.applied)
          io.out(`applied ${String(migration.version).padStart(4, '0')}_${migration.name}`);
        io.out(`schema ${result.schema} is at version ${result.version}`);
      } finally {
        await pool.end();
      }
    });

  program
    .command('status')
    .description('print the outbox backlog, the age of its oldest event, parked events and relays')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--json', 'print one JSON object')
    .action(async (options: { databaseUrl?: string; schema: string; json?: boolean }) => {
      const url = requireSetting(
        options.databaseUrl ?? io.env.DATABASE_URL,
        'a database URL',
        '--database-url',
        'DATABASE_URL',
      );
      const { readOutboxStatus } = await import('@onceflow/postgres');
      const pool = await openPool(url, 1);
      try {
        const status = await readOutboxStatus(pool, { schema: options.schema });
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
      } finally {
        await pool.end();
      }
    });

  const relay = program
    .command('relay')
    .description('publish the outbox to Kafka until SIGTERM or SIGINT')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--batch-size <n>', 'most events per batch', positiveInteger)
    .option('--poll-interval-ms <ms>', 'polling fallback interval', positiveInteger)
    .option('--lease-ttl-ms <ms>', 'lane lease lifetime', positiveInteger)
    .option('--heartbeat-interval-ms <ms>', 'lease renewal interval', positiveInteger)
    .option('--metrics-interval-ms <ms>', 'interval of the backlog line, 0 for none', positiveInteger, 10_000)
    .option('--pool-size <n>', 'Postgres connections', positiveInteger, 10)
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
      }) => {
        const url = requireSetting(
          options.databaseUrl ?? io.env.DATABASE_URL,
          'a database URL',
          '--database-url',
          'DATABASE_URL',
        );
        // Commander hands over every Kafka flag (see kafkaOptions below), not only `brokers`.
        const kafkaConfig = resolveKafkaConfig(options as KafkaFlags, io.env, {
          defaultClientId: relayClientId,
        });
        const [{ Kafka, logLevel }, { createOutboxRelay }] = await Promise.all([
          import('kafkajs'),
          import('@onceflow/kafkajs'),
        ]);
        const pool = await openPool(url, options.poolSize);
        const kafka = new Kafka({ ...kafkaConfig, logLevel: logLevel.NOTHING });
        let published = 0;
        const signal = waitForSignal();
        try {
          const relay = await createOutboxRelay({
            pool,
            kafka,
            schema: options.schema,
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
          }).start();
          io.out(`relay ${relay.relayId} started on schema ${options.schema}`);
          const received = await signal;
          io.out(`${received}, stopping`);
          await relay.stop();
          io.out(`relay stopped after publishing ${published} events`);
        } finally {
          await pool.end();
        }
      },
    );

  for (const option of kafkaOptions(relayClientId)) relay.addOption(option);

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
    if (error instanceof CliUsageError || (isOnceflowError(error) && error.code === 'OF_INVALID_OPTIONS')) {
      io.err(`onceflow: ${error.message}`);
      return 2;
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
