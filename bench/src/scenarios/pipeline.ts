import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../../../examples/order-pipeline/src/run-demo';
import type { BenchContext } from '../context';

/**
 * The order pipeline of examples/order-pipeline (API, relay, payments, fulfilment, notifications, five
 * processes) with chaos off, at a steady offered rate: the end-to-end latency from the order row
 * committed by the API to the notification row committed by the last consumer (database clock), and
 * the demo's own verification (every effect once) as a check.
 */
export async function runPipelineGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const dir = mkdtempSync(join(tmpdir(), 'onceflow-bench-pipeline-'));
  ctx.log(
    `pipeline: ${config.pipelineOrders} orders at ${config.pipelineRate} orders/s, chaos off (examples/order-pipeline)`,
  );
  try {
    const { report } = await runDemo({
      orders: config.pipelineOrders,
      chaos: false,
      rate: config.pipelineRate,
      brokers: ctx.services.brokers,
      databaseUrl: ctx.services.databaseUrl,
      namespace: `${ctx.runId}_pipe`,
      reportPath: join(dir, 'report.json'),
      output: 'silent',
      log: () => undefined,
    });
    const { latencyMs, rows } = report.verification;
    const failed = rows.filter((row) => !row.pass);
    if (failed.length > 0)
      ctx.notes.push(
        `pipeline: verification failed: ${failed.map((row) => `${row.check}: ${row.actual}`).join('; ')}`,
      );
    ctx.log(
      `  pipeline               ${latencyMs.measured} orders: order → notification p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, max ${latencyMs.max} ms (${(report.durationMs / 1000).toFixed(1)} s)`,
    );
    results.pipeline_offered_orders_per_s = config.pipelineRate;
    results.pipeline_e2e_p50_ms = latencyMs.p50;
    results.pipeline_e2e_p99_ms = latencyMs.p99;
    results.pipeline_e2e_max_ms = latencyMs.max;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
