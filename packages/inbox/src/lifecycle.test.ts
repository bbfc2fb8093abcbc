import {
  type ConsumerTransport,
  isOnceflowError,
  type Logger,
  type OnceflowError,
  type TransportReporter,
} from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { createInboxConsumer } from './consumer';
import { batchOf, createFakeControl, createFakeStore, type FakeContext } from './fakes.test-support';
import type { InboxConsumerOptions } from './options';

const fastRetry = { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2, multiplier: 1, jitter: 0 };

/** A transport that hands its listener and reporter to the test. */
function fakeTransport(extra: Partial<ConsumerTransport> = {}) {
  const state: {
    listener?: Parameters<ConsumerTransport['run']>[0];
    reporter?: TransportReporter | undefined;
    runs: number;
  } = { runs: 0 };
  const transport: ConsumerTransport = {
    async run(listener, reporter) {
      state.runs++;
      state.listener = listener;
      state.reporter = reporter;
    },
    async stop() {},
    ...extra,
  };
  return { transport, state };
}

function recordingLogger(lines: Array<{ level: string; fields: Record<string, unknown>; message: string }>) {
  const at =
    (level: string) =>
    (first: object | string, message?: string): void => {
      lines.push(
        typeof first === 'string'
          ? { level, fields: {}, message: first }
          : { level, fields: first as Record<string, unknown>, message: message ?? '' },
      );
    };
  const logger: Logger = {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    child: () => logger,
  };
  return logger;
}

function consumerWith(
  options: Partial<InboxConsumerOptions<FakeContext>> & Pick<InboxConsumerOptions<FakeContext>, 'transport'>,
) {
  const fake = createFakeStore();
  return {
    fake,
    consumer: createInboxConsumer<FakeContext>({
      consumer: 'payments',
      store: fake.store,
      handler: async (message, ctx) => ctx.write(message.id),
      pruneIntervalMs: 0,
      retry: fastRetry,
      ...options,
    }),
  };
}

describe('inbox consumer lifecycle', () => {
  it('create configures and start starts once: a second start() rejects with OF_ALREADY_STARTED and runs nothing', async () => {
    const { transport, state } = fakeTransport();
    const { consumer } = consumerWith({ transport });
    expect(state.runs).toBe(0);
    const handle = await consumer.start();
    const second = await consumer.start().catch((error: unknown) => error);
    expect(isOnceflowError(second, 'OF_ALREADY_STARTED')).toBe(true);
    expect(state.runs).toBe(1);
    await handle.stop();
  });

  it('takes either a pool or a store: both, or a schema beside a store, are refused at construction', () => {
    const { transport } = fakeTransport();
    const fake = createFakeStore();
    const attempt = (extra: object) => () =>
      createInboxConsumer<FakeContext>({
        consumer: 'c',
        transport,
        store: fake.store,
        handler: async () => {},
        ...extra,
      });
    expect(attempt({ pool: { connect: async () => undefined } })).toThrow(/either pool or store/);
    expect(attempt({ schema: 'other' })).toThrow(/schema belongs to the store/);
    expect(() =>
      createInboxConsumer({ consumer: 'c', transport, handler: async () => {} } as InboxConsumerOptions),
    ).toThrow(/give a pg pool/);
  });
});

