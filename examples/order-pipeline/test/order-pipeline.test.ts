import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokers, databaseUrl, uniqueName } from '@onceflow/test/support';
import { describe, expect, it } from 'vitest';
import { consumerNames, loadConfig } from '../src/config';
import { expectedHops } from '../src/observations';
import type { DemoReport } from '../src/report';
import { runDemo } from '../src/run-demo';

const timeoutMs = 300_000;

async function demo(options: { orders: number; seed: number; unprotected?: 'fulfilment'[] }) {
  const dir = await mkdtemp(join(tmpdir(), 'order-pipeline-test-'));
  return runDemo({
    orders: options.orders,
    chaos: true,
    seed: options.seed,
    brokers: brokers(),
    databaseUrl: databaseUrl(),
    namespace: uniqueName('op'),
    reportPath: join(dir, 'demo-report.json'),
    output: 'silent',
    concurrency: 8,
    ...(options.unprotected ? { unprotected: options.unprotected } : {}),
  });
}

function row(report: DemoReport, check: string) {
  const found = report.verification.rows.find((r) => r.check === check);
  if (!found) throw new Error(`no row "${check}" in the verification table`);
  return found;
}

describe('order pipeline demo', () => {
  it(
    'under full chaos every accepted order is paid, charged, shipped and notified exactly once, and the poison order is dead-lettered',
    async () => {
      const result = await demo({ orders: 250, seed: 11 });
      const { report } = result;
      // The whole table, so a failure shows which invariant broke and by how much.
      expect(
        report.verification.rows.filter((r) => !r.pass),
        result.table,
      ).toEqual([]);
      expect(report.passed).toBe(true);
      expect(report.load.accepted).toBe(250);
      expect(row(report, 'payments = accepted orders - poison').actual).toBe('249');
      expect(row(report, 'chaos schedule carried out').pass).toBe(true);
      for (const account of report.verification.duplicates) {
        expect(account.delivered, `${account.consumer} was handed no duplicates`).toBeGreaterThan(0);
        expect(account.doubleEffects).toBe(0);
      }
      expect(report.verification.deadLetters.distinct).toBe(1);
      expect(report.verification.deadLetters.reason).toBe('handler-failed');

      // Once its card is fixed, the poison order's dead letter is redriven by `onceflow dlq redrive`:
      // the row says redriven after one redrive, and the order's effects exist exactly once.
      const redrive = report.redrive!;
      expect(redrive.exitCode, redrive.output).toBe(0);
      expect(redrive.output).toContain('redrive requested for 1');
      expect(redrive.deadLetter).toEqual({ state: 'redriven', redrives: 1 });
      expect(redrive.effects).toEqual({ payments: 1, ledger: 1, shipments: 1, notifications: 1 });
      expect(row(report, 'dead letter redriven once (card fixed)').pass).toBe(true);

      // One order's trace from the span files: every hop, first seen in flow order, the request's
      // hops in one trace with the right parents, the batch handler's in a trace of its own.
      const trace = report.exampleTrace!;
      const names = trace.hops.map((h) => h.name);
      const hops = expectedHops(loadConfig({ DEMO_NAMESPACE: report.namespace }).topics);
      const first = hops.map((h) => names.indexOf(h));
      expect(
        first.every((i) => i >= 0),
        names.join('\n'),
      ).toBe(true);
      expect(first, names.join('\n')).toEqual([...first].sort((a, b) => a - b));
      const hop = (name: string) => trace.hops[names.indexOf(name)]!;
      const [request, createPlaced, sendPlaced, processPlaced, createCaptured] = hops.map(hop);
      expect(createPlaced!.parentSpanId).toBe(request!.spanId);
      expect(sendPlaced!.parentSpanId).toBe(createPlaced!.spanId);
      expect(processPlaced!.parentSpanId).toBe(createPlaced!.spanId);
      expect(createCaptured!.parentSpanId).toBe(processPlaced!.spanId);
      expect(new Set([request, createPlaced, sendPlaced, processPlaced].map((h) => h!.traceId)).size).toBe(1);
      expect(hop(hops[7]!).parentSpanId).toBe(hop(hops[6]!).spanId);
      expect(trace.traceIds).toHaveLength(2);

      // The metrics each process served agree with the report's counts (counters start with each
      // incarnation, so a restarted consumer's figures are a part of the whole).
      for (const consumer of consumerNames) {
        const m = report.metrics.find((x) => x.process === consumer)!;
        const account = report.verification.duplicates.find((d) => d.consumer === consumer)!;
        const summary = JSON.stringify(m);
        expect(m.received!, summary).toBeGreaterThanOrEqual(
          m.processed! + m.duplicatesSkipped! + m.deadLettered!,
        );
        if (m.restarts === 0) {
          // Every order's message once, the poison order's by its redrive; every duplicate skipped.
          expect(m.processed, summary).toBe(report.load.accepted);
          expect(m.duplicatesSkipped!, summary).toBeGreaterThanOrEqual(account.delivered);
          expect(m.deadLettered, summary).toBe(consumer === 'payments' ? 1 : 0);
        } else {
          expect(m.processed!, summary).toBeLessThanOrEqual(report.load.accepted);
          expect(m.deadLettered!, summary).toBeLessThanOrEqual(consumer === 'payments' ? 1 : 0);
        }
      }
      expect(report.metrics.find((m) => m.process === 'relay')!.published).toBeGreaterThan(0);
      expect(result.observations).toContain('metrics scraped');
      expect(result.observations).toContain(`example trace of order ${trace.orderId}`);
      // The report files say the same as the returned report.
      const written = JSON.parse(await readFile(result.reportPath, 'utf8')) as DemoReport;
      expect(written.verification.rows).toEqual(report.verification.rows);
      const html = await readFile(result.htmlPath, 'utf8');
      expect(html).toContain('<svg');
      expect(html).toContain('dead letters = 1');
    },
    timeoutMs,
  );

  it(
    'a fulfilment consumer without the inbox double-ships under duplicates, and the verifier reports FAIL',
    async () => {
      const { report, table } = await demo({ orders: 120, seed: 5, unprotected: ['fulfilment'] });
      expect(report.passed, table).toBe(false);
      // The injected duplicates reach the plain consumer, which applies them again.
      expect(row(report, 'chaos schedule carried out').pass, table).toBe(true);
      const fulfilment = report.verification.duplicates.find((d) => d.consumer === 'fulfilment')!;
      expect(fulfilment.doubleEffects, table).toBeGreaterThan(0);
      expect(row(report, 'shipments = accepted orders - poison').pass, table).toBe(false);
      expect(row(report, 'inventory decremented exactly once per order').pass, table).toBe(false);
      expect(row(report, 'fulfilment: duplicates delivered = suppressed').pass, table).toBe(false);
      // The consumers that kept their inbox stay exact.
      expect(row(report, 'payments = accepted orders - poison').pass, table).toBe(true);
      expect(row(report, 'ledger charges = accepted orders - poison').pass, table).toBe(true);
      // Notifications keeps its inbox: the extra shipments reach it as new events, none is applied twice.
      expect(row(report, 'notifications: duplicates delivered = suppressed').pass, table).toBe(true);
    },
    timeoutMs,
  );
});
