import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { rejectedRequest } from './problem';

/** The parts of a request that make two requests with one key "the same request". */
export interface FingerprintInput {
  method: string;
  /** The route's id (method and pattern) */
  route: string;
  /** Path and query as sent. */
  url: string;
  body: unknown;
  /** The chosen headers, lower-case names; absent ones count as absent. */
  headers: Record<string, string | undefined>;
}

function bodyDocument(body: unknown): unknown {
  if (body === undefined || body === null) return null;
  if (Buffer.isBuffer(body) || body instanceof Uint8Array)
    return { bytes: Buffer.from(body).toString('base64') };
  if (typeof body === 'string') return { text: body };
  return { json: body };
}

/**
 * SHA-256 over the RFC 8785 (JCS) canonical JSON of method, route, URL, body and chosen headers,
 * so JSON bodies that differ only in key order or whitespace are the same request. A body that
 * cannot be canonicalised (lone surrogates, non-finite numbers, cycles) throws
 * OF_IDEMPOTENCY_REJECTED with `details.problem` `body-invalid` (status 400).
 */
export function requestFingerprint(input: FingerprintInput, headerNames: readonly string[]): Buffer {
  const headers: Record<string, string | null> = {};
  for (const name of headerNames) headers[name] = input.headers[name] ?? null;
  let text: string | undefined;
  try {
    text = canonicalize({
      method: input.method,
      route: input.route,
      url: input.url,
      headers,
      body: bodyDocument(input.body),
    });
  } catch (error) {
    throw rejectedRequest('body-invalid', 'request body cannot be canonicalised', error);
  }
  if (text === undefined) throw rejectedRequest('body-invalid', 'request body cannot be canonicalised');
  return createHash('sha256').update(text, 'utf8').digest();
}
