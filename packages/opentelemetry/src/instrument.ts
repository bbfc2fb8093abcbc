import diagnosticsChannel from 'node:diagnostics_channel';
import {
  type HttpRequestContext,
  headerText,
  httpRequestChannel,
  type InboxHandleContext,
  inboxHandleChannel,
  invalidOptions,
  type MessageHeaders,
  messageIdHeader,
  type OutboxEnqueueMessage,
  outboxEnqueueChannel,
  type RelaySendContext,
  relaySendChannel,
  type TracedCallContext,
  type TracedCallWrapper,
} from '@onceflow/core';
import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';

/** The instrumentation scope of every span made here. */
export const instrumentationScope = '@onceflow/opentelemetry';

/** Options of {@link instrumentOnceflow}. */
export interface OnceflowInstrumentationOptions {
  /** Where spans go. Default: the global tracer provider (`trace.getTracerProvider()`), looked up when a span starts. */
  tracerProvider?: TracerProvider;
  /**
   * Writes and reads the trace context of events, Kafka messages and HTTP requests. Default: the
   * global propagator (`propagation`), W3C `traceparent` and `tracestate` once an SDK registered it.
   */
  propagator?: Pick<TextMapPropagator, 'inject' | 'extract' | 'fields'>;
  /** Stores the trace context with each event `enqueue` writes, under a `create <topic>` span. Default: true. */
  enqueue?: boolean;
  /** Traces each event the relay publishes in a `send <topic>` span. Default: true. */
  relay?: boolean;
  /** Runs each inbox handler call in a `process <topic>` span. Default: true. */
  inbox?: boolean;
  /** Traces each request of the Idempotency-Key engine in an `idempotency <route>` span. Default: true. */
  http?: boolean;
}

/** What {@link instrumentOnceflow} does when an option is left out. */
export const defaultOnceflowInstrumentationOptions: Readonly<
  Required<Pick<OnceflowInstrumentationOptions, 'enqueue' | 'relay' | 'inbox' | 'http'>>
> = Object.freeze({ enqueue: true, relay: true, inbox: true, http: true });

/** The running instrumentation; `stop()` unsubscribes it. */
export interface OnceflowInstrumentation {
  /** Unsubscribes from onceflow's channels: later calls are not traced. Calls under way finish traced. Safe to call twice. */
  stop(): void;
  /** Same as `stop()`, so the handle can be held with `using`. */
  [Symbol.dispose](): void;
}

const enqueueSetter: TextMapSetter<Record<string, string | Buffer>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const recordGetter: TextMapGetter<Record<string, Buffer>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key]?.toString('utf8'),
};

const messageGetter: TextMapGetter<MessageHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => headerText(carrier, key),
};

const requestGetter: TextMapGetter<Readonly<Record<string, string | undefined>>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

const keyText = (key: string | Buffer | null | undefined): string | undefined =>
  key === null || key === undefined ? undefined : typeof key === 'string' ? key : key.toString('utf8');

/**
 * Most producer links a batch handler's span gets: the OpenTelemetry SDK's default
 * `spanLimits.linkCountLimit`, beyond which it drops links anyway.
 */
const maxBatchLinks = 128;

/** Runs `run` in `span` (made current in `parent`), ending it as `run` settles. */
async function runInSpan<T>(span: Span, parent: Context, run: () => Promise<T>): Promise<T> {
  try {
    return await context.with(trace.setSpan(parent, span), run);
  } catch (error) {
    failed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    ...(error instanceof Error ? { message: error.message } : {}),
  });
}

/** Makes `mine` run around the call, outside any `around` an earlier subscriber set. */
function wrapCall(call: TracedCallContext, mine: TracedCallWrapper): void {
  const inner = call.around;
  call.around = inner === undefined ? mine : (run) => mine(() => inner(run));
}

/**
 * Turns on onceflow's OpenTelemetry tracing, process-wide, by subscribing to onceflow's diagnostics
 * channels: `enqueue` stores the current trace context with the event (as W3C `traceparent`, which
 * the relay sends as Kafka headers), the relay traces each event it publishes, the inbox runs each
 * handler call in a consumer span parented to the producer's context (linked to it for a batch
 * handler), and the Idempotency-Key engine traces each request with its outcome. Spans go to the
 * global tracer provider unless `tracerProvider` is given; without an OpenTelemetry SDK every span is a
 * no-op and nothing is added to events. Call it once, at startup; `stop()` turns it off again.
 */
