import type { InboundMessage } from '@onceflow/core';
import type { RedriveOutcome } from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';
import { acceptRedrives, deadLetterEvent } from './dead-letter';

const token = '0b6f4c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b';

function entry(id: string, offset: string, headers: Record<string, string> = {}) {
  const message: InboundMessage = {
    id,
    idSource: 'header',
    topic: 't',
    partition: 0,
    offset,
    timestamp: Date.now(),
    key: null,
    value: null,
    headers: { 'message-id': id, ...headers },
  };
  return { message, invalid: undefined };
}

function store(outcomes: Record<string, RedriveOutcome>) {
  const asked: { id: string; token: string }[][] = [];
  return {
    asked,
    tx: {
      async claimRedrives(input: { consumer: string; redrives: readonly { id: string; token: string }[] }) {
        asked.push([...input.redrives]);
        return new Map(input.redrives.map((r) => [r.id, outcomes[r.id] ?? 'unknown']));
      },
    },
  };
}

describe('acceptRedrives', () => {
  it('asks nothing when no message carries a redrive token', async () => {
    const { tx, asked } = store({});
    const fresh = new Set(['1']);
    expect(await acceptRedrives(tx, 'c', [entry('a', '1')], { priorNextOffset: '0', fresh })).toBe(fresh);
    expect(asked).toEqual([]);
  });

  it('handles a seen id whose token is pending, skips a copy whose redrive is done, leaves unknown tokens to the claim', async () => {
    const { tx, asked } = store({ a: 'redrive', b: 'done', c: 'unknown' });
    const entries = [
      entry('a', '5', { 'onceflow-redrive': token }),
      entry('b', '6', { 'onceflow-redrive': token }),
      entry('c', '7', { 'onceflow-redrive': token }),
      entry('d', '8'),
    ];
    const fresh = await acceptRedrives(tx, 'c', entries, {
      priorNextOffset: '5',
      fresh: new Set(['6', '7', '8']),
    });
    expect([...fresh].sort()).toEqual(['5', '7', '8']);
    expect(asked).toEqual([
      [
        { id: 'a', token },
        { id: 'b', token },
        { id: 'c', token },
      ],
    ]);
  });

  it('ignores copies below the stored position, later copies of an id in the batch, and malformed tokens', async () => {
    const { tx, asked } = store({ a: 'redrive', b: 'redrive', x: 'redrive' });
    const entries = [
      entry('a', '3', { 'onceflow-redrive': token }),
      entry('b', '5'),
      entry('b', '6', { 'onceflow-redrive': token }),
      entry('x', '7', { 'onceflow-redrive': 'not-a-token' }),
    ];
    const fresh = await acceptRedrives(tx, 'c', entries, { priorNextOffset: '4', fresh: new Set() });
    expect([...fresh]).toEqual([]);
    expect(asked).toEqual([]);
  });
});

describe('deadLetterEvent', () => {
  it("a redrive copy's dead letter gets an id of its own and no redrive header", () => {
    const details = {
      consumer: 'c',
      topic: 't.dlq',
      reason: 'handler-failed' as const,
      error: 'x',
      attempts: 1,
    };
    const first = deadLetterEvent(entry('a', '1').message, details);
    const again = deadLetterEvent(entry('a', '9', { 'onceflow-redrive': token }).message, details);
    expect(again.id).not.toBe(first.id);
    expect(again.headers?.['onceflow-redrive']).toBeUndefined();
    expect(deadLetterEvent(entry('a', '2').message, details).id).toBe(first.id);
  });
});
