import { isOnceflowError } from '@onceflow/core';
import { describe, expect, it } from 'vitest';
import { requestFingerprint } from './fingerprint';

const base = { method: 'POST', route: 'POST /pay', url: '/pay', headers: {} };

describe('request fingerprint', () => {
  it('is the same for JSON bodies that differ only in key order and number spelling', () => {
    const a = requestFingerprint({ ...base, body: { a: 1, b: [1, { c: 2, d: 1.5 }] } }, []);
    const b = requestFingerprint({ ...base, body: JSON.parse('{"b":[1,{"d":1.50,"c":2}],"a":1.0}') }, []);
    expect(a.equals(b)).toBe(true);
  });

  it('differs by body, method, route, URL and chosen headers; text and bytes never equal JSON', () => {
    const a = requestFingerprint({ ...base, body: { a: 1 } }, ['x-h']);
    for (const other of [
      { ...base, body: { a: 2 } },
      { ...base, method: 'PUT', body: { a: 1 } },
      { ...base, route: 'POST /other', body: { a: 1 } },
      { ...base, url: '/pay?x', body: { a: 1 } },
      { ...base, headers: { 'x-h': '1' }, body: { a: 1 } },
      { ...base, body: '{"a":1}' },
      { ...base, body: Buffer.from('{"a":1}') },
    ])
      expect(requestFingerprint(other, ['x-h']).equals(a)).toBe(false);
  });

  it('refuses bodies JCS cannot express with OF_IDEMPOTENCY_REJECTED, status 400', () => {
    let thrown: unknown;
    try {
      requestFingerprint({ ...base, body: { s: '\udc00' } }, []);
    } catch (error) {
      thrown = error;
    }
    expect(isOnceflowError(thrown, 'OF_IDEMPOTENCY_REJECTED')).toBe(true);
    expect(thrown).toMatchObject({ details: { status: 400, problem: 'body-invalid' } });
  });
});