export function instrumentOnceflow(options: OnceflowInstrumentationOptions = {}): OnceflowInstrumentation {
  if (options === null || typeof options !== 'object')
    invalidOptions('opentelemetry', 'options must be an object');
  const settings = { ...defaultOnceflowInstrumentationOptions };
  for (const name of ['enqueue', 'relay', 'inbox', 'http'] as const) {
    const value = options[name];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') invalidOptions('opentelemetry', `${name} must be true or false`);
    settings[name] = value;
  }
  if (options.tracerProvider !== undefined && typeof options.tracerProvider?.getTracer !== 'function')
    invalidOptions('opentelemetry', 'tracerProvider must be an OpenTelemetry TracerProvider');
  const propagator = options.propagator ?? propagation;
  const provided = options.tracerProvider;
  // The global provider is asked for at each span, so that an SDK registered later is used.
  const fixed = provided?.getTracer(instrumentationScope);
  const tracer = (): Tracer => fixed ?? trace.getTracer(instrumentationScope);

  function onEnqueue(message: unknown): void {
    const { event, id, headers } = message as OutboxEnqueueMessage;
    // Trace context the caller put on the event wins.
    for (const field of propagator.fields()) if (headers[field] !== undefined) return;
    const parent = context.active();
    const key = keyText(event.key);
    const span = tracer().startSpan(
      `create ${event.topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.name': 'create',
          'messaging.operation.type': 'create',
          'messaging.destination.name': event.topic,
          'messaging.message.id': id,
          ...(key === undefined ? {} : { 'messaging.kafka.message.key': key }),
        },
      },
      parent,
    );
    propagator.inject(trace.setSpan(parent, span), headers, enqueueSetter);
    span.end();
  }

  function onSend(message: unknown): void {
    const call = message as RelaySendContext;
    wrapCall(call, async (run) => {
      let spans: Span[] | undefined;
      for (const record of call.records) {
        const parent = propagator.extract(ROOT_CONTEXT, record.headers, recordGetter);
        // Only events enqueued with a trace context are traced: the others belong to no trace.
        if (trace.getSpanContext(parent) === undefined) continue;
        // One span per event: few attributes, as each costs the SDK about a microsecond per span.
        const attributes: Attributes = {
          'messaging.system': 'kafka',
          'messaging.operation.name': 'send',
          'messaging.destination.name': record.topic,
          'messaging.message.id': record.headers[messageIdHeader]?.toString('utf8'),
        };
        if (record.key !== null) attributes['messaging.kafka.message.key'] = record.key.toString('utf8');
        spans ??= [];
        spans.push(
          tracer().startSpan(`send ${record.topic}`, { kind: SpanKind.PRODUCER, attributes }, parent),
        );
      }
      if (spans === undefined) return run();
      try {
        return await run();
      } catch (error) {
        for (const span of spans) failed(span, error);
        throw error;
      } finally {
        for (const span of spans) span.end();
      }
    });
  }

  function onHandle(message: unknown): void {
    const call = message as InboxHandleContext;
    wrapCall(call, (run) => {
      const active = context.active();
      if (!call.batch) {
        const message = call.messages[0]!;
        // The producer's context when the message carries one; the current context otherwise.
        const parent = propagator.extract(active, message.headers, messageGetter);
        const attributes: Attributes = {
          'messaging.system': 'kafka',
          'messaging.operation.name': 'process',
          'messaging.destination.name': call.topic,
          'messaging.destination.partition.id': String(call.partition),
          'messaging.message.id': message.id,
          'messaging.kafka.offset': Number(message.offset),
        };
        if (message.key !== null) attributes['messaging.kafka.message.key'] = message.key.toString('utf8');
        const span = tracer().startSpan(
          `process ${call.topic}`,
          { kind: SpanKind.CONSUMER, attributes },
          parent,
        );
        return runInSpan(span, parent, run);
      }
      const links: Link[] = [];
      for (const message of call.messages) {
        // The SDK keeps the first 128 links of a span (its default linkCountLimit): reading the trace
        // context of the other messages of a large batch would be work thrown away.
        if (links.length === maxBatchLinks) break;
        const producer = trace.getSpanContext(
          propagator.extract(ROOT_CONTEXT, message.headers, messageGetter),
        );
        if (producer !== undefined) links.push({ context: producer });
      }
      const span = tracer().startSpan(
        `process ${call.topic}`,
        {
          kind: SpanKind.CONSUMER,
          links,
          attributes: {
            'messaging.system': 'kafka',
            'messaging.operation.name': 'process',
            'messaging.operation.type': 'process',
            'messaging.destination.name': call.topic,
            'messaging.destination.partition.id': String(call.partition),
            'messaging.consumer.group.name': call.consumer,
            'messaging.batch.message_count': call.messages.length,
          },
        },
        active,
      );
      return runInSpan(span, active, run);
    });
  }

  function onRequest(message: unknown): void {
    const call = message as HttpRequestContext;
    wrapCall(call, async (run) => {
      const active = context.active();
      // Under an HTTP server span (an HTTP instrumentation) this span is its child; without one it
      // continues the client's trace from the request's `traceparent`.
      const served = trace.getSpan(active) !== undefined;
      const parent = served ? active : propagator.extract(active, call.headers, requestGetter);
      const span = tracer().startSpan(
        `idempotency ${call.route}`,
        {
          kind: served ? SpanKind.INTERNAL : SpanKind.SERVER,
          attributes: {
            'http.request.method': call.method,
            'onceflow.idempotency.route': call.route,
            ...(call.scope === undefined ? {} : { 'onceflow.idempotency.scope': call.scope }),
            ...(call.key === undefined ? {} : { 'onceflow.idempotency.key': call.key }),
          },
        },
        parent,
      );
      try {
        return await context.with(trace.setSpan(parent, span), run);
      } catch (error) {
        failed(span, error);
        throw error;
      } finally {
        if (call.outcome !== undefined) span.setAttribute('onceflow.idempotency.outcome', call.outcome);
        if (call.status !== undefined) {
          span.setAttribute('http.response.status_code', call.status);
          if (call.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      }
    });
  }

  const subscriptions: Array<[string, (message: unknown) => void]> = [];
  if (settings.enqueue) subscriptions.push([outboxEnqueueChannel, onEnqueue]);
  if (settings.relay) subscriptions.push([`tracing:${relaySendChannel}:start`, onSend]);
  if (settings.inbox) subscriptions.push([`tracing:${inboxHandleChannel}:start`, onHandle]);
  if (settings.http) subscriptions.push([`tracing:${httpRequestChannel}:start`, onRequest]);
  for (const [name, subscriber] of subscriptions) diagnosticsChannel.subscribe(name, subscriber);
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const [name, subscriber] of subscriptions) diagnosticsChannel.unsubscribe(name, subscriber);
  };
  return { stop, [Symbol.dispose]: stop };
}
