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

  it('refuses empty, too long, parameters, lists, non-ASCII and bare keys when strict', () => {
    expect(parseIdempotencyKey('', lenient)).toEqual({ ok: false, reason: 'empty' });
    expect(parseIdempotencyKey('""', lenient)).toEqual({ ok: false, reason: 'empty' });
    expect(parseIdempotencyKey(`"${'x'.repeat(256)}"`, lenient)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseIdempotencyKey('x'.repeat(1000), lenient)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseIdempotencyKey(`"${'x'.repeat(255)}"`, lenient).ok).toBe(true);
    for (const bad of ['"a";p=1', '"a", "b"', 'a, b', '"unterminated', '"é"', 'é', 'a;b', '"a\\x"'])
      expect(parseIdempotencyKey(bad, lenient).ok, bad).toBe(false);
    expect(parseIdempotencyKey('abc', strict)).toEqual({ ok: false, reason: 'malformed' });
    expect(parseIdempotencyKey(['"a"', '"b"'], lenient)).toEqual({ ok: false, reason: 'malformed' });
  });
});
