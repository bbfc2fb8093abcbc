import { describe, expect, it } from 'vitest';
import { classifyPublishError } from './errors';

// The shapes @platformatic/kafka fails with: protocol errors (apiCode) nested in response and
// multiple-errors aggregates, and its own UserError for a topic missing from the metadata.
const protocolError = (apiCode: number, apiId: string) =>
  Object.assign(new Error(apiId), { code: 'PLT_KFK_PROTOCOL', apiCode, apiId });
const aggregate = (message: string, errors: unknown[]) => Object.assign(new Error(message), { errors });

describe('classifyPublishError', () => {
  it('a fenced producer loses the lane', () => {
    const error = aggregate('Received response with error', [protocolError(90, 'PRODUCER_FENCED')]);
    expect(classifyPublishError(error, 'lane-1')).toMatchObject({ code: 'OF_LEASE_LOST' });
    const epoch = aggregate('failed', [aggregate('retries', [protocolError(47, 'INVALID_PRODUCER_EPOCH')])]);
    expect(classifyPublishError(epoch, 'lane-1')).toMatchObject({ code: 'OF_LEASE_LOST' });
  });

  it('a record too large can never be published', () => {
    const error = aggregate('Producing messages failed.', [protocolError(10, 'MESSAGE_TOO_LARGE')]);
    expect(classifyPublishError(error, 'lane-1', ['orders'])).toMatchObject({
      code: 'OF_PUBLISH_FAILED',
      retriable: false,
    });
  });

  it('a topic the client found missing is named alone, the other topics may go out', () => {
    const error = Object.assign(new Error('Unknown topic orders.dlq.'), { code: 'PLT_KFK_USER' });
    const classified = classifyPublishError(error, 'lane-1', ['orders', 'orders.dlq']);
    expect(classified).toMatchObject({
      code: 'OF_TOPIC_MISSING',
      retriable: true,
      details: { refusedTopics: ['orders.dlq'] },
    });
  });

  it('anything else is retried', () => {
    const error = aggregate('Producing messages failed.', [new Error('ECONNREFUSED')]);
    expect(classifyPublishError(error, 'lane-1', ['orders'])).toMatchObject({
      code: 'OF_PUBLISH_FAILED',
      retriable: true,
    });
  });
});
