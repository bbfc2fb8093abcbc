import {
  defaultSchemaName,
  isConnectionError,
  isOnceflowError,
  type Logger,
  OnceflowError,
  validateIdentifier,
} from '@onceflow/core';
import type { OnceflowAdmin } from '@onceflow/postgres';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type pg from 'pg';

// Postgres, kafkajs and the engines are imported by the commands that use them, when they run, so
// that `--help` and `--version` start in the time Node needs for commander alone.

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

/** The process's own stdout, stderr and environment. */
export const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** A mistake in how the command was called: OF_INVALID_OPTIONS, which exits with code 2. */
export function usageError(message: string): OnceflowError {
  return new OnceflowError('OF_INVALID_OPTIONS', message);
}

/** Parses a non-negative integer argument. */
export function nonNegativeInteger(value: string): number {
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

/** `--database-url`, read from DATABASE_URL when absent. */
export const databaseOption = (): Option =>
  new Option('--database-url <url>', 'Postgres connection string (default: $DATABASE_URL)');

/** `--schema`, validated as an identifier. */
export const schemaOption = (): Option =>
  new Option('--schema <name>', 'schema holding onceflow tables')
    .default(defaultSchemaName)
    .argParser(schemaName);

/** `--log-level` of the CLI's logger on stderr. */
export const logLevelOption = (): Option =>
  new Option('--log-level <level>', 'lowest level logged to stderr')
    .choices(logLevels)
    .default('warn' satisfies LogLevel);

/** A setting given by flag or environment variable; a usage error naming both when neither is. */
export function requireSetting(value: string | undefined, what: string, flag: string, env: string): string {
  if (value === undefined || value === '')
    throw usageError(`${what} is required: pass ${flag} or set ${env}`);
  return value;
}

/** The database URL of `--database-url` or DATABASE_URL. */
export function databaseUrl(options: { databaseUrl?: string }, io: CliIo): string {
  return requireSetting(
    options.databaseUrl ?? io.env.DATABASE_URL,
    'a database URL',
    '--database-url',
    'DATABASE_URL',
  );
}

/** How a command's pool connects. */
export interface PoolSettings {
  max: number;
  /** Longest wait for a connection, 0 for none. */
  connectTimeoutMs: number;
  /** Longest wait for one statement (server and client side), 0 or undefined for none. */
  statementTimeoutMs?: number;
}

/** `--connect-timeout-ms`. */
export const connectTimeoutOption = (): Option =>
  new Option('--connect-timeout-ms <ms>', 'longest wait for a database connection, 0 for none')
    .default(10_000)
    .argParser(nonNegativeInteger);

/** `--statement-timeout-ms`, with the command's own default. */
export const statementTimeoutOption = (defaultMs: number): Option =>
  new Option('--statement-timeout-ms <ms>', 'longest wait for one statement, 0 for none')
    .default(defaultMs)
    .argParser(nonNegativeInteger);

/** A pool to `url` with `settings`. */
export async function openPool(url: string, settings: PoolSettings): Promise<pg.Pool> {
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString: url,
    max: settings.max,
    // A host that accepts connections and never answers would otherwise hold the command forever.
    connectionTimeoutMillis: settings.connectTimeoutMs,
    ...(settings.statementTimeoutMs
      ? { statement_timeout: settings.statementTimeoutMs, query_timeout: settings.statementTimeoutMs + 1_000 }
      : {}),
  });
  // An idle connection dropping is reported here; whoever uses the pool retries on its own.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `work` on a pool of its own and ends the pool, turning "the database does not answer" into
 * OF_UNAVAILABLE with a message that says where the command tried and what to check.
 */
