import { OnceflowError } from '@onceflow/core';
import type { HttpResult } from './response';

/**
 * How onceflow's own error answers are shaped: RFC 9457 `application/problem+json`, or Stripe's
 * `{"error":{"type","code","message"}}`, which Stripe's SDKs turn into their typed errors.
 */
export type ErrorFormat = 'problem+json' | 'stripe';

/** Stripe's error `type` values that onceflow answers with. */
type StripeErrorType = 'idempotency_error' | 'invalid_request_error' | 'authentication_error' | 'api_error';

interface ProblemType {
  /** Status of the problem+json answer. */
  status: number;
  title: string;
  /**
   * Whether a retry with the same key and request can get another answer; sent as
   * `Stripe-Should-Retry`, which Stripe's SDKs obey over their own status rules.
   */
  retry: boolean;
  /** The Stripe-format answer: Stripe's own status where it has one (400 for a reused key). */
  stripe: { status: number; type: StripeErrorType; code: string };
}

/** The problems onceflow answers with, in either {@link ErrorFormat}. */
export const problemTypes = {
  'key-missing': {
    status: 400,
    title: 'Idempotency-Key header is required on this route',
    retry: false,
    stripe: { status: 400, type: 'idempotency_error', code: 'idempotency_key_missing' },
  },
  'key-malformed': {
    status: 400,
    title:
      'Idempotency-Key header must hold one key of 1 to 255 printable ASCII characters, bare or as a quoted string',
    retry: false,
    stripe: { status: 400, type: 'idempotency_error', code: 'idempotency_key_invalid' },
  },
  'key-reused': {
    status: 422,
    title: 'Idempotency-Key was already used with a different request',
    retry: false,
    stripe: { status: 400, type: 'idempotency_error', code: 'idempotency_key_reused' },
  },
  'request-in-progress': {
    status: 409,
    title: 'A request with this Idempotency-Key is still being processed',
    retry: true,
    stripe: { status: 409, type: 'invalid_request_error', code: 'idempotency_key_in_use' },
  },
  'scope-missing': {
    status: 401,
    title: 'The request has no principal to scope its Idempotency-Key to',
    retry: false,
    stripe: { status: 401, type: 'authentication_error', code: 'principal_missing' },
  },
  'body-invalid': {
    status: 400,
    title: 'Request body cannot be read',
    retry: false,
    stripe: { status: 400, type: 'invalid_request_error', code: 'body_invalid' },
  },
  'body-too-large': {
    status: 413,
    title: 'Request body is too large',
    retry: false,
    stripe: { status: 413, type: 'invalid_request_error', code: 'body_too_large' },
  },
  'unsupported-media-type': {
    status: 415,
    title: 'Request body has no supported content type',
    retry: false,
    stripe: { status: 415, type: 'invalid_request_error', code: 'unsupported_media_type' },
  },
  'too-many-requests': {
    status: 429,
    title: 'Too many idempotent requests in flight for this principal',
    retry: true,
    stripe: { status: 429, type: 'invalid_request_error', code: 'rate_limit' },
  },
  unavailable: {
    status: 503,
    title: 'Service temporarily unavailable',
    retry: true,
    stripe: { status: 503, type: 'api_error', code: 'service_unavailable' },
  },
  'internal-error': {
    status: 500,
    title: 'Internal server error',
    retry: true,
    stripe: { status: 500, type: 'api_error', code: 'internal_error' },
  },
} as const satisfies Record<string, ProblemType>;

/** One of the problem kinds in {@link problemTypes}. */
export type ProblemKind = keyof typeof problemTypes;

/** URI of a problem kind, used as the problem's `type`. */
export function problemTypeUri(kind: ProblemKind): string {
  return `urn:onceflow:problem:${kind}`;
}

/** Header that Stripe's SDKs read to decide whether to retry, before any status rule of theirs. */
export const shouldRetryHeader = 'stripe-should-retry';

/**
 * onceflow's answer for a problem, in the chosen format. The body carries only fixed texts, never
 * an error message, stack or the client's key, so nothing internal leaks and nothing is reflected.
 */
export function errorResponse(
  kind: ProblemKind,
  options: { format?: ErrorFormat; retryAfterS?: number } = {},
): HttpResult {
  const type: ProblemType = problemTypes[kind];
  const headers: Record<string, string> = { [shouldRetryHeader]: String(type.retry) };
  if (options.retryAfterS !== undefined)
    headers['retry-after'] = String(Math.max(1, Math.ceil(options.retryAfterS)));
  if (options.format === 'stripe') {
    const { status, type: errorType, code } = type.stripe;
    headers['content-type'] = 'application/json';
    const body = { error: { type: errorType, code, message: type.title } };
    return { status, headers, body: Buffer.from(JSON.stringify(body), 'utf8') };
  }
  headers['content-type'] = 'application/problem+json';
  const body = { type: problemTypeUri(kind), title: type.title, status: type.status };
  return { status: type.status, headers, body: Buffer.from(JSON.stringify(body), 'utf8') };
}

/** A problem+json answer for a problem: {@link errorResponse} in the default format. */
export function problemResponse(kind: ProblemKind, options: { retryAfterS?: number } = {}): HttpResult {
  return errorResponse(kind, { ...options, format: 'problem+json' });
}

/**
 * The error onceflow throws internally for a request it refuses before any handler runs (an
 * unreadable body): OF_IDEMPOTENCY_REJECTED with the HTTP `status` and the `problem` kind in its
 * details, which the adapters turn into the answer of that kind.
 */
export function rejectedRequest(kind: ProblemKind, message: string, cause?: unknown): OnceflowError {
  return new OnceflowError('OF_IDEMPOTENCY_REJECTED', message, {
    details: { status: problemTypes[kind].status, problem: kind },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The problem kind of an OF_IDEMPOTENCY_REJECTED error, or undefined for any other error. */
export function rejectedKind(error: unknown): ProblemKind | undefined {
  if (!(error instanceof OnceflowError) || error.code !== 'OF_IDEMPOTENCY_REJECTED') return undefined;
  const kind = error.details.problem;
  return typeof kind === 'string' && Object.hasOwn(problemTypes, kind) ? (kind as ProblemKind) : undefined;
}
