// The report's view from the processes' own instruments: key figures scraped from each /metrics at
// the end of the run, and one order's trace assembled from the span files the processes wrote.
import { readFile } from 'node:fs/promises';
import type { SpanLine } from './observability';

/** Key figures of one process's /metrics, counted since the process last started. */
export interface ProcessMetrics {
  process: string;
  url: string;
  /** Restarts before the incarnation that was scraped: its counters miss what earlier ones did. */
  restarts: number;
  /** Inbox consumers: `onceflow_inbox_*_total` summed over topics (and reasons, causes). */
  received?: number;
  processed?: number;
  duplicatesSkipped?: number;
  deadLettered?: number;
  handlerRetries?: number;
  /** Relay: `onceflow_relay_events_published_total`. */
  published?: number;
}

/** One sample of Prometheus's text format: the metric name, its labels and its value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus's text exposition format (the subset prom-client writes). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Scrapes `url` and keeps the figures the report shows. */
export async function scrapeProcess(process: string, url: string, restarts: number): Promise<ProcessMetrics> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  const samples = parsePrometheusText(await response.text());
  const sum = (name: string, labels: Record<string, string> = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0);
  const figures: ProcessMetrics = { process, url, restarts };
  if (samples.some((s) => s.name.startsWith('onceflow_inbox_') && s.labels.consumer === process)) {
    const mine = { consumer: process };
    figures.received = sum('onceflow_inbox_messages_received_total', mine);
    figures.processed = sum('onceflow_inbox_messages_processed_total', mine);
    figures.duplicatesSkipped = sum('onceflow_inbox_duplicates_skipped_total', mine);
    figures.deadLettered = sum('onceflow_inbox_messages_dead_lettered_total', mine);
    figures.handlerRetries = sum('onceflow_inbox_retries_total', { ...mine, cause: 'handler' });
  }
  if (samples.some((s) => s.name === 'onceflow_relay_events_published_total'))
    figures.published = sum('onceflow_relay_events_published_total');
  return figures;
}

/** The metrics part of the report as aligned text. */
export function formatMetrics(metrics: ProcessMetrics[]): string {
  const headers = [
    'process',
    'restarts',
    'received',
    'processed',
    'dup skipped',
    'dead-lettered',
    'retries',
    'published',
  ];
  const show = (n: number | undefined) => (n === undefined ? '-' : String(n));
  const cells = metrics.map((m) => [
    m.process,
    String(m.restarts),
    show(m.received),
    show(m.processed),
    show(m.duplicatesSkipped),
    show(m.deadLettered),
    show(m.handlerRetries),
    show(m.published),
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    "metrics scraped from each process's /metrics at the end (counted since its last start):",
    line(headers),
    ...cells.map(line),
  ].join('\n');
}

/** One hop of the example trace. */
export interface TraceHop {
  /** Milliseconds from the trace's first span's start. */
  atMs: number;
  durationMs: number;
  process: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
}

/** One order's way through the pipeline, from the spans every process wrote. */
export interface ExampleTrace {
  orderId: string;
  /** Trace ids the hops belong to (a batch handler's span starts a trace of its own, linked to the messages). */
  traceIds: string[];
  hops: TraceHop[];
}

/** Reads the JSON-lines span files, skipping a line cut short by a SIGKILL. */
export async function readSpanFiles(files: string[]): Promise<SpanLine[]> {
  const spans: SpanLine[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        spans.push(JSON.parse(line) as SpanLine);
      } catch {
        // The last line of a killed process may be incomplete.
      }
    }
  }
  return spans;
}

const keyAttribute = 'messaging.kafka.message.key';

/**
 * The spans of one order: every span keyed by the order id (each `create`, `send` and per-message
 * `process`), their ancestors (the `idempotency POST /orders` request, the fulfilment batch's
 * `process` span) and the batch spans linking to them, by start time.
 */
export function assembleTrace(spans: SpanLine[], orderId: string): ExampleTrace {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const picked = new Map<string, SpanLine>();
  for (const span of spans) if (span.attributes[keyAttribute] === orderId) picked.set(span.spanId, span);
  for (const span of spans) if (span.links.some((l) => picked.has(l.spanId))) picked.set(span.spanId, span);
  for (const span of [...picked.values()]) {
    let parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined;
    while (parent && !picked.has(parent.spanId)) {
      picked.set(parent.spanId, parent);
      parent = parent.parentSpanId ? byId.get(parent.parentSpanId) : undefined;
    }
  }
  const ordered = [...picked.values()].sort((a, b) => a.startUs - b.startUs);
  const origin = ordered[0]?.startUs ?? 0;
  return {
    orderId,
    traceIds: [...new Set(ordered.map((s) => s.traceId))],
    hops: ordered.map((s) => ({
      atMs: (s.startUs - origin) / 1000,
      durationMs: s.durationUs / 1000,
      process: s.process,
      name: s.name,
      traceId: s.traceId,
      spanId: s.spanId,
      ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
    })),
  };
}

/** The hop names a whole order has, given the pipeline's topics in flow order. */
export function expectedHops(topics: { orderPlaced: string; paymentCaptured: string; orderShipped: string }) {
  const t = topics;
  return [
    'idempotency POST /orders',
    `create ${t.orderPlaced}`,
    `send ${t.orderPlaced}`,
    `process ${t.orderPlaced}`,
    `create ${t.paymentCaptured}`,
    `send ${t.paymentCaptured}`,
    `process ${t.paymentCaptured}`,
    `create ${t.orderShipped}`,
    `send ${t.orderShipped}`,
    `process ${t.orderShipped}`,
  ];
}

/**
 * The first of `orderIds` whose trace has every hop of {@link expectedHops} (a crash or a kill can cut
 * one short), or the first one's trace when none is whole.
 */
export function pickExampleTrace(
  spans: SpanLine[],
  orderIds: string[],
  hops: string[],
): ExampleTrace | undefined {
  const keyed = new Set(spans.map((s) => s.attributes[keyAttribute]));
  const candidates = orderIds.filter((id) => keyed.has(id));
  for (const id of candidates.slice(0, 200)) {
    const trace = assembleTrace(spans, id);
    const names = new Set(trace.hops.map((h) => h.name));
    if (hops.every((h) => names.has(h))) return trace;
  }
  return candidates[0] === undefined ? undefined : assembleTrace(spans, candidates[0]);
}

/** The example trace as text: one line per hop with its start offset, duration, process and trace. */
export function formatTrace(trace: ExampleTrace | undefined): string {
  if (!trace) return 'example trace: no spans were written';
  const lines = trace.hops.map(
    (h) =>
      `  +${h.atMs.toFixed(1).padStart(8)} ms  ${h.durationMs.toFixed(1).padStart(7)} ms  ${h.process.padEnd(13)}  ${h.name}  [trace ${h.traceId.slice(0, 8)}]`,
  );
  return [
    `example trace of order ${trace.orderId} (${trace.hops.length} spans in ${trace.traceIds.length} trace(s); the fulfilment batch's span links to the messages it handled):`,
    ...lines,
  ].join('\n');
}
