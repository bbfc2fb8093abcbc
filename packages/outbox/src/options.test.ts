import type { PublisherTransport } from '@onceflow/core';
import type { Pool } from 'pg';
import { describe, expect, it } from 'vitest';
import { defaultOutboxRelayOptions, resolveRelayOptions } from './options';

const pool = { connect: async () => undefined } as unknown as Pool;
const transport: PublisherTransport = {
  openLane: async () => ({ publish: async () => {}, close: async () => {} }),
  close: async () => {},
};

describe('relay options', () => {
  it('applies the documented defaults', () => {
    const resolved = resolveRelayOptions({ pool, transport });
    expect(resolved).toMatchObject(defaultOutboxRelayOptions);
    expect(resolved.fencingIdPrefix).toBe('onceflow.outbox.onceflow.relay-');
  });

  it.each([
    [{ batchSize: 0 }, /batchSize/],
    [{ leaseTtlMs: 1_000, heartbeatIntervalMs: 600 }, /below half of leaseTtlMs/],
    [{ schema: 'Bad-Name' }, /schema name/],
    [{ retryInitialDelayMs: 500, retryMaxDelayMs: 100 }, /retryMaxDelayMs/],
    [{ startupTimeoutMs: -5 }, /startupTimeoutMs/],
    [{ parkRefusedTopicAfterMs: -1 }, /parkRefusedTopicAfterMs must be an integer >= 0/],
    [{ parkRefusedTopicAfterMs: 2 ** 31 }, /parkRefusedTopicAfterMs must be at most/],
  ])('rejects %o at construction', (bad, message) => {
    expect(() => resolveRelayOptions({ pool, transport, ...bad })).toThrow(message);
  });

  it.each([
    'pollIntervalMs',
    'heartbeatIntervalMs',
    'retryInitialDelayMs',
    'retryMaxDelayMs',
    'metricsIntervalMs',
    'startupTimeoutMs',
  ])('refuses %s above 2^31 - 1 ms, which Node would shorten to 1 ms', (name) => {
    const huge = { leaseTtlMs: 2 ** 31 - 1, retryMaxDelayMs: 2 ** 31 - 1, [name]: 2 ** 31 };
    expect(() => resolveRelayOptions({ pool, transport, ...huge })).toThrow(
      new RegExp(`^createOutboxRelay: ${name} must be at most 2147483647 ms`),
    );
  });

  it('accepts no startup limit (the default), 0 and the timer limit', () => {
    expect(resolveRelayOptions({ pool, transport }).startupTimeoutMs).toBeUndefined();
    expect(resolveRelayOptions({ pool, transport, startupTimeoutMs: 0 }).startupTimeoutMs).toBe(0);
    expect(resolveRelayOptions({ pool, transport, startupTimeoutMs: 2 ** 31 - 1 }).startupTimeoutMs).toBe(
      2 ** 31 - 1,
    );
  });
});
