import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';

/** `synchronous_commit` of the sessions a scenario opens; `server` leaves the server's setting alone. */
export type SyncCommit = 'server' | 'off';

/** Where the services are, handed from the harness to every worker. */
export interface Services {
  brokers: string[];
  databaseUrl: string;
}

/** A kafkajs client that only speaks up on errors. */
export function benchKafka(services: Services, clientId = 'onceflow-bench'): Kafka {
  return new Kafka({ brokers: services.brokers, clientId, logLevel: logLevel.ERROR });
}

/**
 * A pg pool whose sessions run with the given `synchronous_commit`. It is set per connection (the
 * startup `options` parameter), never in the server's configuration.
 */
export function benchPool(services: Services, syncCommit: SyncCommit, max = 10): pg.Pool {
  return new pg.Pool({
    connectionString: services.databaseUrl,
    max,
    ...(syncCommit === 'off' ? { options: '-c synchronous_commit=off' } : {}),
  });
}

/** The id carried in the `message-id` header of produced message number `index` of a run. */
export function benchMessageId(runId: string, index: number): string {
  return `${runId}-${index.toString().padStart(8, '0')}`;
}

/** The key of message number `index`: `keys` distinct keys, round robin. */
export function benchKey(index: number, keys: number): string {
  return `key-${index % keys}`;
}

/** A value of exactly `bytes` bytes (printable, so it also fits a JSON payload). */
export function benchValue(index: number, bytes: number): Buffer {
  const head = `{"n":${index},"pad":"`;
  const tail = '"}';
  return Buffer.from(head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail, 'utf8');
}

/** The p-th percentile (0-100) of already sorted numbers, nearest-rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Wall clock in milliseconds with sub-millisecond resolution, comparable across processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Time spent per kind of statement, filled when a pool is instrumented. */
export type QueryTimings = Record<string, { count: number; totalMs: number }>;

function statementKind(text: unknown): string {
  const sql = typeof text === 'string' ? text : ((text as { text?: string } | undefined)?.text ?? '?');
  return sql.replace(/\s+/g, ' ').trim().slice(0, 70);
}

/**
 * Times every statement run on the pool's connections, by its first 70 characters: a phase
 * breakdown of where a worker's wall time goes while it waits on Postgres (a CPU profile only
 * shows the time it computes). Enabled in workers by BENCH_QUERY_TIMING=1.
 */
export function instrumentPool(pool: pg.Pool, timings: QueryTimings): void {
  pool.on('connect', (client) => {
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    const record = (kind: string, started: number): void => {
      const entry = timings[kind] ?? { count: 0, totalMs: 0 };
      timings[kind] = entry;
      entry.count++;
      entry.totalMs += nowMs() - started;
    };
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const kind = statementKind(args[0]);
      const started = nowMs();
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (...cbArgs: unknown[]) => {
          record(kind, started);
          return (last as (...a: unknown[]) => unknown)(...cbArgs);
        };
        return original(...args);
      }
      const result = original(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function')
        (result as Promise<unknown>).then(
          () => record(kind, started),
          () => record(kind, started),
        );
      return result;
    };
  });
}

/** The timings sorted by total time, rounded, for a worker's result. */
export function summarizeTimings(
  timings: QueryTimings,
): Array<{ statement: string; count: number; totalMs: number }> {
  return Object.entries(timings)
    .map(([statement, t]) => ({ statement, count: t.count, totalMs: Math.round(t.totalMs) }))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, 12);
}

/** The median of `values` (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
