// What every pipeline process turns on besides its service: pino logs, Prometheus metrics on
// /metrics and OpenTelemetry tracing with finished spans written to a JSON-lines file.
import { appendFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { instrumentOnceflow, type OnceflowInstrumentation } from '@onceflow/opentelemetry';
import { registerOnceflowMetrics } from '@onceflow/prometheus';
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, hrTimeToMicroseconds, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';

/** Env `DEMO_SPAN_FILE`: where a process appends its finished spans (JSON lines). Default: no tracing. */
export const spanFileEnv = 'DEMO_SPAN_FILE';
/** Env `METRICS_PORT`: port of the process's /metrics server. Default: 0 (any free port). */
export const metricsPortEnv = 'METRICS_PORT';

/** One finished span as the demo's exporter writes it (one JSON object a line). */
export interface SpanLine {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  /** Process that made the span. */
  process: string;
  /** Start, in microseconds since the epoch. */
  startUs: number;
  durationUs: number;
  attributes: Record<string, unknown>;
  /** Span ids (with their trace ids) the span links to: the messages of a batch. */
  links: { traceId: string; spanId: string }[];
}

/**
 * A SpanExporter that appends each finished span to `file` as a JSON line, synchronously, so that a
 * SIGKILLed process loses no span it finished.
 */
export class JsonLinesSpanExporter implements SpanExporter {
  constructor(
    private readonly file: string,
    private readonly process: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: { code: ExportResultCode }) => void): void {
    const lines = spans.map((span) => {
      const line: SpanLine = {
        traceId: span.spanContext().traceId,
        spanId: span.spanContext().spanId,
        ...(span.parentSpanContext ? { parentSpanId: span.parentSpanContext.spanId } : {}),
        name: span.name,
        kind: span.kind,
        process: this.process,
        startUs: hrTimeToMicroseconds(span.startTime),
        durationUs: hrTimeToMicroseconds(span.duration),
        attributes: span.attributes,
        links: span.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
      };
      return `${JSON.stringify(line)}\n`;
    });
    try {
      appendFileSync(this.file, lines.join(''));
      done({ code: ExportResultCode.SUCCESS });
    } catch {
      done({ code: ExportResultCode.FAILED });
    }
  }

  async shutdown(): Promise<void> {}
}

/** A process's logger, metrics server and tracing. */
export interface Observability {
  logger: Logger;
  /** URL of the process's /metrics. */
  metricsUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts a process's observability: a pino logger writing JSON lines to stderr (which the demo's
 * supervisor writes to the process's log file), onceflow's Prometheus metrics on a node:http server
 * (`/metrics`, port `METRICS_PORT` or any free one) and, when `DEMO_SPAN_FILE` is set, onceflow's
 * OpenTelemetry tracing with an SDK whose exporter appends to that file.
 */
export async function startObservability(name: string): Promise<Observability> {
  const logger = pino({ name, level: process.env.LOG_LEVEL ?? 'info' }, pino.destination(2));

  const registry = new Registry();
  registerOnceflowMetrics({ registry });
  const server: Server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500).end(error.message),
    );
  });
  await new Promise<void>((resolve) =>
    server.listen(Number(process.env[metricsPortEnv] ?? 0), '127.0.0.1', resolve),
  );
  const metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

  let instrumentation: OnceflowInstrumentation | undefined;
  let provider: TracerProvider | undefined;
  const spanFile = process.env[spanFileEnv];
  if (spanFile) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    provider = new TracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ exporter: new JsonLinesSpanExporter(spanFile, name) })],
    });
    instrumentation = instrumentOnceflow({ tracerProvider: provider });
  }

  return {
    logger,
    metricsUrl,
    async stop() {
      instrumentation?.stop();
      await provider?.shutdown();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      logger.flush();
    },
  };
}
