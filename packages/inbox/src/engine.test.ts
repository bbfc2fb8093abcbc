import { type ConsumerTransport, isOnceflowError, type TransportBatch } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { deadLetterHeaders } from './dead-letter';
import { createInboxEngine } from './engine';
import { batchOf, createFakeControl, createFakeStore, type FakeContext } from './fakes.test-support';
import { type InboxBatchHandler, type InboxHandler, type InboxOptions, resolveInboxOptions } from './options';
import { processBatch } from './process-batch';

const fastRetry = { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2, multiplier: 1, jitter: 0 };

function setup(
  handler: InboxHandler<FakeContext> | { batch: InboxBatchHandler<FakeContext> },
  overrides: Partial<InboxOptions<FakeContext>> = {},
) {
  const fake = createFakeStore();
  const options = resolveInboxOptions<FakeContext>({
    consumer: 'payments',
    ...(typeof handler === 'function' ? { handler } : { handleBatch: handler.batch }),
    retry: fastRetry,
    onError: () => undefined,
    ...overrides,
  });
  const abort = new AbortController();
  const run = async (batch: TransportBatch, control = createFakeControl(fake.log)) => {
    await processBatch({ options, store: fake.store, stopSignal: abort.signal }, batch, control.control);
    return control;
  };
  return { ...fake, run, abort, options };
}

const writeId: InboxHandler<FakeContext> = async (message, ctx) => ctx.write(message.id);

