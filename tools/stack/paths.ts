import { fileURLToPath } from 'node:url';

/** Repository root. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** Git-ignored cache for the local stack: Kafka jars, broker data, logs, pid files. */
export const cacheDir = `${repoRoot}.cache/`;
/** Where the Maven-resolved Kafka broker lives. */
export const kafkaDir = `${cacheDir}kafka/`;
/** Where an embedded Postgres keeps its data when no server is reachable. */
export const embeddedPostgresDir = `${cacheDir}postgres/`;
/** Broker address the local launcher and docker-compose.yml expose. */
export const localKafkaBrokers = '127.0.0.1:19092';
/** The Postgres most machines have: a local server with trust auth. */
export const localDatabaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
/** docker-compose.yml's Postgres. */
export const composeDatabaseUrl = 'postgres://postgres:postgres@127.0.0.1:55432/onceflow';
/** Port of the embedded Postgres (last resort). */
export const embeddedPostgresPort = 55433;
