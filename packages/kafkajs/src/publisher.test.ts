import { describe, expect, it } from 'vitest';
import { classifyPublishError } from './publisher';

const protocolError = (code: number, type: string) =>
  Object.assign(new Error(type), { name: 'KafkaJSProtocolError', code, type });

describe('classifyPublishError', () => {
  it('treats a newer producer epoch as a lost lease, also when wrapped by retries', () => {
    const wrapped = Object.assign(new Error('retries exceeded'), {
      originalError: protocolError(47, 'INVALID_PRODUCER_EPOCH'),
    });
    expect(classifyPublishError(wrapped, 'lane-1').code).toBe('OF_LEASE_LOST');
    expect(classifyPublishError(protocolError(90, 'UNKNOWN'), 'lane-1').code).toBe('OF_LEASE_LOST');
  });

  it('treats a too-large message as permanent', () => {
    const error = classifyPublishError(protocolError(10, 'MESSAGE_TOO_LARGE'), 'lane-1');
    expect(error).toMatchObject({ code: 'OF_PUBLISH_FAILED', retriable: false });
  });

  it('treats everything else, connection errors included, as transient', () => {
    expect(classifyPublishError(new Error('Connection error: ECONNREFUSED'), 'lane-1')).toMatchObject({
      code: 'OF_PUBLISH_FAILED',
      retriable: true,
    });
    expect(classifyPublishError(protocolError(7, 'REQUEST_TIMED_OUT'), 'lane-1').retriable).toBe(true);
  });

  it('treats an unknown topic, a denied topic and an invalid name as a refusal of the call topics, retriable unless the name is invalid', () => {
    const unknown = classifyPublishError(
      Object.assign(new Error('retries exceeded'), {
        originalError: protocolError(3, 'UNKNOWN_TOPIC_OR_PARTITION'),
      }),
      'lane-1',
      ['orders', 'orders.dlq'],
    );
    expect(unknown).toMatchObject({
      code: 'OF_TOPIC_MISSING',
      retriable: true,
      details: { refusedTopics: ['orders', 'orders.dlq'] },
    });
    expect(unknown.message).toMatch(/"orders", "orders.dlq" does not exist/);
    const denied = classifyPublishError(protocolError(29, 'TOPIC_AUTHORIZATION_FAILED'), 'lane-1', [
      'orders',
    ]);
    expect(denied).toMatchObject({ code: 'OF_TOPIC_MISSING', retriable: true });
    expect(denied.message).toMatch(/topic "orders" may not be written/);
    const invalid = classifyPublishError(protocolError(17, 'INVALID_TOPIC_EXCEPTION'), 'lane-1', [
      'bad name',
    ]);
    expect(invalid).toMatchObject({ code: 'OF_TOPIC_MISSING', retriable: false });
  });
});