describe('inbox engine with in-memory fakes', () => {
  it('applies a message id once although it arrives at several offsets, in one batch and across batches', async () => {
    const t = setup(writeId);
    await t.run(batchOf(['a', 'b', 'a', 'c', 'b']));
    await t.run(batchOf(['c', 'd', 'a'], { firstOffset: 5 }));
    expect(t.effects).toEqual(['a', 'b', 'c', 'd']);
  });

  it('commits the broker offset only after the database commit', async () => {
    const t = setup(writeId);
    const control = await t.run(batchOf(['a', 'b', 'c'], { firstOffset: 10 }));
    expect(t.log).toEqual(['db-commit', 'offset-commit 13']);
    expect(control.commits).toEqual(['13']);
  });

  it('a redelivered batch below the stored position runs no handler and seeks to the stored position', async () => {
    const t = setup(writeId, { onMissingId: 'derive-from-position' });
    await t.run(batchOf([null, null, null, null]));
    const control = await t.run(batchOf([null, null], { firstOffset: 1 }));
    expect(t.effects).toEqual(['orders/0/0', 'orders/0/1', 'orders/0/2', 'orders/0/3']);
    expect(control.commits).toEqual(['4']);
    expect(control.seeks).toEqual(['4']);
  });

  describe('a stored position beyond the log end (topic recreated, database restored)', () => {
    // The old log was consumed up to 450; the recreated topic holds offsets 0..2 (high watermark 3).
    async function aheadOf(policy: 'fail' | 'reset-to-earliest' | 'reset-to-latest') {
      const errors: unknown[] = [];
      const t = setup(writeId, { onPositionAhead: policy, onError: (error) => errors.push(error) });
      t.positions.set('payments|orders|0', 450n);
      const control = createFakeControl(t.log, { start: '0', end: '3' });
      await t.run(batchOf(['n0', 'n1', 'n2'], { highWatermark: 3 }), control);
      return { t, control, errors };
    }

    it('fail (default): pauses the partition, reports OF_POSITION_AHEAD naming it, neither seeks nor commits', async () => {
      const { t, control, errors } = await aheadOf('fail');
      expect(control.pauses()).toBe(1);
      expect(control.seeks).toEqual([]);
      expect(control.commits).toEqual([]);
      expect(t.effects).toEqual([]);
      expect(t.positions.get('payments|orders|0')).toBe(450n);
      expect(errors).toHaveLength(1);
      const error = errors[0];
      expect(isOnceflowError(error, 'OF_POSITION_AHEAD')).toBe(true);
      if (!isOnceflowError(error)) return;
      expect(error.details).toMatchObject({
        consumer: 'payments',
        topic: 'orders',
        partition: 0,
        storedPosition: '450',
        logEnd: '3',
      });
      expect(error.message).toMatch(/onceflow inbox reset-positions --consumer payments --topic orders/);
    });

    it('reset-to-earliest: moves the position to the log start, seeks there and then processes the new log', async () => {
      const { t, control, errors } = await aheadOf('reset-to-earliest');
      expect(control.pauses()).toBe(0);
      expect(control.seeks).toEqual(['0']);
      expect(t.positions.get('payments|orders|0')).toBe(0n);
      expect(errors.map((error) => isOnceflowError(error) && error.code)).toEqual(['OF_POSITION_AHEAD']);
      await t.run(batchOf(['n0', 'n1', 'n2'], { highWatermark: 3 }));
      expect(t.effects).toEqual(['n0', 'n1', 'n2']);
    });

    it('reset-to-latest: moves the position to the log end and skips what the log holds', async () => {
      const { t, control } = await aheadOf('reset-to-latest');
      expect(control.seeks).toEqual(['3']);
      expect(t.positions.get('payments|orders|0')).toBe(3n);
      expect(t.effects).toEqual([]);
    });

    it('a high watermark that lagged (the broker now reports a log end past the position) only seeks', async () => {
      const errors: unknown[] = [];
      const t = setup(writeId, { onError: (error) => errors.push(error) });
      t.positions.set('payments|orders|0', 5n);
      const control = createFakeControl(t.log, { start: '0', end: '9' });
      await t.run(batchOf(['a', 'b'], { highWatermark: 2 }), control);
      expect(control.pauses()).toBe(0);
      expect(control.seeks).toEqual(['5']);
      expect(errors).toEqual([]);
    });
  });

  it('a handler that throws midway leaves no effect, and after the retry the effect exists once, in order', async () => {
    let failures = 1;
    const t = setup(async (message, ctx) => {
      await ctx.write(message.id);
      if (message.id === 'b' && failures-- > 0) throw new Error('flaky');
    });
    await t.run(batchOf(['a', 'b', 'c']));
    expect(t.effects).toEqual(['a', 'b', 'c']);
    expect(t.outbox).toEqual([]);
  });

  it('a poison message is dead-lettered after maxAttempts with documented headers and later messages follow in order', async () => {
    let calls = 0;
    const t = setup(async (message, ctx) => {
      if (message.id === 'poison') {
        calls++;
        await ctx.write('partial');
        throw new Error('cannot parse');
      }
      await ctx.write(message.id);
    });
    await t.run(batchOf(['a', 'poison', 'c', 'd']));
    expect(calls).toBe(3);
    expect(t.effects).toEqual(['a', 'c', 'd']);
    expect(t.outbox).toHaveLength(1);
    const headers = t.outbox[0]!.headers!;
    expect(t.outbox[0]!.topic).toBe('orders.dlq');
    expect(headers[deadLetterHeaders.reason]).toBe('handler-failed');
    expect(headers[deadLetterHeaders.attempts]).toBe('3');
    expect(headers[deadLetterHeaders.error]).toContain('cannot parse');
    expect(headers[deadLetterHeaders.originTopic]).toBe('orders');
    expect(headers[deadLetterHeaders.originPartition]).toBe('0');
    expect(headers[deadLetterHeaders.originOffset]).toBe('1');
    expect(headers[deadLetterHeaders.messageId]).toBe('poison');
    // Redelivery of the whole batch changes nothing: the dead letter is recorded like an effect.
    await t.run(batchOf(['a', 'poison', 'c', 'd']));
    expect(t.outbox).toHaveLength(1);
    expect(calls).toBe(3);
  });

  it('missing, empty, oversized and binary ids are dead-lettered with a reason under the dead-letter policy', async () => {
    const t = setup(writeId, { deadLetterTopic: (topic) => `${topic}-bad` });
    const batch = batchOf(['ok', null, '', 'x'.repeat(201), 'bin']);
    const messages = batch.messages.map((m, i) =>
      i === 4 ? { ...m, headers: { 'message-id': Buffer.from([0xff, 0x00, 0xfe]) } } : m,
    );
    await t.run({ ...batch, messages });
    expect(t.effects).toEqual(['ok']);
    expect(t.outbox.map((e) => e.topic)).toEqual(['orders-bad', 'orders-bad', 'orders-bad', 'orders-bad']);
    expect(t.outbox.map((e) => String(e.headers![deadLetterHeaders.error]).split(':')[0])).toEqual([
      'missing',
      'empty',
      'too-long',
      'not-text',
    ]);
    expect(t.outbox.every((e) => e.headers![deadLetterHeaders.reason] === 'invalid-id')).toBe(true);
  });

  it('derive-from-position handles messages without id, and CloudEvents ce_id is recognised', async () => {
    const t = setup(writeId, { onMissingId: 'derive-from-position' });
    const batch = batchOf([null, null]);
    const messages = [batch.messages[0]!, { ...batch.messages[1]!, headers: { ce_id: 'evt-1' } }];
    await t.run({ ...batch, messages });
    expect(t.effects).toEqual(['orders/0/0', 'evt-1']);
  });

  it('a message older than the retention window is dead-lettered as too old, not processed', async () => {
    const t = setup(writeId, { retentionSeconds: 60 });
    await t.run(batchOf(['old'], { timestamp: Date.now() - 120_000 }));
    expect(t.effects).toEqual([]);
    expect(t.outbox[0]!.headers![deadLetterHeaders.reason]).toBe('too-old');
  });

  it('a handler over its time limit is rolled back, its late write fails, and it is retried', async () => {
    let calls = 0;
    let lateWrite: Promise<unknown> | undefined;
    const t = setup(
      async (message, ctx) => {
        calls++;
        if (calls === 1) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          lateWrite = ctx.write('late').then(
            () => 'written',
            () => 'refused',
          );
          return;
        }
        await ctx.write(message.id);
      },
      { handlerTimeoutMs: 10 },
    );
    await t.run(batchOf(['slow']));
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await lateWrite).toBe('refused');
    expect(t.abandonedCount()).toBe(1);
    expect(t.effects).toEqual(['slow']);
  });

  it('serialization failures and deadlocks are retried beyond maxAttempts without dead-lettering', async () => {
    let calls = 0;
    const t = setup(async (message, ctx) => {
      calls++;
      if (calls <= 5) throw Object.assign(new Error('could not serialize access'), { code: '40001' });
      await ctx.write(message.id);
    });
    await t.run(batchOf(['a']));
    expect(t.effects).toEqual(['a']);
    expect(t.outbox).toEqual([]);
  });

  it('a handler failing because its connection died is retried beyond maxAttempts without dead-lettering, however it reports it', async () => {
    let calls = 0;
    const t = setup(async (message, ctx) => {
      calls++;
      if (calls <= 5) {
        ctx.loseConnection();
        // What a handler might make of it: its own error, without the driver's code.
        await ctx.write('lost').catch(() => {
          throw new Error('could not save the payment');
        });
      }
      await ctx.write(message.id);
    });
    await t.run(batchOf(['a']));
    expect(t.effects).toEqual(['a']);
    expect(t.outbox).toEqual([]);
  });

  it('a connection error of the handler itself (an HTTP call refused) counts as an attempt while the transaction is fine', async () => {
    const t = setup(async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' });
    });
    await t.run(batchOf(['a']));
    expect(t.effects).toEqual([]);
    expect(t.outbox.map((event) => event.topic)).toEqual(['orders.dlq']);
  });

  it('with a store that cannot tell a lost connection, a terminated backend (57P01) does not count as an attempt', async () => {
    let calls = 0;
    const t = setup(async (message, ctx) => {
      calls++;
      if (calls <= 5)
        throw Object.assign(new Error('terminating connection due to administrator command'), {
          code: '57P01',
        });
      await ctx.write(message.id);
    });
    const store = {
      ...t.store,
      begin: async () => {
        const { connectionLost: _, ...tx } = await t.store.begin();
        return tx;
      },
    };
    await processBatch(
      { options: t.options, store, stopSignal: new AbortController().signal },
      batchOf(['a']),
      createFakeControl().control,
    );
    expect(t.effects).toEqual(['a']);
    expect(t.outbox).toEqual([]);
  });

  it('a database outage is retried without losing or skipping messages', async () => {
    const t = setup(writeId);
    t.failClaims(4, new Error('connection refused'));
    await t.run(batchOf(['a', 'b']));
    expect(t.effects).toEqual(['a', 'b']);
  });

  it('a revoked partition stops after the transaction in flight and commits nothing further', async () => {
    const control = createFakeControl();
    const t = setup(
      async (message, ctx) => {
        await ctx.write(message.id);
        control.revoke();
      },
      { mode: 'per-message' },
    );
    await t.run(batchOf(['a', 'b', 'c']), control);
    expect(t.effects).toEqual(['a']);
    expect(control.commits).toEqual(['1']);
  });

  it('stopping during retries ends the batch without dead-lettering or skipping the message', async () => {
    const t = setup(
      async () => {
        t.abort.abort();
        throw new Error('fails');
      },
      { retry: { ...fastRetry, maxAttempts: 1000 } },
    );
    const control = await t.run(batchOf(['a', 'b']));
    expect(control.commits).toEqual([]);
    expect(t.outbox).toEqual([]);
  });

  it('per-message mode commits one transaction per message, and the broker offset after the last of them', async () => {
    const t = setup(writeId, { mode: 'per-message' });
    const control = await t.run(batchOf(['a', 'b', 'c']));
    expect(t.log).toEqual(['db-commit', 'db-commit', 'db-commit', 'offset-commit 3']);
    expect(control.commits).toEqual(['3']);
  });

  it('start and stop run the transport; stop is idempotent and waits for the batch in flight', async () => {
    const fake = createFakeStore();
    let listener: Parameters<ConsumerTransport['run']>[0] | undefined;
    let stops = 0;
    const transport: ConsumerTransport = {
      async run(l) {
        listener = l;
      },
      async stop() {
        stops++;
      },
    };
    const engine = createInboxEngine<FakeContext>({
      consumer: 'c',
      handler: writeId,
      transport,
      store: fake.store,
      pruneIntervalMs: 0,
    });
    const handle = await engine.start();
    await listener!(batchOf(['a']), createFakeControl().control);
    await handle.stop();
    await handle[Symbol.asyncDispose]();
    expect(stops).toBe(1);
    expect(fake.effects).toEqual(['a']);
  });
});

