import { instrumentOnceflow } from '@onceflow/opentelemetry';
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { TracerProvider } from '@opentelemetry/sdk-trace';

/**
 * Tracing as an application turns it on, without an exporter: an SDK tracer provider that records
 * every span (always-on sampling) but has no span processor, the AsyncLocalStorage context manager,
 * the W3C propagator, and onceflow's instrumentation. What is measured is the cost of making the
 * spans and carrying the context, not of exporting them.
 */
export function enableTracing(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  instrumentOnceflow({ tracerProvider: new TracerProvider() });
}

/** A `traceparent` value of a sampled trace, different for each `n`, as a traced producer would send. */
export function benchTraceparent(n: number): string {
  const hex = (value: number, length: number) => value.toString(16).padStart(length, '0');
  return `00-${hex(n + 1, 32)}-${hex(n + 1, 16)}-01`;
}
