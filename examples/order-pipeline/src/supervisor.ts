import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const tsxLoader = createRequire(import.meta.url).resolve('tsx');

/** A pipeline process to run. */
export interface ProcessSpec {
  /** Short name, also the log file's name. */
  name: string;
  /** Absolute path of the TypeScript entry point. */
  entry: string;
  /** Environment on top of the runner's. */
  env: Record<string, string>;
  /** Extra environment for the first launch only (a fault armed once, not after the restart). */
  firstLaunchEnv?: Record<string, string>;
  /** Line the process prints once it serves; its first capture group, if any, is kept as `readyInfo`. */
  readyPattern: RegExp;
}

/** What happened to a process, for the live view and the report. */
export interface ProcessEvent {
  atMs: number;
  process: string;
  kind: 'started' | 'killed' | 'crashed' | 'restarted' | 'stopped';
  detail?: string;
}

/** A process the supervisor runs and restarts. */
export interface SupervisedProcess {
  readonly name: string;
  /** Restarts so far (after a kill or a crash). */
  readonly restarts: number;
  /** The capture of the ready line of the current incarnation. */
  readonly readyInfo: string | undefined;
  /** The /metrics URL the current incarnation printed (`<name> metrics <url>`), if any. */
  readonly metricsUrl: string | undefined;
  /** SIGKILLs it (no goodbye, no cleanup), waits `restartAfterMs`, starts it again and waits until it is ready. */
  killAndRestart(restartAfterMs: number): Promise<void>;
  /** Asks it to stop (SIGTERM), SIGKILLs it after `graceMs`, and does not restart it. */
  stop(graceMs?: number): Promise<void>;
  /** The end of its output, for error messages. */
  tail(): string;
}

/** Starts pipeline processes with `node --import tsx`, logs their output to files and restarts them when they die. */
export interface Supervisor {
  /** Starts a process and resolves once it printed its ready line (fails after `readyTimeoutMs`). */
  start(spec: ProcessSpec): Promise<SupervisedProcess>;
  /** Stops every process. */
  stopAll(): Promise<void>;
  readonly events: ProcessEvent[];
}

/** Creates a supervisor writing `<name>.log` files into `logDirectory`. */
export function createSupervisor(options: {
  logDirectory: string;
  cwd: string;
  startedAt: number;
  readyTimeoutMs?: number;
  /** Delay before a process that died on its own is started again, in ms. Default: 500. */
  crashRestartDelayMs?: number;
}): Supervisor {
  const events: ProcessEvent[] = [];
  const all: SupervisedProcess[] = [];
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const note = (process: string, kind: ProcessEvent['kind'], detail?: string) =>
    events.push({ atMs: Date.now() - options.startedAt, process, kind, ...(detail ? { detail } : {}) });

  function start(spec: ProcessSpec): Promise<SupervisedProcess> {
    const log: WriteStream = createWriteStream(join(options.logDirectory, `${spec.name}.log`), {
      flags: 'a',
    });
    let child: ChildProcess | undefined;
    let tailText = '';
    let restarts = 0;
    let readyInfo: string | undefined;
    let metricsUrl: string | undefined;
    let stopping = false;
    let expectedExit = false;
    let launches = 0;

    const launch = (): Promise<void> => {
      launches++;
      expectedExit = false;
      readyInfo = undefined;
      metricsUrl = undefined;
      const env = { ...process.env, ...spec.env, ...(launches === 1 ? spec.firstLaunchEnv : {}) };
      const proc = spawn(
        process.execPath,
        ['--conditions=@onceflow/source', '--import', tsxLoader, spec.entry],
        {
          cwd: options.cwd,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      child = proc;
      return new Promise<void>((resolve, reject) => {
        let buffered = '';
        let ready = false;
        const timer = setTimeout(() => {
          if (!ready)
            reject(new Error(`${spec.name} was not ready within ${readyTimeoutMs} ms:\n${tailText}`));
        }, readyTimeoutMs);
        const onData = (chunk: Buffer) => {
          log.write(chunk);
          tailText = (tailText + chunk.toString('utf8')).slice(-4000);
          if (ready) return;
          buffered += chunk.toString('utf8');
          for (const line of buffered.split('\n')) {
            metricsUrl = /^\S+ metrics (http\S+)$/.exec(line)?.[1] ?? metricsUrl;
            const match = spec.readyPattern.exec(line);
            if (match) {
              ready = true;
              readyInfo = match[1];
              clearTimeout(timer);
              resolve();
              break;
            }
          }
        };
        proc.stdout?.on('data', onData);
        proc.stderr?.on('data', onData);
        proc.once('exit', (code, signal) => {
          clearTimeout(timer);
          log.write(`\n--- exited (${signal ?? code}) ---\n`);
          if (!ready)
            reject(new Error(`${spec.name} exited (${signal ?? code}) before it was ready:\n${tailText}`));
          if (stopping || expectedExit || child !== proc) return;
          // Died on its own (a fault armed in it, or a bug): bring it back like an orchestrator would.
          note(spec.name, 'crashed', `exit ${signal ?? code}`);
          restarts++;
          setTimeout(() => {
            if (stopping) return;
            launch().then(
              () => note(spec.name, 'restarted'),
              (error: Error) => note(spec.name, 'crashed', error.message.split('\n')[0]),
            );
          }, options.crashRestartDelayMs ?? 500);
        });
      });
    };

    const waitExit = (proc: ChildProcess | undefined): Promise<void> =>
      new Promise((resolve) => {
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
      });

    const handle: SupervisedProcess = {
      name: spec.name,
      get restarts() {
        return restarts;
      },
      get readyInfo() {
        return readyInfo;
      },
      get metricsUrl() {
        return metricsUrl;
      },
      async killAndRestart(restartAfterMs) {
        const proc = child;
        expectedExit = true;
        proc?.kill('SIGKILL');
        await waitExit(proc);
        note(spec.name, 'killed', 'SIGKILL');
        await new Promise((r) => setTimeout(r, restartAfterMs));
        if (stopping) return;
        restarts++;
        await launch();
        note(spec.name, 'restarted');
      },
      async stop(graceMs = 10_000) {
        stopping = true;
        const proc = child;
        if (proc && proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGTERM');
          const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
          await waitExit(proc);
          clearTimeout(timer);
        }
        note(spec.name, 'stopped');
        await new Promise<void>((resolve) => log.end(resolve));
      },
      tail: () => tailText,
    };
    all.push(handle);
    return launch().then(() => {
      note(spec.name, 'started');
      return handle;
    });
  }

  return {
    start,
    events,
    async stopAll() {
      await Promise.all(all.map((p) => p.stop()));
    },
  };
}

/** What {@link runToEnd} returns. */
export interface CommandResult {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  /** Its stdout and stderr, interleaved. */
  output: string;
}

/**
 * Runs a TypeScript entry point to its end the way the supervisor starts processes (`node --import
 * tsx` on the sources), e.g. the `onceflow` command line, and returns its exit code and output.
 */
export function runToEnd(
  entry: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ['--conditions=@onceflow/source', '--import', tsxLoader, entry, ...args],
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    proc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    proc.once('error', reject);
    proc.once('exit', (code) => resolve({ code, output }));
  });
}
