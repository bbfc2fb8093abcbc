import { OnceflowError } from '@onceflow/core';

/** What a handler or phase returns to answer the request. */
export interface IdempotentResponse {
  /** HTTP status, 100-599. */
  status: number;
  /** Response headers; they are stored and replayed with the body. */
  headers?: Record<string, string>;
  /**
   * Buffer/Uint8Array are sent as is; strings as UTF-8 text; `undefined` or `null` send no body;
   * anything else is sent as JSON. Serialised once, so a replay sends the very same bytes.
   */
  body?: unknown;
  /**
   * Answer without storing: the transaction rolls back and the key stays free, as for a 5xx. For
   * validation a handler does itself before it writes anything. Default: false.
   */
  release?: boolean;
}

/** A serialised response, ready for any HTTP framework. Header names are lower case. */
export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

// Headers that describe one connection or one transfer, not the response: never stored or replayed.
const transferHeaders = new Set([
  'connection',
  'content-length',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'date',
  'idempotent-replayed',
]);

/** Serialises a handler's response into the exact bytes and headers that are sent and stored. */
export function serializeResponse(response: IdempotentResponse): HttpResult {
  const status = response.status;
  if (!Number.isInteger(status) || status < 100 || status > 599)
    throw new OnceflowError(
      'OF_HANDLER_FAILED',
      `idempotent handler returned an invalid status ${String(status)}`,
      {
        details: { status },
      },
    );
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    const lower = name.toLowerCase();
    if (!transferHeaders.has(lower)) headers[lower] = String(value);
  }
  const { bytes, contentType } = encode(response.body);
  if (contentType !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = contentType;
  return { status, headers, body: bytes };
}

function encode(body: unknown): { bytes: Buffer; contentType?: string } {
  if (body === undefined || body === null) return { bytes: Buffer.alloc(0) };
  if (Buffer.isBuffer(body)) return { bytes: body, contentType: 'application/octet-stream' };
  if (body instanceof Uint8Array)
    return {
      bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      contentType: 'application/octet-stream',
    };
  if (typeof body === 'string')
    return { bytes: Buffer.from(body, 'utf8'), contentType: 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(body), 'utf8'), contentType: 'application/json; charset=utf-8' };
}
