import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { serviceEnv } from './services';

const require = createRequire(import.meta.url);
const tsxLoader = require.resolve('tsx');
const sourceCondition = '--conditions=@onceflow/source';

/** A child process running a TypeScript entry. */
export interface ChildHandle {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first output line matching `pattern`, failing after `timeoutMs` (default 60 s). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGKILL) and resolves with the exit code once it is gone. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs a TypeScript file in its own Node process (through tsx, from the packages' sources), with this run's KAFKA_BROKERS and
 * DATABASE_URL in its environment: the way to crash a consumer, relay or server for real.
 */
export function spawnTs(
  entry: string,
  options: { env?: Record<string, string>; args?: string[] } = {},
): ChildHandle {
  // `@onceflow/source` resolves the workspace packages to their TypeScript sources: no build needed.
  const child = spawn(
    process.execPath,
    [sourceCondition, '--import', tsxLoader, entry, ...(options.args ?? [])],
    {
      env: { ...process.env, ...serviceEnv(), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onData = (chunk: Buffer): void => {
    text += chunk.toString('utf8');
    for (const waiter of [...waiters]) {
      const line = text.split('\n').find((l) => waiter.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => text,
    waitForLine(pattern, timeoutMs = 60_000) {
      const line = text.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(
            waiters.findIndex((w) => w.pattern === pattern),
            1,
          );
          reject(
            new Error(
              `no line matching ${pattern} within ${timeoutMs} ms; output so far:\n${text.slice(-4000)}`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then(() => {
          // A process that died without printing the line fails fast instead of waiting out the timeout.
          setTimeout(() => {
            if (waiters.some((w) => w.pattern === pattern)) {
              clearTimeout(timer);
              reject(
                new Error(
                  `process exited before printing a line matching ${pattern}; output:\n${text.slice(-4000)}`,
                ),
              );
            }
          }, 50);
        });
      });
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
