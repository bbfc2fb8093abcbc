import type { IncomingMessage, ServerResponse } from 'node:http';
import { reportError, toOnceflowError } from '@onceflow/core';
import type { IdempotencyEngine } from './engine';
import { keyHeaderLines } from './key-header';
import { problemTypes, rejectedKind, rejectedRequest } from './problem';
import type { HttpResult } from './response';
import {
  defineRoute,
  type IdempotentHandler,
  type IdempotentPhases,
  type IdempotentRequest,
  type IdempotentRouteOptions,
} from './route';
import { decodeUtf8Strict, parseFormStrict, utf8CheckOf } from './utf8-check';

/** Options of {@link idempotentListener}. */
export interface NodeIdempotentRouteOptions extends IdempotentRouteOptions {
  /** Method of the route, for its id. Default: `POST`. */
  method?: string;
  /** Path pattern of the route, for its id (e.g. `/charges/:id`). Required. */
  path: string;
  /** The principal a key belongs to. Default: one shared scope `default`, right only for single-tenant APIs. */
  scope?: (request: IncomingMessage) => string | undefined;
  /** Path parameters of a request, when the router knows them. Default: Express's `req.params`, else none. */
  params?: (request: IncomingMessage) => Record<string, string>;
}

function send(response: ServerResponse, result: HttpResult, closeConnection = false): void {
  const headers: Record<string, string | number> = {
    ...result.headers,
    'content-length': result.body.length,
  };
  if (closeConnection) headers.connection = 'close';
  response.writeHead(result.status, headers);
  response.end(result.body);
}

function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit)
      return reject(rejectedRequest('body-too-large', problemTypes['body-too-large'].title));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(rejectedRequest('body-too-large', problemTypes['body-too-large'].title));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (): void => {
      cleanup();
      reject(rejectedRequest('body-invalid', problemTypes['body-invalid'].title));
    };
    function cleanup(): void {
      request.off('data', onData).off('end', onEnd).off('error', onError);
    }
    request.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

function parseBody(contentType: string | undefined, bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  if (!contentType)
    throw rejectedRequest('unsupported-media-type', problemTypes['unsupported-media-type'].title);
  const check = utf8CheckOf(contentType);
  if (check === undefined) return bytes;
  if (check === 'form') return parseFormStrict(bytes);
  const text = decodeUtf8Strict(bytes);
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(text);
    } catch {
      throw rejectedRequest('body-invalid', problemTypes['body-invalid'].title);
    }
  }
  return text;
}

/**
 * A `node:http` request listener, also usable as an Express route handler, that runs `handler`
 * (or a map of atomic phases) under the Idempotency-Key protocol. Reads and parses the body
 * itself (JSON, text, form fields, or raw bytes), unless a body parser already set `req.body`.
 */
export function idempotentListener<Body = unknown>(
  engine: IdempotencyEngine,
  options: NodeIdempotentRouteOptions,
  handler: IdempotentHandler<Body> | IdempotentPhases<Body>,
): (request: IncomingMessage, response: ServerResponse, next?: (error?: unknown) => void) => void {
  const method = (options.method ?? 'POST').toUpperCase();
  const route = defineRoute(
    `${method} ${options.path}`,
    handler as IdempotentHandler | IdempotentPhases,
    options,
  );
  engine.register(route);
  const scopeOf = options.scope ?? (() => 'default');

  async function run(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const admission = engine.admit(keyHeaderLines(request), route);
    if (!admission.ok) return send(response, admission.response, true);
    const preParsed = (request as { body?: unknown }).body;
    let body: unknown = preParsed;
    if (preParsed === undefined) {
      try {
        body = parseBody(
          request.headers['content-type'],
          await readBody(request, engine.options.bodyLimitBytes),
        );
      } catch (error) {
        const kind = rejectedKind(error);
        if (!kind) throw error;
        // The rest of an oversized body is never read: close the connection instead.
        return send(response, engine.errorResponse(kind), kind === 'body-too-large');
      }
    }
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(request.headers))
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    const params = options.params?.(request) ?? (request as { params?: Record<string, string> }).params ?? {};
    const input: IdempotentRequest = {
      method: (request.method ?? method).toUpperCase(),
      route: route.id,
      url: request.url ?? '/',
      params: { ...params },
      headers,
      body,
      scope: scopeOf(request) ?? '',
      key: admission.key,
      raw: request,
    };
    send(response, await engine.handle(input, route));
  }

  return (request, response, next) => {
    run(request, response).catch((error: unknown) => {
      reportError(
        engine.options,
        'error',
        toOnceflowError(error, 'OF_HANDLER_FAILED', `request on ${route.id} failed`, {
          details: { route: route.id },
        }),
      );
      if (next) next(error);
      else if (!response.headersSent) send(response, engine.errorResponse('internal-error'));
      else response.destroy();
    });
  };
}
