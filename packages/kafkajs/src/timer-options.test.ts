import { isOnceflowError } from '@onceflow/core';
import type { Kafka } from 'kafkajs';
import type { Pool } from 'pg';
import { describe, expect, it } from 'vitest';
import { createInboxConsumer } from './consumer';
import { createKafkajsPublisherTransport } from './publisher';

// Construction only validates: nothing here connects.
const kafka = { consumer: () => undefined, producer: () => undefined } as unknown as Kafka;
const pool = { connect: async () => undefined } as unknown as Pool;

function thrownBy(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    expect(isOnceflowError(error, 'OF_INVALID_OPTIONS')).toBe(true);
    return error as Error;
  }
  throw new Error('nothing was thrown');
}

describe('kafkajs adapter timer options', () => {
  it('the publisher refuses delays above 2^31 - 1 ms, naming the option', () => {
    expect(
      thrownBy(() => createKafkajsPublisherTransport({ kafka, transactionTimeoutMs: 2 ** 31 })).message,
    ).toMatch(/^createOutboxRelay: transactionTimeoutMs must be at most 2147483647 ms/);
    expect(
      thrownBy(() => createKafkajsPublisherTransport({ kafka, retry: { initialDelayMs: 2 ** 31 } })).message,
    ).toMatch(/^createOutboxRelay: retry: initialDelayMs must be at most 2147483647 ms/);
  });

  it('the consumer refuses kafkajs timer settings above 2^31 - 1 ms, which kafkajs passes to timers unchecked', () => {
    const consumer = (consumerConfig: object) => () =>
      createInboxConsumer({
        kafka,
        pool,
        consumer: 'c',
        topics: ['t'],
        handler: async () => {},
        consumerConfig,
      });
    for (const name of ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTimeInMs'])
      expect(thrownBy(consumer({ [name]: 2 ** 31 })).message).toMatch(
        new RegExp(`^inbox consumer: consumerConfig.${name} must be at most 2147483647 ms`),
      );
    expect(thrownBy(consumer({ retry: { maxRetryTime: 2 ** 31 } })).message).toMatch(
      /consumerConfig.retry.maxRetryTime must be at most 2147483647 ms/,
    );
    expect(
      thrownBy(() =>
        createInboxConsumer({
          kafka,
          pool,
          consumer: 'c',
          topics: ['t'],
          handler: async () => {},
          pruneIntervalMs: 2 ** 31,
        }),
      ).message,
    ).toMatch(/pruneIntervalMs must be at most 2147483647 ms/);
  });
});
