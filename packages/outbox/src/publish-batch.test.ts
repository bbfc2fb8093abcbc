import { type LanePublisher, OnceflowError, type PublishRecord } from '@onceflow/core';
import type { OutboxRow } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { publishBatch } from './publish-batch';

const row = (seq: number, key: string | null, value: string, topic = 't'): OutboxRow => ({
  lane: 0,
  seq: String(seq),
  eventId: `id-${seq}`,
  topic,
  key: key === null ? null : Buffer.from(key),
  value: Buffer.from(value),
  headers: { 'message-id': Buffer.from(`id-${seq}`) },
  ageMs: 0,
});

/** A publisher that refuses, permanently, any call containing a value in `poison`, and records what it published. */
function fakePublisher(
  poison: Set<string>,
  transientFailures = 0,
): LanePublisher & { sent: string[]; calls: number } {
  const state = { sent: [] as string[], calls: 0 };
  let transient = transientFailures;
  return Object.assign(state, {
    async publish(records: readonly PublishRecord[]) {
      state.calls++;
      if (transient-- > 0) throw new OnceflowError('OF_PUBLISH_FAILED', 'broker away', { retriable: true });
      if (records.some((r) => poison.has(r.value!.toString())))
        throw new OnceflowError('OF_PUBLISH_FAILED', 'too large', { retriable: false });
      state.sent.push(...records.map((r) => r.value!.toString()));
    },
    async close() {},
  });
}

describe('publishBatch', () => {
  it('publishes a healthy batch in one call, in seq order', async () => {
    const publisher = fakePublisher(new Set());
    const outcome = await publishBatch(publisher, [row(1, 'a', 'a1'), row(2, 'b', 'b1'), row(3, 'a', 'a2')]);
    expect(publisher.calls).toBe(1);
    expect(publisher.sent).toEqual(['a1', 'b1', 'a2']);
    expect({ ...outcome, published: outcome.published.map((r) => r.seq) }).toEqual({
      published: ['1', '2', '3'],
      parked: [],
      heldBack: 0,
    });
  });

  it('isolates a permanently refused event, parks it and holds back only the rest of its key', async () => {
    const publisher = fakePublisher(new Set(['a2']));
    const rows = [
      row(1, 'a', 'a1'),
      row(2, 'b', 'b1'),
      row(3, 'a', 'a2'),
      row(4, 'b', 'b2'),
      row(5, 'a', 'a3'),
      row(6, null, 'n1'),
    ];
    const outcome = await publishBatch(publisher, rows);
    expect(publisher.sent).toEqual(['a1', 'b1', 'b2', 'n1']);
    expect(outcome.parked.map(({ row: r }) => r.seq)).toEqual(['3']);
    expect(outcome.parked[0]!.error).toContain('too large');
    expect(outcome.published.map((r) => r.seq)).toEqual(['1', '2', '4', '6']);
    expect(outcome.heldBack).toBe(1);
  });

  it('a parked keyless event holds back nothing else', async () => {
    const publisher = fakePublisher(new Set(['n1']));
    const outcome = await publishBatch(publisher, [row(1, null, 'n1'), row(2, null, 'n2')]);
    expect(publisher.sent).toEqual(['n2']);
    expect(outcome.heldBack).toBe(0);
  });

  it('propagates a transient failure without parking anything', async () => {
    const publisher = fakePublisher(new Set(), 1);
    const outcome = { published: [], parked: [], heldBack: 0 };
    await expect(publishBatch(publisher, [row(1, 'a', 'a1')], outcome)).rejects.toMatchObject({
      retriable: true,
    });
    expect(outcome.parked).toEqual([]);
    expect(publisher.sent).toEqual([]);
  });

  describe('a topic the broker refuses', () => {
    /** Refuses any call with a record of `missing`, naming `named` (default: every topic of the call). */
    function refusingPublisher(missing: string, named?: (topics: string[]) => string[]) {
      const state = { sent: [] as string[], calls: 0 };
      return Object.assign(state, {
        async publish(records: readonly PublishRecord[]) {
          state.calls++;
          const topics = [...new Set(records.map((r) => r.topic))];
          if (topics.includes(missing))
            throw new OnceflowError('OF_TOPIC_MISSING', 'does not exist', {
              retriable: true,
              details: { refusedTopics: named ? named(topics) : topics },
            });
          state.sent.push(...records.map((r) => r.value!.toString()));
        },
        async close() {},
      });
    }
    const rows = [
      row(1, 'a', 'a1', 'good'),
      row(2, 'x', 'x1', 'gone'),
      row(3, 'b', 'b1', 'other'),
      row(4, 'x', 'x2', 'gone'),
      row(5, null, 'n1', 'gone'),
      row(6, 'a', 'a2', 'good'),
    ];

    it('defers the refused topic and publishes every other topic, also when the publisher cannot tell which it was', async () => {
      for (const named of [undefined, () => ['gone']]) {
        const publisher = refusingPublisher('gone', named);
        const decisions: string[] = [];
        const outcome = await publishBatch(publisher, rows, undefined, (topic) => {
          decisions.push(topic);
          return { action: 'defer' };
        });
        expect(publisher.sent.sort()).toEqual(['a1', 'a2', 'b1']);
        expect(outcome.deferred?.map((r) => r.seq)).toEqual(['2', '4', '5']);
        expect(outcome.parked).toEqual([]);
        expect(decisions).toEqual(['gone']);
      }
    });

    it('parking a refused topic parks the first event of each key and holds back the rest of the key', async () => {
      const publisher = refusingPublisher('gone', () => ['gone']);
      const outcome = await publishBatch(publisher, rows, undefined, (topic) => ({
        action: 'park',
        error: `topic "${topic}" does not exist`,
      }));
      expect(outcome.parked.map(({ row: r }) => r.seq)).toEqual(['2', '5']);
      expect(outcome.parked[0]!.error).toBe('topic "gone" does not exist');
      expect(outcome.heldBack).toBe(1);
      expect(publisher.sent).toEqual(['a1', 'b1', 'a2']);
    });
  });
});
