// After the run is verified: the poison order's card is fixed and its dead letter is redriven with the
// `onceflow dlq redrive` command line, then the database shows whether the redrive ran exactly once.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { quoteIdentifier } from '@onceflow/postgres';
import type { Pool } from 'pg';
import type { PipelineConfig } from './config';
import { poisonCustomer } from './events';
import { runToEnd } from './supervisor';
import type { VerificationRow } from './verify';

/** The `onceflow` command line's entry point (the workspace's @onceflow/cli). */
const cliEntry = join(
  dirname(createRequire(import.meta.url).resolve('@onceflow/cli/package.json')),
  'bin',
  'onceflow.js',
);

/** What the redrive of the poison order did. */
export interface RedriveOutcome {
  orderId: string;
  /** The command run, without the database URL. */
  command: string;
  exitCode: number | null;
  /** What the command printed. */
  output: string;
  /** The payments consumer's dead-letter row of the order after the redrive: its state and redrive count. */
  deadLetter: { state: string; redrives: number } | undefined;
  /** Effect rows of the order after the redrive, per table: each must be exactly 1. */
  effects: { payments: number; ledger: number; shipments: number; notifications: number };
  /** Milliseconds from the command's start until the order's notification row appeared. */
  durationMs: number;
  pass: boolean;
}

async function observe(pool: Pool, config: PipelineConfig, orderId: string) {
  const app = quoteIdentifier(config.appSchema);
  const { rows } = await pool.query<RedriveOutcome['effects']>(
    `SELECT (SELECT count(*) FROM ${app}.payments WHERE order_id = $1)::int AS payments,
            (SELECT count(*) FROM ${app}.ledger WHERE order_id = $1)::int AS ledger,
            (SELECT count(*) FROM ${app}.shipments WHERE order_id = $1)::int AS shipments,
            (SELECT count(*) FROM ${app}.notifications WHERE order_id = $1)::int AS notifications`,
    [orderId],
  );
  const dead = await pool.query<{ state: string; redrives: number }>(
    `SELECT state, redrives FROM ${quoteIdentifier(config.onceflowSchema)}.dead_letter
      WHERE consumer = 'payments' AND convert_from(key, 'UTF8') = $1`,
    [orderId],
  );
  return { effects: rows[0]!, deadLetter: dead.rows[0] };
}

/**
 * Fixes the poison order's card (deletes its `declined_cards` row), runs `onceflow dlq redrive
 * --consumer payments --yes` as a child process, waits (at most `timeoutMs`) until the order went
 * all the way to its notification, then reads its effect rows and its dead-letter row. PASS when the
 * command succeeded, the dead letter is `redriven` after one redrive and each effect row exists once.
 */
export async function redrivePoisonOrder(input: {
  pool: Pool;
  config: PipelineConfig;
  orderId: string;
  cwd: string;
  timeoutMs?: number;
}): Promise<RedriveOutcome> {
  const { pool, config, orderId } = input;
  await pool.query(`DELETE FROM ${quoteIdentifier(config.appSchema)}.declined_cards WHERE customer = $1`, [
    poisonCustomer,
  ]);
  const args = ['dlq', 'redrive', '--consumer', 'payments', '--schema', config.onceflowSchema, '--yes'];
  const startedAt = Date.now();
  const result = await runToEnd(cliEntry, args, {
    cwd: input.cwd,
    env: { DATABASE_URL: config.databaseUrl },
  });
  let seen = await observe(pool, config, orderId);
  const deadline = Date.now() + (input.timeoutMs ?? 60_000);
  while (
    result.code === 0 &&
    Date.now() < deadline &&
    (seen.effects.notifications === 0 || seen.deadLetter?.state !== 'redriven')
  ) {
    await sleep(250);
    seen = await observe(pool, config, orderId);
  }
  const durationMs = Date.now() - startedAt;
  // A second look after the pipeline had time to apply a second copy, had there been one.
  await sleep(1_000);
  seen = await observe(pool, config, orderId);
  const pass =
    result.code === 0 &&
    seen.deadLetter?.state === 'redriven' &&
    seen.deadLetter.redrives === 1 &&
    Object.values(seen.effects).every((n) => n === 1);
  return {
    orderId,
    command: `onceflow ${args.join(' ')}`,
    exitCode: result.code,
    output: result.output.trim(),
    deadLetter: seen.deadLetter,
    effects: seen.effects,
    durationMs,
    pass,
  };
}

/** The redrive as a row of the verification table. */
export function redriveRow(outcome: RedriveOutcome): VerificationRow {
  const e = outcome.effects;
  return {
    check: 'dead letter redriven once (card fixed)',
    expected: 'redriven, 1 payment/charge/shipment/notification',
    actual: `${outcome.deadLetter?.state ?? 'no dead letter'}, ${e.payments}/${e.ledger}/${e.shipments}/${e.notifications}`,
    pass: outcome.pass,
    detail: `\`${outcome.command}\` exited ${String(outcome.exitCode)}; the poison order's dead letter was redriven ${outcome.deadLetter?.redrives ?? 0} time(s) and reached its notification in ${outcome.durationMs} ms`,
  };
}