describe('inbox options', () => {
  const base = { consumer: 'c', handler: writeId };
  const expectInvalid = (options: object, text: RegExp) => {
    try {
      resolveInboxOptions({ ...base, ...options } as InboxOptions<FakeContext>);
    } catch (error) {
      expect(isOnceflowError(error, 'OF_INVALID_OPTIONS')).toBe(true);
      expect((error as Error).message).toMatch(text);
      return;
    }
    throw new Error('expected OF_INVALID_OPTIONS');
  };

  it('invalid options throw OF_INVALID_OPTIONS saying what to change', () => {
    expectInvalid({ schema: 'x"; drop table y; --' }, /schema name .* is not allowed: use 1-48 characters/);
    expectInvalid({ maxBatchSize: -1 }, /maxBatchSize must be an integer between 1/);
    expectInvalid({ handlerTimeoutMs: 0 }, /handlerTimeoutMs must be/);
    expectInvalid({ retentionSeconds: -5 }, /retentionSeconds must be/);
    expectInvalid({ retry: { maxAttempts: -1 } }, /retry: maxAttempts must be an integer >= 1/);
    expectInvalid({ onMissingId: 'ignore' }, /onMissingId must be one of derive-from-position, dead-letter/);
    expectInvalid({ mode: 'turbo' }, /mode must be one of batch, per-message/);
    expectInvalid({ consumer: '' }, /consumer must be a name/);
    expectInvalid({ handler: 'nope' }, /handler must be/);
    expectInvalid({ handler: undefined }, /give a handler .* or a handleBatch/);
    expectInvalid({ handleBatch: async () => {} }, /give either handler or handleBatch, not both/);
    expectInvalid({ handler: undefined, handleBatch: 'nope' }, /handleBatch must be/);
  });

  it('applies documented defaults', () => {
    const resolved = resolveInboxOptions<FakeContext>(base);
    expect(resolved).toMatchObject({ schema: 'onceflow', mode: 'batch', onMissingId: 'dead-letter' });
    expect(resolved.deadLetterTopic('orders')).toBe('orders.dlq');
  });
});

