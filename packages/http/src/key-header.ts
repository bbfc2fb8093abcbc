import type { IncomingMessage } from 'node:http';
import { parseItem } from 'structured-headers';

/** Name of the request header, as in the IETF draft and Stripe's API. */
export const idempotencyKeyHeader = 'idempotency-key';

/** Header set on a replayed response. */
export const replayedHeader = 'idempotent-replayed';

/** Outcome of reading the Idempotency-Key header. */
export type KeyHeaderResult =
  | { ok: true; key: string | undefined }
  | { ok: false; reason: 'empty' | 'too-long' | 'malformed' };

// A bare key is the header's whole value: printable ASCII, spaces and commas included (Stripe takes
// keys like `order 42, try 1`), never starting with a quote, which marks the sf-string form.
const unquotedKeyPattern = /^[\x20\x21\x23-\x7e][\x20-\x7e]*$/;

/**
 * Reads an Idempotency-Key header value. The draft defines the key as an RFC 8941 sf-string
 * (`"abc"`), parsed here with the `structured-headers` library; parameters and lists are refused.
 * With `acceptUnquoted`, a bare value of printable ASCII (`abc`, `stripe-node-retry-<uuid>`,
 * `order 42, try 1`) is the key as it stands and names the same key as its quoted form. Several
 * header lines (an array, as Node's `headersDistinct` gives them) are refused: a bare key may hold
 * a comma, so lines joined with `, ` cannot be told from one key. Length is counted on the key.
 */
export function parseIdempotencyKey(
  value: string | string[] | undefined,
  options: { maxKeyLength: number; acceptUnquoted: boolean },
): KeyHeaderResult {
  if (value === undefined) return { ok: true, key: undefined };
  if (Array.isArray(value)) {
    if (value.length !== 1) return { ok: false, reason: 'malformed' };
    return parseIdempotencyKey(value[0], options);
  }
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

/**
 * The Idempotency-Key header of a Node request, line by line where Node keeps the lines apart
 * (`headersDistinct`), so that two lines are refused instead of being read as one key with a comma.
 */
export function keyHeaderLines(request: IncomingMessage): string | string[] | undefined {
  const distinct = (request as { headersDistinct?: Record<string, string[] | undefined> }).headersDistinct;
  return distinct?.[idempotencyKeyHeader] ?? request.headers[idempotencyKeyHeader];
}
