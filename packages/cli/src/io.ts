import { type Logger, OnceflowError } from '@onceflow/core';
import { defaultSchemaName, validateIdentifier } from '@onceflow/postgres';
import { InvalidArgumentError, Option } from 'commander';
import pg from 'pg';

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

/** A pool of at most `max` connections to `url`. */
export function openPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle connection dropping is reported here; whoever uses the pool retries on its own.
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `work` with a pool of `max` connections, ending the pool afterwards. */
export async function withPool<T>(
  options: { databaseUrl?: string },
  io: CliIo,
  max: number,
  work: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pool = openPool(databaseUrl(options, io), max);
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** Resolves with the first SIGTERM or SIGINT. */
export function waitForSignal(): Promise<NodeJS.Signals> {
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
