import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LoadStats } from './load';
import type { ExampleTrace, ProcessMetrics } from './observations';
import type { RedriveOutcome } from './redrive';
import type { ProcessEvent } from './supervisor';
import type { Verification, VerificationRow } from './verify';

/** One sample of the live counters, taken about once a second. */
export interface ProgressSample {
  /** Milliseconds since the run started. */
  atMs: number;
  ordersAccepted: number;
  /** Records on the three event topics (duplicates included). */
  eventsPublished: number;
  payments: number;
  shipments: number;
  notifications: number;
  /** Duplicates handed to the consumers that changed nothing, so far (all consumers). */
  duplicatesSuppressed: number;
  restarts: number;
}

/** Everything a run produced; written as demo-report.json. */
export interface DemoReport {
  passed: boolean;
  seed: number;
  orders: number;
  chaos: boolean;
  namespace: string;
  /** Consumers run without the inbox (to show what the verifier catches). */
  unprotected: string[];
  startedAt: string;
  durationMs: number;
  schedule: string[];
  load: LoadStats;
  injectedDuplicates: Record<string, number>;
  processEvents: ProcessEvent[];
  verification: Verification;
  samples: ProgressSample[];
  /** Key figures scraped from each process's /metrics at the end (since its last start). */
  metrics: ProcessMetrics[];
  /** One order's hops, assembled from the processes' span files. */
  exampleTrace?: ExampleTrace;
  /** The poison order's redrive after its card was fixed. */
  redrive?: RedriveOutcome;
}

/** The verification table as aligned text, one row per check, PASS/FAIL first. */
export function formatTable(rows: VerificationRow[]): string {
  const headers = ['', 'check', 'expected', 'actual'];
  const cells = rows.map((r) => [r.pass ? 'PASS' : 'FAIL', r.check, r.expected, r.actual]);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

/** A small line chart as inline SVG: x is seconds, one polyline per series, vertical marks for process events. */
function svgChart(title: string, series: Series[], marks: Array<{ atS: number; label: string }>): string {
  const width = 760;
  const height = 220;
  const pad = { left: 50, right: 130, top: 24, bottom: 28 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(1, ...xs, ...marks.map((m) => m.atS));
  const yMax = Math.max(1, ...ys);
  const x = (v: number) => pad.left + (v / xMax) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="${pad.left}" y="14" font-weight="bold">${escapeHtml(title)}</text>`,
    `<line x1="${pad.left}" y1="${y(0)}" x2="${width - pad.right}" y2="${y(0)}" stroke="#888"/>`,
    `<line x1="${pad.left}" y1="${y(0)}" x2="${pad.left}" y2="${pad.top}" stroke="#888"/>`,
    `<text x="${pad.left - 4}" y="${y(yMax) + 4}" text-anchor="end">${Math.round(yMax)}</text>`,
    `<text x="${pad.left - 4}" y="${y(0) + 4}" text-anchor="end">0</text>`,
    `<text x="${width - pad.right}" y="${height - 8}" text-anchor="end">${Math.round(xMax)} s</text>`,
  ];
  for (const m of marks)
    parts.push(
      `<line x1="${x(m.atS)}" y1="${pad.top}" x2="${x(m.atS)}" y2="${y(0)}" stroke="#d33" stroke-dasharray="3,3"><title>${escapeHtml(m.label)}</title></line>`,
    );
  series.forEach((s, i) => {
    const pts = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"/>`);
    parts.push(
      `<text x="${width - pad.right + 8}" y="${pad.top + 14 * i + 8}" fill="${s.color}">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Per-second rate of a cumulative counter. */
function rate(samples: ProgressSample[], pick: (s: ProgressSample) => number): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = (b.atMs - a.atMs) / 1000;
    if (dt > 0) points.push([b.atMs / 1000, Math.max(0, (pick(b) - pick(a)) / dt)]);
  }
  return points;
}

/** The report as a standalone HTML page: the verification table and two inline SVG charts. */
export function renderHtml(report: DemoReport): string {
  const marks = report.processEvents
    .filter((e) => e.kind === 'killed' || e.kind === 'crashed')
    .map((e) => ({ atS: e.atMs / 1000, label: `${e.process} ${e.kind}` }));
  const throughput = svgChart(
    'Throughput (per second)',
    [
      { name: 'orders accepted', color: '#1f77b4', points: rate(report.samples, (s) => s.ordersAccepted) },
      { name: 'payments', color: '#ff7f0e', points: rate(report.samples, (s) => s.payments) },
      { name: 'shipments', color: '#2ca02c', points: rate(report.samples, (s) => s.shipments) },
      { name: 'notifications', color: '#9467bd', points: rate(report.samples, (s) => s.notifications) },
    ],
    marks,
  );
  const duplicates = svgChart(
    'Duplicates suppressed (cumulative)',
    [
      {
        name: 'suppressed',
        color: '#d62728',
        points: report.samples.map((s) => [s.atMs / 1000, s.duplicatesSuppressed] as [number, number]),
      },
    ],
    marks,
  );
  const rows = report.verification.rows
    .map(
      (r) =>
        `<tr class="${r.pass ? 'pass' : 'fail'}"><td>${r.pass ? 'PASS' : 'FAIL'}</td><td>${escapeHtml(r.check)}</td><td>${escapeHtml(r.expected)}</td><td>${escapeHtml(r.actual)}</td><td>${escapeHtml(r.detail ?? '')}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>onceflow order pipeline: ${report.passed ? 'PASS' : 'FAIL'}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
tr.pass td:first-child{color:#080;font-weight:bold}tr.fail td:first-child{color:#c00;font-weight:bold}</style></head>
<body>
<h1>onceflow order pipeline: ${report.passed ? 'PASS' : 'FAIL'}</h1>
<p>${report.orders} orders, chaos ${report.chaos ? 'on' : 'off'}, seed ${report.seed}, ${(report.durationMs / 1000).toFixed(1)} s${report.unprotected.length ? `, <b>without the inbox: ${escapeHtml(report.unprotected.join(', '))}</b>` : ''}.</p>
<table><tr><th></th><th>check</th><th>expected</th><th>actual</th><th>detail</th></tr>
${rows}
</table>
<h2>Over time</h2>
<p>Dashed red lines: a process was killed or crashed.</p>
${throughput}
${duplicates}
<h2>Chaos schedule</h2>
<ul>${report.schedule.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>
</body></html>
`;
}

/** Writes the report as JSON at `jsonPath` and as HTML next to it (`.html`). Returns the HTML path. */
export async function writeReport(report: DemoReport, jsonPath: string): Promise<string> {
  await mkdir(dirname(jsonPath), { recursive: true });
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  const htmlPath = `${jsonPath.replace(/\.json$/, '')}.html`;
  await writeFile(htmlPath, renderHtml(report));
  return htmlPath;
}
