import { type ChildProcess, spawn } from 'node:child_process';
import { buildWorkers, builtWorkerEntry } from './build-workers';
import { readyPrefix, resultPrefix } from './workers/lines';

export { buildWorkers, readyPrefix, resultPrefix };

/** A running bench worker process. */
export interface Worker<R> {
  child: ChildProcess;
  /** Resolves with the JSON after {@link readyPrefix}. */
  ready(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the worker's result once it printed it (and exited). */
  result(timeoutMs?: number): Promise<R>;
  /** Asks the worker to finish (SIGTERM) and resolves with its result. */
  finish(timeoutMs?: number): Promise<R>;
  /** Kills the worker if it still runs. */
  kill(): void;
}

/**
 * Runs one measured component (consumer, relay, server) in its own Node process, so its CPU, memory
 * and event loop are its own and its peak RSS can be read from `process.resourceUsage()`. It runs the
 * bundle `buildWorkers()` wrote: plain JavaScript on Node, no TypeScript loader in the process.
 * `BENCH_CPU_PROF=<dir>` writes a V8 CPU profile of every worker into that folder; `BENCH_VERBOSE=1`
 * (or `BENCH_QUERY_TIMING=1`, which also times every statement by kind) echoes their stderr.
 */
export function spawnWorker<R>(kind: string, params: Record<string, unknown>): Worker<R> {
  const profileDir = process.env.BENCH_CPU_PROF;
  // Default profile names carry the pid and thread id: the loader thread writes its own profile.
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...nodeArgs, builtWorkerEntry, kind], {
    env: { ...process.env, BENCH_PARAMS: JSON.stringify(params) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let buffered = '';
  const lineWaiters: Array<{ prefix: string; resolve: (json: unknown) => void }> = [];
  const seen = new Map<string, unknown>();
  const onLine = (line: string): void => {
    for (const prefix of [readyPrefix, resultPrefix]) {
      if (!line.startsWith(prefix)) continue;
      const json = JSON.parse(line.slice(prefix.length)) as unknown;
      seen.set(prefix, json);
      for (const waiter of lineWaiters.filter((w) => w.prefix === prefix)) {
        lineWaiters.splice(lineWaiters.indexOf(waiter), 1);
        waiter.resolve(json);
      }
    }
  };
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    output = (output + text).slice(-20_000);
    buffered += text;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  };
  child.stdout?.on('data', onData);
  const echo = process.env.BENCH_QUERY_TIMING === '1' || process.env.BENCH_VERBOSE === '1';
  child.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
    if (echo) process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitFor = <T>(prefix: string, timeoutMs: number): Promise<T> => {
    if (seen.has(prefix)) return Promise.resolve(seen.get(prefix) as T);
    return new Promise<T>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`bench worker ${kind} ${why}; its output:\n${output.slice(-4000)}`));
      };
      const timer = setTimeout(() => fail(`printed no ${prefix.trim()} within ${timeoutMs} ms`), timeoutMs);
      lineWaiters.push({
        prefix,
        resolve: (json) => {
          clearTimeout(timer);
          resolve(json as T);
        },
      });
      void exited.then((code) => {
        // Let the last stdout chunk arrive before deciding the line never came.
        setTimeout(() => {
          if (!seen.has(prefix)) fail(`exited with code ${code}`);
        }, 100);
      });
    });
  };

  return {
    child,
    ready: (timeoutMs = 120_000) => waitFor(readyPrefix, timeoutMs),
    async result(timeoutMs = 600_000) {
      const result = await waitFor<R>(resultPrefix, timeoutMs);
      await exited;
      return result;
    },
    finish(timeoutMs = 60_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return this.result(timeoutMs);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