describe('inbox consumer errors', () => {
  it('onError and the logger get one OnceflowError per failure, with where it happened in its details; no fake values', async () => {
    const errors: OnceflowError[] = [];
    const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
    const { transport, state } = fakeTransport();
    const { consumer, fake } = consumerWith({
      transport,
      onError: (error) => errors.push(error),
      logger: recordingLogger(lines),
      handler: async (message) => {
        if (message.id === 'poison') throw new Error('cannot parse');
      },
    });
    const handle = await consumer.start();
    await state.listener!(batchOf(['ok', 'poison'], { firstOffset: 7 }), createFakeControl().control);
    await handle.stop();

    expect(errors.map((error) => error.code)).toEqual([
      'OF_HANDLER_FAILED',
      'OF_HANDLER_FAILED',
      'OF_HANDLER_FAILED',
    ]);
    expect(errors[0]!.details).toEqual({
      consumer: 'payments',
      topic: 'orders',
      partition: 0,
      offset: '8',
      messageId: 'poison',
      attempts: 1,
    });
    expect((errors[0]!.cause as Error).message).toBe('cannot parse');
    // The last one says the message was dead-lettered, once its transaction committed.
    expect(errors[2]!.message).toMatch(/dead-lettered after 2 failed attempts: cannot parse/);
    expect(errors[2]!.details).toMatchObject({ attempts: 2, deadLetterTopic: 'orders.dlq' });
    expect(fake.outbox).toHaveLength(1);
    const reported = lines.filter((line) => line.fields.err !== undefined);
    expect(reported.map((line) => line.level)).toEqual(['warn', 'warn', 'error']);
    expect(reported[0]!.fields).toMatchObject({ code: 'OF_HANDLER_FAILED', offset: '8', attempts: 1 });
  });

  it('a message with an invalid id is reported as OF_INVALID_MESSAGE_ID, one too old as OF_MESSAGE_TOO_OLD', async () => {
    const errors: OnceflowError[] = [];
    const { transport, state } = fakeTransport();
    const { consumer } = consumerWith({
      transport,
      onError: (error) => errors.push(error),
      retentionMs: 60_000,
    });
    const handle = await consumer.start();
    await state.listener!(batchOf([null]), createFakeControl().control);
    await state.listener!(
      batchOf(['old'], { firstOffset: 1, timestamp: Date.now() - 3_600_000 }),
      createFakeControl().control,
    );
    await handle.stop();
    expect(errors.map((error) => error.code)).toEqual(['OF_INVALID_MESSAGE_ID', 'OF_MESSAGE_TOO_OLD']);
  });

  it("what the transport reports through run()'s reporter reaches onError", async () => {
    const errors: OnceflowError[] = [];
    const { transport, state } = fakeTransport();
    const { consumer } = consumerWith({ transport, onError: (error) => errors.push(error) });
    const handle = await consumer.start();
    const { OnceflowError } = await import('@onceflow/core');
    state.reporter!.onError(new OnceflowError('OF_UNAVAILABLE', 'consumer crashed; restarting'));
    await handle.stop();
    expect(errors.map((error) => error.message)).toEqual(['consumer crashed; restarting']);
  });

  it('a transport without seek and heartbeat (both optional) still processes and commits', async () => {
    const { transport, state } = fakeTransport();
    const { consumer, fake } = consumerWith({ transport });
    const handle = await consumer.start();
    const { control, commits } = createFakeControl();
    const { seek: _seek, heartbeat: _heartbeat, ...minimal } = control;
    await state.listener!(batchOf(['a', 'b']), minimal);
    await handle.stop();
    expect(fake.effects).toEqual(['a', 'b']);
    expect(commits).toEqual(['2']);
  });
});

describe('dead-letter topics at start', () => {
  const withTopics = (missing: string[]) => {
    const calls: Array<{ topics: string[]; create: boolean }> = [];
    const { transport, state } = fakeTransport({
      topics: ['orders', 'payments'],
      async ensureTopics(required, { create }) {
        calls.push({ topics: required.map((r) => r.topic), create });
        return required
          .filter((r) => missing.includes(r.topic))
          .map((r) => ({ topic: r.topic, partitions: 3 }));
      },
    });
    return { transport, state, calls };
  };

  it('fail (default): start rejects with OF_TOPIC_MISSING naming the topic and the command, before joining', async () => {
    const { transport, state, calls } = withTopics(['payments.dlq']);
    const { consumer } = consumerWith({ transport });
    const error = await consumer.start().catch((caught: unknown) => caught);
    expect(isOnceflowError(error, 'OF_TOPIC_MISSING')).toBe(true);
    expect((error as OnceflowError).details.topics).toEqual(['payments.dlq']);
    expect((error as Error).message).toContain('--create --topic payments.dlq --partitions 3');
    expect(calls).toEqual([{ topics: ['orders.dlq', 'payments.dlq'], create: false }]);
    expect(state.runs).toBe(0);
  });

  it('create asks the transport to create them; ignore does not ask; a transport that cannot check is not asked', async () => {
    const created = withTopics(['orders.dlq']);
    await (
      await consumerWith({
        transport: created.transport,
        onMissingDeadLetterTopic: 'create',
      }).consumer.start()
    ).stop();
    expect(created.calls).toEqual([{ topics: ['orders.dlq', 'payments.dlq'], create: true }]);
    const ignored = withTopics(['orders.dlq']);
    await (
      await consumerWith({
        transport: ignored.transport,
        onMissingDeadLetterTopic: 'ignore',
      }).consumer.start()
    ).stop();
    expect(ignored.calls).toEqual([]);
    const plain = fakeTransport();
    await (await consumerWith({ transport: plain.transport }).consumer.start()).stop();
    expect(plain.state.runs).toBe(1);
  });
});
