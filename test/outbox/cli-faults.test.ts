import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChildHandle, createTestDatabase, spawnTs, startPrivatePostgres } from '../support';

const cli = fileURLToPath(new URL('../../packages/cli/bin/onceflow.js', import.meta.url));

/** How long a command may take before the test calls it hung: far beyond any timeout it was given. */
const hangMs = 60_000;

/** A loopback server that accepts connections and never says a word, like a wedged database host. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// Bad configuration and unreachable services give one clear error or a logged wait, never a hang
// without output.
describe('onceflow CLI against a database that does not answer', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    // A step that throws at once must not skip the others (the private server's disposal last).
    for (const step of cleanup.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch(() => undefined);
  });

  function spawnCli(args: string[]): ChildHandle {
    const child = spawnTs(cli, { args });
    cleanup.push(() => child.kill('SIGKILL'));
    return child;
  }

  async function exitOf(child: ChildHandle): Promise<number | null> {
    if (child.child.exitCode !== null) return child.child.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the command hung for ${hangMs} ms; output:\n${child.output()}`)),
        hangMs,
      );
      child.child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  it('status and migrate against a host that accepts connections and never answers end with an error naming it', async () => {
    const silent = await silentServer();
    cleanup.push(() => silent.close());
    const url = `postgres://postgres@127.0.0.1:${silent.port}/app`;
    for (const command of ['status', 'migrate']) {
      const child = spawnCli([command, '--database-url', url, '--connect-timeout-ms', '500']);
      expect(await exitOf(child), child.output()).toBe(1);
      expect(child.output()).toContain(`could not reach Postgres at 127.0.0.1:${silent.port} (database app`);
      expect(child.output()).toMatch(/within 500 ms\)\. Check that the server is running/);
    }
  });

  it('status on a table locked by another transaction ends at the statement timeout with what to check', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const locker = await db.pool.connect();
    cleanup.push(async () => locker.release());
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${db.schema}".outbox IN ACCESS EXCLUSIVE MODE`);
    cleanup.push(() => locker.query('ROLLBACK'));
    const child = spawnCli(['status', '--schema', db.schema, '--statement-timeout-ms', '500']);
    expect(await exitOf(child), child.output()).toBe(1);
    expect(child.output()).toMatch(/did not finish a statement within 500 ms .*raise --statement-timeout-ms/);
  });

  it('relay with Postgres down logs a line per attempt and stops on SIGTERM; with --startup-timeout-ms it gives up with OF_UNAVAILABLE', async () => {
    const server = await startPrivatePostgres({ stopped: true });
    cleanup.push(() => server.dispose());
    const waiting = spawnCli(['relay', '--database-url', server.url, '--metrics-interval-ms', '0']);
    const pattern = new RegExp(`waiting for Postgres at 127\\.0\\.0\\.1:${server.port}`);
    await waiting.waitForLine(pattern);
    await waiting.waitForLine(/attempt 2 failed/);
    waiting.child.kill('SIGTERM');
    expect(await exitOf(waiting), waiting.output()).toBe(0);
    expect(waiting.output()).toMatch(/relay stopped before it started/);

    const bounded = spawnCli([
      'relay',
      '--database-url',
      server.url,
      '--metrics-interval-ms',
      '0',
      '--startup-timeout-ms',
      '500',
    ]);
    expect(await exitOf(bounded), bounded.output()).toBe(1);
    expect(bounded.output()).toMatch(
      new RegExp(`OF_UNAVAILABLE: outbox relay gave up .*Postgres at 127\\.0\\.0\\.1:${server.port}`),
    );
  });

  it('relay against a host that never answers logs its connect timeouts instead of hanging silently', async () => {
    const silent = await silentServer();
    cleanup.push(() => silent.close());
    const child = spawnCli([
      'relay',
      '--database-url',
      `postgres://postgres@127.0.0.1:${silent.port}/app`,
      '--connect-timeout-ms',
      '300',
      '--metrics-interval-ms',
      '0',
    ]);
    await child.waitForLine(/waiting for Postgres at .*connection timeout/);
    child.child.kill('SIGTERM');
    expect(await exitOf(child), child.output()).toBe(0);
  });
});
