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
});
