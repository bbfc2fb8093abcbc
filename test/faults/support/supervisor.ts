// Runs the workload's processes the way a process supervisor would (systemd, Kubernetes): each one
// is started, watched, and started again when it dies. The difference with a real supervisor is
// the bookkeeping: an exit the nemesis did not cause is recorded as a failure of the run, with the
// process's last output, so a crash cannot hide behind the restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tsxLoader = require.resolve('tsx');

/** An exit nobody asked for. */
export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds since the run started. */
  atMs: number;
  /** The process's last output lines. */
  tail: string;
}

/** A supervised process. */
export interface Supervised {
  readonly name: string;
  /** Pid of the current incarnation. */
  pid(): number | undefined;
  /** Whether the current incarnation runs. */
  alive(): boolean;
  /** Everything every incarnation printed, in order. */
  output(): string;
  /** Resolves with the first line of the current incarnation matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Kills it with `signal` (default SIGKILL) on purpose and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a new incarnation (after {@link Supervised.kill}). */
  restart(): void;
  /**
   * Asks it to stop (SIGTERM) and resolves with its exit code; rejects when it is still running after
   * `timeoutMs`, since a stop that never ends is a hang.
   */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** What to run. */
export interface ProcessSpec {
  name: string;
  /** A TypeScript or JavaScript entry, run through tsx. */
  entry: string;
  args?: string[];
  env: Record<string, string>;
}

/** Starts, watches and restarts the processes of one scenario. */
export class Supervisor {
  private readonly startedAt = Date.now();
  private readonly processes: Supervised[] = [];
  private readonly exits: UnexpectedExit[] = [];
  private closing = false;

  /** `logDir`: where each process's whole output goes, one file per process name. */
  constructor(private readonly logDir: string) {
    mkdirSync(logDir, { recursive: true });
  }

  /** Exits that neither the nemesis nor the scenario caused. */
  unexpectedExits(): readonly UnexpectedExit[] {
    return this.exits;
  }

  /** Starts `spec` and restarts it after any exit that was not asked for (0.5 s, doubling up to 5 s). */
  start(spec: ProcessSpec): Supervised {
    const logFile = `${this.logDir}/${spec.name}.log`;
    let child: ChildProcess | undefined;
    let text = '';
    let incarnationStart = 0;
    // False once the scenario stopped or killed it: its exit is then expected and not restarted.
    let wanted = true;
    let exited: Promise<void> = Promise.resolve();
    const listeners = new Set<() => void>();
    // Like a supervisor's restart backoff, so that a process crashing at start does not spin.
    let crashes = 0;

    const launch = (): void => {
      wanted = true;
      incarnationStart = text.length;
      const marker = `--- ${spec.name} started at +${Date.now() - this.startedAt} ms\n`;
      appendFileSync(logFile, marker);
      const current = spawn(
        process.execPath,
        ['--conditions=@onceflow/source', '--import', tsxLoader, spec.entry, ...(spec.args ?? [])],
        {
          env: { ...process.env, ...spec.env },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      child = current;
      const onData = (chunk: Buffer): void => {
        const s = chunk.toString('utf8');
        text += s;
        // The in-memory copy keeps the recent past; the log file keeps everything.
        if (text.length > 4_000_000) {
          const cut = text.length - 2_000_000;
          text = text.slice(cut);
          incarnationStart = Math.max(0, incarnationStart - cut);
        }
        appendFileSync(logFile, s);
        for (const listener of [...listeners]) listener();
      };
      current.stdout?.on('data', onData);
      current.stderr?.on('data', onData);
      exited = new Promise<void>((resolve) =>
        current.once('exit', (code, signal) => {
          appendFileSync(logFile, `--- ${spec.name} exited code=${code} signal=${signal}\n`);
          for (const listener of [...listeners]) listener();
          resolve();
          if (!wanted || this.closing) return;
          this.exits.push({
            name: spec.name,
            code,
            signal,
            atMs: Date.now() - this.startedAt,
            tail: text.slice(-3_000),
          });
          crashes++;
          setTimeout(
            () => {
              if (wanted && !this.closing && child === current) launch();
            },
            Math.min(500 * 2 ** (crashes - 1), 5_000),
          );
        }),
      );
    };

    const isAlive = (): boolean =>
      child !== undefined && child.exitCode === null && child.signalCode === null;

    const handle: Supervised = {
      name: spec.name,
      pid: () => child?.pid,
      alive: isAlive,
      output: () => text,
      waitForLine(pattern, timeoutMs = 120_000) {
        return new Promise((resolve, reject) => {
          const check = (): boolean => {
            const line = text
              .slice(incarnationStart)
              .split('\n')
              .find((l) => pattern.test(l));
            if (line === undefined) return false;
            listeners.delete(listener);
            clearTimeout(timer);
            resolve(line);
            return true;
          };
          const listener = (): void => {
            check();
          };
          const timer = setTimeout(() => {
            listeners.delete(listener);
            reject(
              new Error(
                `${spec.name}: no line matching ${pattern} within ${timeoutMs} ms; output:\n${text.slice(-3_000)}`,
              ),
            );
          }, timeoutMs);
          listeners.add(listener);
          check();
        });
      },
      async kill(signal = 'SIGKILL') {
        wanted = false;
        if (isAlive()) child?.kill(signal);
        await exited;
      },
      restart() {
        if (isAlive()) throw new Error(`${spec.name} still runs; kill it first`);
        launch();
      },
      async stop(timeoutMs = 30_000) {
        wanted = false;
        if (!isAlive()) return child?.exitCode ?? null;
        child?.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        });
        const outcome = await Promise.race([exited, timedOut]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          child?.kill('SIGKILL');
          await exited;
          throw new Error(
            `${spec.name} did not stop within ${timeoutMs} ms of SIGTERM; output:\n${text.slice(-3_000)}`,
          );
        }
        return child?.exitCode ?? null;
      },
    };
    launch();
    this.processes.push(handle);
    return handle;
  }

  /** Kills whatever still runs, without counting it as a failure. */
  async closeAll(): Promise<void> {
    this.closing = true;
    await Promise.all(this.processes.map((p) => p.kill('SIGKILL')));
  }
}

/** How a process run to its end ended. */
export interface RunOutcome {
  /** Exit code; null when it was still running at the deadline (and then killed) or died by a signal. */
  code: number | null;
  /** Whether it was still running after `timeoutMs`. */
  timedOut: boolean;
  output: string;
}

/**
 * Runs `spec` until it exits by itself, or kills it after `timeoutMs`. For programs that must end on
 * their own (a command-line call, a process refusing its configuration): a hang shows as `timedOut`.
 */
export function runToExit(spec: ProcessSpec, timeoutMs: number): Promise<RunOutcome> {
  const child = spawn(
    process.execPath,
    ['--conditions=@onceflow/source', '--import', tsxLoader, spec.entry, ...(spec.args ?? [])],
    {
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const onData = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? null : code, timedOut, output });
    });
  });
}
