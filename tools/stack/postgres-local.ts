import { spawn } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { embeddedPostgresDir, embeddedPostgresPort, repoRoot } from './paths';
import { alivePid, stopPid } from './pid-file';
import { postgresAnswers, waitFor } from './probe';

const pidFile = `${embeddedPostgresDir}keeper.pid`;

/** URL of the embedded Postgres. */
export const embeddedDatabaseUrl = `postgres://postgres:postgres@127.0.0.1:${embeddedPostgresPort}/onceflow`;

/** Starts the embedded Postgres in a background keeper process unless it already answers. */
export async function startEmbeddedPostgres(log: (line: string) => void): Promise<'started' | 'running'> {
  if (await postgresAnswers(embeddedDatabaseUrl)) return 'running';
  if (alivePid(pidFile) === undefined) {
    mkdirSync(embeddedPostgresDir, { recursive: true });
    const out = openSync(`${embeddedPostgresDir}keeper.log`, 'a');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', `${repoRoot}tools/stack/embedded-postgres-keeper.ts`],
      {
        cwd: repoRoot,
        detached: true,
        stdio: ['ignore', out, out],
      },
    );
    child.unref();
    writeFileSync(pidFile, String(child.pid));
    log(`postgres: started an embedded Postgres on 127.0.0.1:${embeddedPostgresPort}, pid ${child.pid}`);
  }
  await waitFor('the embedded Postgres', () => postgresAnswers(embeddedDatabaseUrl), 120_000);
  return 'started';
}

/** Stops the embedded Postgres when this stack started one. */
export async function stopEmbeddedPostgres(log: (line: string) => void): Promise<void> {
  const pid = await stopPid(pidFile);
  if (pid !== undefined) log(`postgres: stopped the embedded Postgres (pid ${pid})`);
}

/** The pid of the embedded Postgres keeper, when it runs. */
export function embeddedPostgresPid(): number | undefined {
  return alivePid(pidFile);
}
