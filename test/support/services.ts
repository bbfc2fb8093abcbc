import { randomBytes } from 'node:crypto';
import { migrate } from '@onceflow/postgres';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { inject } from 'vitest';

/** Kafka brokers of this test run (resolved once by the global setup). */
export function brokers(): string[] {
  return inject('kafkaBrokers');
}

/** Postgres URL of this test run. */
export function databaseUrl(): string {
  return inject('databaseUrl');
}

/** Environment that hands this run's services to a child process. */
export function serviceEnv(): Record<string, string> {
  return { KAFKA_BROKERS: brokers().join(','), DATABASE_URL: databaseUrl() };
}

let kafka: Kafka | undefined;

/** A kafkajs client for the run's brokers; quiet unless something is wrong. */
export function testKafka(): Kafka {
  kafka ??= new Kafka({ brokers: brokers(), clientId: 'onceflow-test', logLevel: logLevel.ERROR });
  return kafka;
}

/** A lower-case name unique to this call; valid as a topic, a consumer group and a Postgres schema. */
export function uniqueName(prefix: string): string {
  return `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** A fresh, migrated onceflow schema in the run's Postgres. Drop it when done (or `await using`). */
export interface TestDatabase {
  pool: pg.Pool;
  schema: string;
  url: string;
  drop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Creates a unique schema, applies onceflow's migrations to it and returns a pool for it. */
export async function createTestDatabase(options: { poolSize?: number } = {}): Promise<TestDatabase> {
  const url = databaseUrl();
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10 });
  // As every program should (see the README): a dropped idle connection must not end the run.
  pool.on('error', () => undefined);
  const schema = uniqueName('of_test');
  await migrate(pool, { schema });
  let dropped: Promise<void> | undefined;
  const drop = (): Promise<void> => {
    dropped ??= (async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    })();
    return dropped;
  };
  return { pool, schema, url, drop, [Symbol.asyncDispose]: drop };
}
