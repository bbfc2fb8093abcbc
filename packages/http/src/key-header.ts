import { parseItem } from 'structured-headers';

/** Name of the request header, as in the IETF draft and Stripe's API. */
export const idempotencyKeyHeader = 'idempotency-key';

/** Header set on a replayed response. */
export const replayedHeader = 'idempotent-replayed';

/** Outcome of reading the Idempotency-Key header. */
export type KeyHeaderResult =
  | { ok: true; key: string | undefined }
  | { ok: false; reason: 'empty' | 'too-long' | 'malformed' };

// Visible ASCII without the characters that would make the value look like a list, a parameter
// or a broken quoted string.
const unquotedKeyPattern = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/;

/**
 * Reads an Idempotency-Key header value. The draft defines the key as an RFC 8941 sf-string
 * (`"abc"`), parsed here with the `structured-headers` library; parameters are refused. With
 * `acceptUnquoted`, a bare value of visible ASCII (`abc`, as Stripe's clients send UUIDs) is
 * accepted too and names the same key as its quoted form. Length is counted on the key itself.
 */
export function parseIdempotencyKey(
  value: string | string[] | undefined,
  options: { maxKeyLength: number; acceptUnquoted: boolean },
): KeyHeaderResult {
  if (value === undefined) return { ok: true, key: undefined };
  if (Array.isArray(value)) return { ok: false, reason: 'malformed' };
  // Bound the work before parsing: a quoted key is at most two quotes and some escapes longer.
  if (value.length > options.maxKeyLength * 2 + 2) return { ok: false, reason: 'too-long' };
  const trimmed = value.trim();
  if (trimmed.length === 0) return { ok: false, reason: 'empty' };
  let key: string;
  if (trimmed.startsWith('"')) {
    try {
      const [item, params] = parseItem(trimmed);
      if (typeof item !== 'string' || params.size > 0) return { ok: false, reason: 'malformed' };
      key = item;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
  } else {
    if (!options.acceptUnquoted || !unquotedKeyPattern.test(trimmed))
      return { ok: false, reason: 'malformed' };
    key = trimmed;
  }
  if (key.length === 0) return { ok: false, reason: 'empty' };
  if (key.length > options.maxKeyLength) return { ok: false, reason: 'too-long' };
  return { ok: true, key };
}
