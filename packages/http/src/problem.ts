import type { HttpResult } from './response';

/** The problems onceflow answers with; each becomes an `application/problem+json` response (RFC 9457). */
export const problemTypes = {
  'key-missing': { status: 400, title: 'Idempotency-Key header is required on this route' },
  'key-malformed': {
    status: 400,
    title: 'Idempotency-Key header must be a structured-field string of 1 to 255 characters',
  },
  'key-reused': { status: 422, title: 'Idempotency-Key was already used with a different request' },
  'request-in-progress': {
    status: 409,
    title: 'A request with this Idempotency-Key is still being processed',
  },
  'scope-missing': { status: 401, title: 'The request has no principal to scope its Idempotency-Key to' },
  'body-invalid': { status: 400, title: 'Request body cannot be read' },
  'body-too-large': { status: 413, title: 'Request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Request body has no supported content type' },
  'too-many-requests': { status: 429, title: 'Too many idempotent requests in flight for this principal' },
  unavailable: { status: 503, title: 'Service temporarily unavailable' },
  'internal-error': { status: 500, title: 'Internal server error' },
} as const;

/** One of the problem kinds in {@link problemTypes}. */
export type ProblemKind = keyof typeof problemTypes;

/** URI of a problem kind, used as the problem's `type`. */
export function problemTypeUri(kind: ProblemKind): string {
  return `urn:onceflow:problem:${kind}`;
}

/**
 * A problem+json response. The body carries only the fixed title and status, never an error
 * message or stack, so nothing internal leaks to the client.
 */
export function problemResponse(kind: ProblemKind, options: { retryAfterS?: number } = {}): HttpResult {
  const { status, title } = problemTypes[kind];
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (options.retryAfterS !== undefined)
    headers['retry-after'] = String(Math.max(1, Math.ceil(options.retryAfterS)));
  const body = Buffer.from(JSON.stringify({ type: problemTypeUri(kind), title, status }), 'utf8');
  return { status, headers, body };
}
