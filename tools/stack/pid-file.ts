import { existsSync, readFileSync, rmSync } from 'node:fs';

/** The pid recorded in `pidFile` when that process is still alive; a stale file is removed. */
export function alivePid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    rmSync(pidFile, { force: true });
    return undefined;
  }
}

/** Stops the process recorded in `pidFile`: SIGTERM, then SIGKILL after `graceMs`. Returns its pid. */
export async function stopPid(pidFile: string, graceMs = 30_000): Promise<number | undefined> {
  const pid = alivePid(pidFile);
  if (pid === undefined) return undefined;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alivePid(pidFile) !== undefined && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 250));
  if (alivePid(pidFile) !== undefined) process.kill(pid, 'SIGKILL');
  while (alivePid(pidFile) !== undefined) await new Promise((r) => setTimeout(r, 100));
  rmSync(pidFile, { force: true });
  return pid;
}