export async function withPool<T>(
  options: { databaseUrl?: string; connectTimeoutMs?: number; statementTimeoutMs?: number },
  io: CliIo,
  max: number,
  work: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const settings: PoolSettings = {
    max,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
  };
  const pool = await openPool(databaseUrl(options, io), settings);
  try {
    return await work(pool);
  } catch (error) {
    const { describePool } = await import('@onceflow/postgres');
    const target = describePool(pool);
    // The driver's own error, also when an onceflow error carries it as its cause.
    const cause = isOnceflowError(error) && error.cause !== undefined ? error.cause : error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    const code = (cause as { code?: unknown }).code;
    if (code === '57014' || reason === 'Query read timeout')
      throw new OnceflowError(
        'OF_UNAVAILABLE',
        `${target} did not finish a statement within ${settings.statementTimeoutMs} ms (${reason}). Check the server's load and locks (is another migrate running?), or raise --statement-timeout-ms.`,
        { retriable: true, cause },
      );
    if (isConnectionError(cause))
      throw new OnceflowError(
        'OF_UNAVAILABLE',
        `could not reach ${target} (${reason}${
          /timeout/i.test(reason) ? ` within ${settings.connectTimeoutMs} ms` : ''
        }). Check that the server is running and answering at that address (--database-url or DATABASE_URL), that no firewall or proxy holds the connection, or raise --connect-timeout-ms for a slow network.`,
        { retriable: true, cause },
      );
    throw error;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** The admin library over `pool`, loaded when a command runs. */
export async function openAdmin(pool: pg.Pool, schema: string): Promise<OnceflowAdmin> {
  const { createOnceflowAdmin } = await import('@onceflow/postgres');
  return createOnceflowAdmin({ pool, schema });
}

/**
 * Resolves with the first SIGTERM or SIGINT (as `SIGTERM received`), or with the stop request a
 * package manager's wrapper swallowed: npx (npm exec) hands SIGTERM to the `sh -c` it started, which
 * exits without passing it on and leaves this process orphaned. Under such a wrapper (npm_command
 * set: npx, npm exec, pnpm exec, npm run) a parent that went away is taken as that request; started
 * any other way (a shell's `nohup … &`, a supervisor), losing the parent means nothing.
 */
export function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const parent = process.ppid;
    const finish = (reason: string): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      clearInterval(parentWatch);
      resolve(reason);
    };
    const onSignal = (signal: NodeJS.Signals): void => finish(`${signal} received`);
    const parentWatch = setInterval(() => {
      if (process.env.npm_command && process.ppid !== parent) finish(`parent process ${parent} exited`);
    }, 1_000);
    parentWatch.unref();
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** A level of {@link createLineLogger}. */
export type LogLevel = (typeof logLevels)[number];

function fieldText(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /^[\w.:/@-]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * The CLI's logger: one line per entry on `write` (`<level>: <message> key=value …`), entries below
 * `level` dropped. pino's shape, so the engines and kafkajs (through its log creator) log into it.
 */
export function createLineLogger(
  write: (line: string) => void,
  level: LogLevel,
  bindings: Record<string, unknown> = {},
): Logger {
  const threshold = logLevels.indexOf(level);
  const at =
    (name: LogLevel) =>
    (first: object | string, message?: string): void => {
      if (logLevels.indexOf(name) > threshold) return;
      const fields: Record<string, unknown> = { ...bindings, ...(typeof first === 'string' ? {} : first) };
      const text = typeof first === 'string' ? first : (message ?? '');
      const pairs = Object.entries(fields)
        .filter(([key, value]) => value !== undefined && key !== 'err')
        .map(([key, value]) => `${key}=${fieldText(value)}`);
      write(`${name}: ${text}${pairs.length > 0 ? ` (${pairs.join(' ')})` : ''}`);
    };
  return {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    child: (more) => createLineLogger(write, level, { ...bindings, ...more }),
  };
}

/** The options every command reading the database takes: what {@link withPool} needs. */
export interface DatabaseFlags {
  databaseUrl?: string;
  schema: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/** Adds `--database-url`, `--schema`, `--connect-timeout-ms` and `--statement-timeout-ms` to `command`. */
export function addDatabaseOptions(command: Command): Command {
  return command
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000));
}

/** Collects a repeatable flag's values (`--id a --id b`, or `--id a,b`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  ];
}

/** Parses an age such as `500ms`, `45s`, `15m`, `12h` or `7d` (a bare number is milliseconds) into milliseconds. */
export function parseAgeMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError('expected an age such as 500ms, 45s, 15m, 12h or 7d');
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Math.round(Number(match[1]) * unit);
}
