import type { Pool } from 'pg';
import { type CliIo, main } from '../../packages/cli/src/index';
import { databaseUrl, serviceEnv, testKafka } from '../support';

/** Runs the `onceflow` CLI in-process against this run's services; resolves to its exit code and output. */
export async function runCli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { DATABASE_URL: databaseUrl(), ...serviceEnv() },
  };
  const code = await main(['node', 'onceflow', ...args], io);
  return { code, out, err };
}

/** Runs the CLI and fails with its stderr unless it exits with 0. */
export async function cliOk(...args: string[]): Promise<string[]> {
  const result = await runCli(...args);
  if (result.code !== 0)
    throw new Error(`onceflow ${args.join(' ')} exited ${result.code}:\n${result.err.join('\n')}`);
  return result.out;
}

/** The `poisoned` table the redrive fixtures fail on, and the effects table. */
export async function createRedriveTables(pool: Pool, schema: string): Promise<void> {
  await pool.query(`CREATE TABLE "${schema}".poisoned (message_id text PRIMARY KEY)`);
}

/** Effects as `id:instance` in the order they were written. */
export async function effectRows(pool: Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ message_id: string; instance: string | null }>(
    `SELECT message_id, instance FROM "${schema}".effects ORDER BY seq`,
  );
  return rows.map((row) => `${row.message_id}:${row.instance}`);
}

/** The state of a dead letter, or undefined. */
export async function deadLetterState(
  pool: Pool,
  schema: string,
  consumer: string,
  messageId: string,
): Promise<string | undefined> {
  const { rows } = await pool.query<{ state: string }>(
    `SELECT state FROM "${schema}".dead_letter WHERE consumer = $1 AND message_id = $2`,
    [consumer, messageId],
  );
  return rows[0]?.state;
}

/** The sum of a topic's partitions' high watermarks: what a caught-up consumer's positions add up to. */
export async function logEnd(topic: string): Promise<number> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, log) => sum + Number(log.high), 0);
  } finally {
    await admin.disconnect();
  }
}
