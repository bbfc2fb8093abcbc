import { describe, expect, it } from 'vitest';
import { parseIdempotencyKey } from './key-header';

const lenient = { maxKeyLength: 255, acceptUnquoted: true };
const strict = { maxKeyLength: 255, acceptUnquoted: false };

describe('Idempotency-Key header parsing', () => {
  it('accepts sf-strings, with escapes, and bare keys when lenient', () => {
    expect(parseIdempotencyKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"', strict)).toEqual({
      ok: true,
      key: '8e03978e-40d5-43e8-bc93-6894a57f9324',
    });
    expect(parseIdempotencyKey('"a\\"b"', strict)).toEqual({ ok: true, key: 'a"b' });
    expect(parseIdempotencyKey('8e03978e', lenient)).toEqual({ ok: true, key: '8e03978e' });
    expect(parseIdempotencyKey('"8e03978e"', lenient)).toEqual(parseIdempotencyKey('8e03978e', lenient));
    expect(parseIdempotencyKey(undefined, strict)).toEqual({ ok: true, key: undefined });
  });

  it('accepts the keys common clients send: stripe-node retry keys, UUIDs, and free text with spaces and commas up to 255 characters', () => {
    const keys = [
      'stripe-node-retry-8e03978e-40d5-43e8-bc93-6894a57f9324',
      '8e03978e-40d5-43e8-bc93-6894a57f9324',
      'order 42, try 1',
      'a;b=c',
      "it's {all} <printable> ~ASCII~ \\ here",
      'k'.repeat(255),
    ];
    for (const key of keys) expect(parseIdempotencyKey(key, lenient), key).toEqual({ ok: true, key });
    // The quoted form of a key names the same key.
    expect(parseIdempotencyKey('"order 42, try 1"', lenient)).toEqual({ ok: true, key: 'order 42, try 1' });
    // One header line, as Node's headersDistinct gives it.
    expect(parseIdempotencyKey(['order 42, try 1'], lenient)).toEqual({ ok: true, key: 'order 42, try 1' });
  });

  it('refuses empty, too long, parameters, sf-lists, several header lines, non-ASCII, controls and bare keys when strict', () => {
    expect(parseIdempotencyKey('', lenient)).toEqual({ ok: false, reason: 'empty' });
    expect(parseIdempotencyKey('""', lenient)).toEqual({ ok: false, reason: 'empty' });
    expect(parseIdempotencyKey(`"${'x'.repeat(256)}"`, lenient)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseIdempotencyKey('x'.repeat(1000), lenient)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseIdempotencyKey(`"${'x'.repeat(255)}"`, lenient).ok).toBe(true);
    for (const bad of [
      '"a";p=1',
      '"a", "b"',
      '"a", b',
      '"unterminated',
      '"é"',
      'é',
      'a\tb',
      'a\u0000',
      '"a\\x"',
    ])
      expect(parseIdempotencyKey(bad, lenient).ok, bad).toBe(false);
    expect(parseIdempotencyKey('abc', strict)).toEqual({ ok: false, reason: 'malformed' });
    expect(parseIdempotencyKey('k'.repeat(256), lenient)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseIdempotencyKey(['"a"', '"b"'], lenient)).toEqual({ ok: false, reason: 'malformed' });
  });
});
