import { defaultRetryPolicy, OnceflowError } from '@onceflow/core';
import type { OutboxRow } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { RefusedTopics } from './refused-topics';

const row = (seq: number, topic: string): OutboxRow => ({
  lane: 0,
  seq: String(seq),
  eventId: `id-${seq}`,
  topic,
  key: Buffer.from('k'),
  value: null,
  headers: {},
  ageMs: 0,
});
const missing = (retriable = true) =>
  new OnceflowError('OF_TOPIC_MISSING', 'topic "gone" does not exist', { retriable });
const retry = { ...defaultRetryPolicy, initialDelayMs: 60_000, maxDelayMs: 60_000 };

describe('refused topics', () => {
  it('a refused topic waits (reported, left out of claims) until it is published again', () => {
    const reports: OnceflowError[] = [];
    const refused = new RefusedTopics(600_000, retry, (error) => reports.push(error));
    expect(refused.decide('gone', missing())).toEqual({ action: 'defer' });
    expect(reports.map((error) => error.code)).toEqual(['OF_TOPIC_MISSING']);
    expect(reports[0]!.message).toMatch(/topic "gone" was refused .*Create the topic/);
    refused.settled({ published: [], parked: [], heldBack: 0, deferred: [row(7, 'gone')] });
    expect(refused.waits(row(8, 'gone'))).toBe(true);
    expect(refused.waits(row(9, 'fine'))).toBe(false);
    expect(refused.excludedTopics()).toEqual(['gone']);
    refused.settled({ published: [row(10, 'gone')], parked: [], heldBack: 0 });
    expect(refused.waits(row(8, 'gone'))).toBe(false);
    expect(refused.excludedTopics()).toEqual([]);
  });

  it('parks once the topic was refused for parkRefusedTopicAfterMs, or at once for an invalid name, naming the topic', () => {
    const atOnce = new RefusedTopics(0, retry, () => undefined);
    const decision = atOnce.decide('gone', missing());
    expect(decision.action).toBe('park');
    if (decision.action === 'park')
      expect(decision.error).toMatch(/^topic "gone" was refused 1 time.*Create the topic/);
    expect(atOnce.waits(row(1, 'gone'))).toBe(false);
    const patient = new RefusedTopics(600_000, retry, () => undefined);
    expect(patient.decide('bad name', missing(false)).action).toBe('park');
  });

  it("once a topic's events are parked, its next refusals park at once, until one of its events is published", () => {
    const refused = new RefusedTopics(600_000, retry, () => undefined);
    // A refusal that parks at once (here: not retriable) starts the parking of the topic.
    expect(refused.decide('gone', missing(false)).action).toBe('park');
    refused.settled({ published: [], parked: [{ row: row(1, 'gone'), error: 'refused' }], heldBack: 0 });
    // Its events of other keys are claimed and tried at once, and parked without a new wait.
    expect(refused.excludedTopics()).toEqual([]);
    expect(refused.decide('gone', missing()).action).toBe('park');
    // A topic never parked waits out parkAfterMs.
    expect(refused.decide('other', missing()).action).toBe('defer');
    expect(refused.excludedTopics()).toEqual(['other']);
    // Published again (the topic was created): forgotten, the next refusal waits again.
    refused.settled({ published: [row(2, 'gone')], parked: [], heldBack: 0 });
    expect(refused.decide('gone', missing()).action).toBe('defer');
  });
});
