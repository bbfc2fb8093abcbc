import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { brokers, databaseUrl } from '../../test/support';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const latest = fileURLToPath(new URL('../results/latest.json', import.meta.url));

// Every figure `--quick` must produce; their values are not asserted (speed lives in the report). The
// scenarios that start servers of their own (broker restart, the peer's logical-replication mode) run
// only in the full run.
const expectedFields = [
  'raw_consume_msgs_per_s',
  'naive_dedup_msgs_per_s',
  'inbox_batch_msgs_per_s',
  'inbox_batch_per_msg_handler_msgs_per_s',
  'inbox_duplicates_msgs_per_s',
  'inbox_ratio_to_raw',
  'inbox_per_msg_handler_ratio_to_raw',
  'inbox_speedup_vs_naive',
  'inbox_consumer_peak_rss_mb',
  'relay_drain_events_per_s',
  'relay_naive_events_per_s',
  'relay_latency_1k_p50_ms',
  'relay_latency_1k_p99_ms',
  'relay_latency_5k_p50_ms',
  'relay_latency_5k_p99_ms',
  'relay_latency_10k_p50_ms',
  'relay_latency_10k_p99_ms',
  'relay_peak_rss_mb',
  'http_plain_req_per_s',
  'http_idempotent_req_per_s',
  'http_replay_req_per_s',
  'peer_inbox_msgs_per_s',
  'peer_outbox_events_per_s',
  'peer_best_inbox_msgs_per_s',
  'peer_best_outbox_events_per_s',
  'inbox_hot_rows_msgs_per_s',
  'inbox_hot_rows_ratio',
  'inbox_2_processes_ratio',
  'inbox_24_partitions_ratio',
  'relay_2_relays_ratio',
  'consumer_failover_s',
  'pipeline_e2e_p99_ms',
  'inbox_tracing_overhead_ratio',
  'inbox_observed_overhead_ratio',
  'relay_tracing_overhead_ratio',
  'relay_observed_overhead_ratio',
  'relay_ledger_cost_pct',
  'console_lookup_p99_ms',
];

describe('pnpm bench --quick', () => {
  it('runs every scenario and writes results JSON with the machine, the settings and every expected field', async () => {
    const before = Date.now();
    // The sources, as `pnpm bench` runs them (no build needed).
    await run(
      process.execPath,
      ['--conditions=@onceflow/source', '--import', require.resolve('tsx'), main, '--quick'],
      {
        env: { ...process.env, KAFKA_BROKERS: brokers().join(','), DATABASE_URL: databaseUrl() },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 900_000,
      },
    );
    expect(statSync(latest).mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    const report = JSON.parse(readFileSync(latest, 'utf8')) as {
      mode: string;
      machine: Record<string, unknown>;
      postgres: { synchronous_commit: string };
      results: Record<string, unknown>;
      failures: string[];
    };
    expect(report.mode).toBe('quick');
    expect(report.failures).toEqual([]);
    for (const field of ['cores', 'node', 'postgres', 'kafka']) expect(report.machine[field]).toBeDefined();
    expect(report.postgres.synchronous_commit).toMatch(/^(on|off|local|remote_write|remote_apply)$/);
    for (const field of expectedFields) {
      expect(report.results, field).toHaveProperty(field);
      const value = report.results[field];
      expect(value === null || (typeof value === 'number' && Number.isFinite(value)), field).toBe(true);
    }
  }, 900_000);
});
