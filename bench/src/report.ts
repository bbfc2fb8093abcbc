import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where results go: bench/results/latest.json and a dated copy beside it. */
export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

/** One row of the printed table. */
interface Row {
  field: string;
  unit: string;
  target?: string;
  /** True when the figure meets its target. */
  meets?: (value: number) => boolean;
}

const rows: Row[] = [
  { field: 'raw_consume_msgs_per_s', unit: 'msg/s' },
  { field: 'naive_dedup_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_batch_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_batch_per_msg_handler_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_duplicates_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_ratio_to_raw', unit: '×', target: '≥ 0.6', meets: (v) => v >= 0.6 },
  { field: 'inbox_per_msg_handler_ratio_to_raw', unit: '×' },
  { field: 'inbox_speedup_vs_naive', unit: '×', target: '≥ 10', meets: (v) => v >= 10 },
  {
    field: 'inbox_duplicates_ratio_to_fresh',
    unit: '×',
    target: '≥ 1.5',
    meets: (v) => v >= 1.5,
  },
  { field: 'inbox_metrics_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_metrics_overhead_ratio', unit: '×', target: '≤ 1.05', meets: (v) => v <= 1.05 },
  { field: 'naive_dedup_msgs_per_s_sync_off', unit: 'msg/s' },
  { field: 'inbox_batch_msgs_per_s_sync_off', unit: 'msg/s' },
  { field: 'inbox_ratio_to_raw_sync_off', unit: '×', target: '≥ 0.5', meets: (v) => v >= 0.5 },
  { field: 'inbox_speedup_vs_naive_sync_off', unit: '×', target: '≥ 10', meets: (v) => v >= 10 },
  { field: 'raw_consumer_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'inbox_consumer_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'relay_naive_events_per_s', unit: 'ev/s' },
  { field: 'relay_drain_events_per_s', unit: 'ev/s', target: '≥ 20000', meets: (v) => v >= 20_000 },
  { field: 'relay_speedup_vs_naive', unit: '×', target: '≥ 20', meets: (v) => v >= 20 },
  { field: 'relay_metrics_events_per_s', unit: 'ev/s' },
  { field: 'relay_metrics_overhead_ratio', unit: '×', target: '≤ 1.05', meets: (v) => v <= 1.05 },
  { field: 'relay_drain_no_ledger_events_per_s', unit: 'ev/s' },
  { field: 'relay_ledger_cost_pct', unit: '%', target: '≤ 5', meets: (v) => v <= 5 },
  { field: 'relay_naive_events_per_s_sync_off', unit: 'ev/s' },
  { field: 'relay_drain_events_per_s_sync_off', unit: 'ev/s', target: '≥ 10000', meets: (v) => v >= 10_000 },
  { field: 'relay_speedup_vs_naive_sync_off', unit: '×', target: '≥ 20', meets: (v) => v >= 20 },
  { field: 'relay_latency_1k_offered_events_per_s', unit: 'ev/s' },
  { field: 'relay_latency_1k_p50_ms', unit: 'ms' },
  { field: 'relay_latency_1k_p99_ms', unit: 'ms', target: '≤ 20', meets: (v) => v <= 20 },
  { field: 'relay_latency_1k_max_ms', unit: 'ms' },
  { field: 'relay_latency_1k_warmup_p99_ms', unit: 'ms' },
  { field: 'relay_latency_1k_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'relay_latency_5k_offered_events_per_s', unit: 'ev/s' },
  { field: 'relay_latency_5k_p50_ms', unit: 'ms' },
  { field: 'relay_latency_5k_p99_ms', unit: 'ms', target: '≤ 50', meets: (v) => v <= 50 },
  { field: 'relay_latency_5k_max_ms', unit: 'ms' },
  { field: 'relay_latency_5k_warmup_p99_ms', unit: 'ms' },
  { field: 'relay_latency_5k_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'relay_latency_10k_offered_events_per_s', unit: 'ev/s' },
  { field: 'relay_latency_10k_p50_ms', unit: 'ms' },
  { field: 'relay_latency_10k_p99_ms', unit: 'ms', target: '≤ 250', meets: (v) => v <= 250 },
  { field: 'relay_latency_10k_max_ms', unit: 'ms' },
  { field: 'relay_latency_10k_warmup_p99_ms', unit: 'ms' },
  { field: 'relay_latency_10k_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'relay_latency_warmup_s', unit: 's' },
  { field: 'relay_latency_measured_s', unit: 's' },
  { field: 'relay_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'inbox_distinct_rows_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_hot_rows_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_hot_rows_ratio', unit: '×', target: '≥ 0.5', meets: (v) => v >= 0.5 },
  { field: 'inbox_hot_rows_rollbacks', unit: 'tx' },
  { field: 'inbox_1_process_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_2_processes_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_2_processes_ratio', unit: '×', target: '≥ 1 (no regression)', meets: (v) => v >= 1 },
  { field: 'inbox_24_partitions_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_24_partitions_ratio', unit: '×', target: '≥ 1 (no regression)', meets: (v) => v >= 1 },
  { field: 'inbox_2_processes_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'relay_1_relay_events_per_s', unit: 'ev/s' },
  { field: 'relay_2_relays_events_per_s', unit: 'ev/s' },
  { field: 'relay_2_relays_ratio', unit: '×', target: '≥ 1 (no regression)', meets: (v) => v >= 1 },
  { field: 'consumer_failover_s', unit: 's', target: '≤ 10', meets: (v) => v <= 10 },
  { field: 'consumer_broker_restart_resume_s', unit: 's', target: '≤ 10', meets: (v) => v <= 10 },
  { field: 'broker_restart_down_s', unit: 's' },
  { field: 'pipeline_offered_orders_per_s', unit: 'ord/s' },
  { field: 'pipeline_e2e_p50_ms', unit: 'ms' },
  { field: 'pipeline_e2e_p99_ms', unit: 'ms', target: '≤ 500', meets: (v) => v <= 500 },
  { field: 'pipeline_e2e_max_ms', unit: 'ms' },
  { field: 'http_plain_req_per_s', unit: 'req/s' },
  { field: 'http_idempotent_req_per_s', unit: 'req/s' },
  { field: 'http_replay_req_per_s', unit: 'req/s' },
  { field: 'http_idempotent_ratio_to_plain', unit: '×', target: '≥ 0.75', meets: (v) => v >= 0.75 },
  { field: 'http_replay_ratio_to_fresh', unit: '×', target: '> 1 (replay cheaper)', meets: (v) => v > 1 },
  { field: 'http_server_peak_rss_mb', unit: 'MiB', target: '≤ 150', meets: (v) => v <= 150 },
  { field: 'peer_inbox_msgs_per_s', unit: 'msg/s' },
  { field: 'peer_outbox_events_per_s', unit: 'ev/s' },
  { field: 'peer_logical_inbox_msgs_per_s', unit: 'msg/s' },
  { field: 'peer_logical_outbox_events_per_s', unit: 'ev/s' },
  { field: 'peer_best_inbox_msgs_per_s', unit: 'msg/s' },
  { field: 'peer_best_outbox_events_per_s', unit: 'ev/s' },
  { field: 'inbox_speedup_vs_peer', unit: '×', target: '≥ 3', meets: (v) => v >= 3 },
  { field: 'relay_speedup_vs_peer', unit: '×', target: '≥ 3', meets: (v) => v >= 3 },
  { field: 'peer_inbox_consumer_peak_rss_mb', unit: 'MiB' },
  { field: 'peer_relay_peak_rss_mb', unit: 'MiB' },
  { field: 'peer_logical_inbox_consumer_peak_rss_mb', unit: 'MiB' },
  { field: 'peer_logical_relay_peak_rss_mb', unit: 'MiB' },
  { field: 'inbox_untraced_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_traced_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_tracing_overhead_ratio', unit: '×', target: '≥ 0.95', meets: (v) => v >= 0.95 },
  { field: 'inbox_observed_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_observed_overhead_ratio', unit: '×', target: '≥ 0.95', meets: (v) => v >= 0.95 },
  { field: 'inbox_per_msg_handler_untraced_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_per_msg_handler_traced_msgs_per_s', unit: 'msg/s' },
  { field: 'inbox_per_msg_handler_tracing_overhead_ratio', unit: '×' },
  { field: 'inbox_per_msg_handler_observed_overhead_ratio', unit: '×' },
  { field: 'relay_untraced_events_per_s', unit: 'ev/s' },
  { field: 'relay_traced_events_per_s', unit: 'ev/s' },
  { field: 'relay_tracing_overhead_ratio', unit: '×', target: '≥ 0.95', meets: (v) => v >= 0.95 },
  { field: 'relay_observed_events_per_s', unit: 'ev/s' },
  { field: 'relay_observed_overhead_ratio', unit: '×', target: '≥ 0.95', meets: (v) => v >= 0.95 },
  { field: 'console_lookup_history_rows', unit: 'rows' },
  { field: 'console_lookup_p50_ms', unit: 'ms', target: '< 100', meets: (v) => v < 100 },
  { field: 'console_lookup_p99_ms', unit: 'ms', target: '< 100', meets: (v) => v < 100 },
  { field: 'console_lookup_max_ms', unit: 'ms' },
];

function formatNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) >= 1000) return value.toLocaleString('en-US');
  return String(value);
}

/** The results as a fixed-width table: field, value, unit, target and whether it is met. */
export function formatTable(results: Record<string, number | null>): string {
  const known = new Set(rows.map((r) => r.field));
  const all: Row[] = [
    ...rows,
    ...Object.keys(results)
      .filter((f) => !known.has(f))
      .map((field) => ({ field, unit: '' })),
  ];
  const lines = [`${'field'.padEnd(36)} ${'value'.padStart(10)}  ${'unit'.padEnd(6)} target`];
  lines.push('-'.repeat(80));
  for (const row of all) {
    if (!(row.field in results)) continue;
    const value = results[row.field];
    const shown = value === null || value === undefined ? 'n/a' : formatNumber(value);
    const verdict =
      row.target && typeof value === 'number' && row.meets ? (row.meets(value) ? 'met' : 'MISSED') : '';
    lines.push(
      `${row.field.padEnd(36)} ${shown.padStart(10)}  ${row.unit.padEnd(6)} ${row.target ? `${row.target} ${verdict}` : ''}`.trimEnd(),
    );
  }
  return lines.join('\n');
}

/** Writes `latest.json` and a dated copy (`YYYY-MM-DDTHH-MM-SS.json`); returns their paths. */
export function writeResults(report: { startedAt: string }): { latest: string; dated: string } {
  mkdirSync(resultsDir, { recursive: true });
  const text = `${JSON.stringify(report, null, 2)}\n`;
  const latest = `${resultsDir}latest.json`;
  const dated = `${resultsDir}${report.startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`;
  writeFileSync(latest, text);
  writeFileSync(dated, text);
  return { latest, dated };
}