describe('inbox engine with a batch handler (handleBatch)', () => {
  /** Writes every message's id, recording the ids of each call. */
  function recording(fail: (ids: string[]) => boolean = () => false) {
    const calls: string[][] = [];
    const handler: InboxBatchHandler<FakeContext> = async (messages, ctx) => {
      const ids = messages.map((m) => m.id);
      calls.push(ids);
      for (const id of ids) await ctx.write(id);
      if (fail(ids)) throw new Error(`cannot process ${ids.join(',')}`);
    };
    return { calls, handler };
  }

  it('gets the new messages of a batch in one call, in offset order, without duplicates (one effect per id)', async () => {
    const r = recording();
    const t = setup({ batch: r.handler });
    await t.run(batchOf(['a', 'b', 'a', 'c', 'b']));
    await t.run(batchOf(['c', 'd', 'a', 'e'], { firstOffset: 5 }));
    expect(r.calls).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e'],
    ]);
    expect(t.effects).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(t.log).toEqual(['db-commit', 'offset-commit 5', 'db-commit', 'offset-commit 9']);
  });

  it('is not called for a batch of duplicates only', async () => {
    const r = recording();
    const t = setup({ batch: r.handler });
    await t.run(batchOf(['a', 'b']));
    await t.run(batchOf(['b', 'a'], { firstOffset: 2 }));
    expect(r.calls).toEqual([['a', 'b']]);
  });

  it('keeps the order of effects and dead letters: the call is split around a dead-lettered message', async () => {
    const r = recording();
    const t = setup({ batch: r.handler });
    await t.run(batchOf(['a', 'b', null, 'c']));
    expect(r.calls).toEqual([['a', 'b'], ['c']]);
    expect(t.outbox.map((e) => e.headers![deadLetterHeaders.originOffset])).toEqual(['2']);
  });

  it('a failing call leaves no partial effect; the culprit is isolated by bisection, retried alone, then applied once, in order', async () => {
    let failures = 1;
    const r = recording((ids) => ids.includes('e') && failures-- > 0);
    const t = setup({ batch: r.handler });
    await t.run(batchOf(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']));
    expect(t.effects).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    expect(t.outbox).toEqual([]);
    // The first call failed as a whole; its halves then succeeded (the failure did not recur).
    expect(r.calls[0]).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    expect(r.calls.slice(1)).toEqual([
      ['a', 'b', 'c', 'd'],
      ['e', 'f', 'g', 'h'],
    ]);
  });

  it('a poison message among many is dead-lettered alone after maxAttempts; every other message is applied once, in order', async () => {
    const r = recording((ids) => ids.includes('poison'));
    const t = setup({ batch: r.handler });
    const ids = ['a', 'b', 'c', 'd', 'e', 'poison', 'g', 'h', 'i', 'j', 'k'];
    await t.run(batchOf(ids));
    expect(t.effects).toEqual(ids.filter((id) => id !== 'poison'));
    expect(t.outbox).toHaveLength(1);
    const headers = t.outbox[0]!.headers!;
    expect(headers[deadLetterHeaders.reason]).toBe('handler-failed');
    expect(headers[deadLetterHeaders.attempts]).toBe('3');
    expect(headers[deadLetterHeaders.originOffset]).toBe('5');
    expect(headers[deadLetterHeaders.error]).toContain('cannot process poison');
    // Attempts counted once the message was alone: three single calls.
    expect(r.calls.filter((c) => c.length === 1 && c[0] === 'poison')).toHaveLength(3);
    // Redelivery changes nothing.
    const before = r.calls.length;
    await t.run(batchOf(ids));
    expect(r.calls.length).toBe(before);
    expect(t.outbox).toHaveLength(1);
  });

  it('a batch handler over its time limit is rolled back and retried', async () => {
    let calls = 0;
    const t = setup(
      {
        batch: async (messages, ctx) => {
          calls++;
          if (calls === 1) await new Promise((resolve) => setTimeout(resolve, 50));
          for (const m of messages) await ctx.write(m.id);
        },
      },
      { handlerTimeoutMs: 10 },
    );
    await t.run(batchOf(['a', 'b']));
    expect(t.abandonedCount()).toBe(1);
    expect(t.effects).toEqual(['a', 'b']);
  });

  it('per-message mode calls the batch handler with one message per transaction', async () => {
    const r = recording();
    const t = setup({ batch: r.handler }, { mode: 'per-message' });
    await t.run(batchOf(['a', 'b']));
    expect(r.calls).toEqual([['a'], ['b']]);
    expect(t.log).toEqual(['db-commit', 'db-commit', 'offset-commit 2']);
  });
});
