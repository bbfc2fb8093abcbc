import diagnosticsChannel from 'node:diagnostics_channel';
import {
  httpRequestChannel,
  type InboxHandleContext,
  inboxHandleChannel,
  isOnceflowError,
  outboxEnqueueChannel,
  relaySendChannel,
  traceCall,
} from '@onceflow/core';
import {
  type Context,
  type SpanOptions,
  type TextMapPropagator,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { instrumentOnceflow, type OnceflowInstrumentationOptions } from './index';

const tracing = (name: string) => diagnosticsChannel.tracingChannel(name);

function listening(): boolean[] {
  return [
    diagnosticsChannel.hasSubscribers(outboxEnqueueChannel),
    tracing(relaySendChannel).hasSubscribers,
    tracing(inboxHandleChannel).hasSubscribers,
    tracing(httpRequestChannel).hasSubscribers,
  ];
}

describe('instrumentOnceflow', () => {
  it('subscribes to the channels of the parts turned on, and stop() unsubscribes, once', () => {
    expect(listening()).toEqual([false, false, false, false]);
    const all = instrumentOnceflow();
    expect(listening()).toEqual([true, true, true, true]);
    all.stop();
    all.stop();
    expect(listening()).toEqual([false, false, false, false]);
    const some = instrumentOnceflow({ relay: false, http: false });
    expect(listening()).toEqual([true, false, true, false]);
    some[Symbol.dispose]();
    expect(listening()).toEqual([false, false, false, false]);
  });

  it('refuses options that cannot work with OF_INVALID_OPTIONS', () => {
    for (const options of [
      { inbox: 'yes' },
      { tracerProvider: {} },
    ] as unknown as OnceflowInstrumentationOptions[]) {
      let thrown: unknown;
      try {
        instrumentOnceflow(options);
      } catch (error) {
        thrown = error;
      }
      expect(isOnceflowError(thrown, 'OF_INVALID_OPTIONS'), JSON.stringify(options)).toBe(true);
    }
    expect(listening()).toEqual([false, false, false, false]);
  });

  it("wraps the call around another subscriber's wrapper and passes results and errors through", async () => {
    const calls: string[] = [];
    const other = (message: unknown) => {
      const call = message as InboxHandleContext;
      const inner = call.around;
      call.around = async (run) => {
        calls.push('other');
        return inner === undefined ? run() : inner(run);
      };
    };
    const start = `tracing:${inboxHandleChannel}:start`;
    diagnosticsChannel.subscribe(start, other);
    using _instrumentation = instrumentOnceflow();
    try {
      const channel = diagnosticsChannel.tracingChannel<unknown, InboxHandleContext>(inboxHandleChannel);
      const message = {
        id: 'm-1',
        idSource: 'header' as const,
        topic: 't',
        partition: 0,
        offset: '7',
        timestamp: Date.now(),
        key: null,
        value: null,
        headers: {},
      };
      const context = () => ({ consumer: 'c', topic: 't', partition: 0, messages: [message], batch: false });
      const result = await traceCall(channel, context(), async () => {
        calls.push('handler');
        return 42;
      });
      expect(result).toBe(42);
      await expect(
        traceCall(channel, context(), async () => {
          throw new Error('handler failed');
        }),
      ).rejects.toThrow('handler failed');
      expect(calls).toEqual(['other', 'handler', 'other']);
    } finally {
      diagnosticsChannel.unsubscribe(start, other);
    }
  });

  it("links a batch handler's span to at most 128 producers, the SDK's default link limit", async () => {
    const started: SpanOptions[] = [];
    const tracer = {
      startSpan: (_name: string, options: SpanOptions) => {
        started.push(options);
        return trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 });
      },
    } as unknown as Tracer;
    let extracted = 0;
    // Each message carries its producer's span id in a header of its own.
    const propagator: Pick<TextMapPropagator, 'inject' | 'extract' | 'fields'> = {
      fields: () => ['producer'],
      inject: () => undefined,
      extract: (context: Context, carrier: unknown) => {
        extracted++;
        const spanId = String((carrier as Record<string, Buffer>).producer);
        return trace.setSpanContext(context, { traceId: 'a'.repeat(32), spanId, traceFlags: 1 });
      },
    };
    using _instrumentation = instrumentOnceflow({
      tracerProvider: { getTracer: () => tracer },
      propagator,
      relay: false,
      http: false,
      enqueue: false,
    });
    const channel = diagnosticsChannel.tracingChannel<unknown, InboxHandleContext>(inboxHandleChannel);
    const messages = Array.from({ length: 300 }, (_, n) => ({
      id: `m-${n}`,
      idSource: 'header' as const,
      topic: 't',
      partition: 0,
      offset: String(n),
      timestamp: Date.now(),
      key: null,
      value: null,
      headers: { producer: Buffer.from(n.toString(16).padStart(16, '0')) },
    }));
    await traceCall(
      channel,
      { consumer: 'c', topic: 't', partition: 0, messages, batch: true },
      async () => 1,
    );
    expect(started).toHaveLength(1);
    const links = started[0]!.links ?? [];
    expect(links).toHaveLength(128);
    expect(links.map((link) => link.context.spanId)).toEqual(
      messages.slice(0, 128).map((message) => String(message.headers.producer)),
    );
    expect(extracted).toBe(128);
    expect(started[0]!.attributes?.['messaging.batch.message_count']).toBe(300);
  });
});
