import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  preParsingHookHandler,
  RouteOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import { createIdempotencyEngine, type IdempotencyEngine } from './engine';
import { keyHeaderLines } from './key-header';
import type { IdempotencyEngineOptions } from './options';
import { type ProblemKind, problemResponse, rejectedKind } from './problem';
import type { HttpResult } from './response';
import {
  defineRoute,
  type IdempotentHandler,
  type IdempotentPhases,
  type IdempotentRequest,
  type IdempotentRouteOptions,
} from './route';
import { createUtf8Check, utf8CheckOf } from './utf8-check';

declare module 'fastify' {
  interface FastifyInstance {
    /** onceflow's Idempotency-Key engine, decorated by the `idempotency` plugin. */
    idempotency: IdempotencyEngine;
  }
  interface FastifyContextConfig {
    /** Idempotency-Key settings of a route whose handler is wrapped with `idempotent()`. */
    idempotency?: IdempotentRouteOptions;
  }
}

/**
 * Options of the Fastify {@link idempotency} plugin: the engine's options (the plugin creates the
 * engine, starts it with the app and stops it on close; its logger defaults to `app.log`), or an
 * `engine` created and started elsewhere, plus the `scope` function.
 */
export interface FastifyIdempotencyOptions extends IdempotencyEngineOptions {
  /**
   * Use this engine instead of creating one (e.g. shared with a node:http listener); its owner starts
   * and stops it, and the engine options given here are not used. Default: a new engine.
   */
  engine?: IdempotencyEngine;
  /**
   * The principal a key belongs to (tenant, user, API key id), read after the route's hooks ran.
   * Default: one shared scope `default`, right only for single-tenant APIs.
   */
  scope?: (request: FastifyRequest) => string | undefined;
}

const specSymbol = Symbol.for('onceflow.idempotent');

interface WrappedHandler {
  (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply>;
  [specSymbol]: IdempotentHandler | IdempotentPhases;
}

const admittedKeys = new WeakMap<FastifyRequest, string | undefined>();
const scopeFunctions = new WeakMap<IdempotencyEngine, (request: FastifyRequest) => string | undefined>();

// Fastify's own refusals of a body, answered in the engine's error format like onceflow's checks.
const bodyErrorKinds: Record<string, ProblemKind> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'body-invalid',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'body-invalid',
  FST_ERR_CTP_INVALID_JSON_BODY: 'body-invalid',
};

function bodyProblemOf(error: FastifyError): ProblemKind | undefined {
  const rejected = rejectedKind(error);
  if (rejected) return rejected;
  return typeof error.code === 'string' && Object.hasOwn(bodyErrorKinds, error.code)
    ? bodyErrorKinds[error.code]
    : undefined;
}

function routeIdOf(method: string, url: string): string {
  return `${method.toUpperCase()} ${url}`;
}

function sendResult(reply: FastifyReply, result: HttpResult): FastifyReply {
  reply.code(result.status);
  for (const [name, value] of Object.entries(result.headers)) reply.header(name, value);
  return reply.send(result.body);
}

function headerMap(request: FastifyRequest): Record<string, string | undefined> {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(request.headers))
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  return headers;
}

/**
 * Wraps a handler (or a map of atomic phases) into a Fastify route handler that runs it under
 * the Idempotency-Key protocol. Needs the {@link idempotency} plugin registered on the app.
 */
export function idempotent<Body = unknown>(
  handler: IdempotentHandler<Body> | IdempotentPhases<Body>,
): WrappedHandler {
  const run = async function (
    this: FastifyInstance,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const engine = request.server.idempotency as IdempotencyEngine | undefined;
    const id = routeIdOf(request.method, request.routeOptions.url ?? request.url);
    const route = engine?.routes.get(id);
    if (!engine || !route || !admittedKeys.has(request)) {
      request.log.error(
        `onceflow: route ${id} uses idempotent() but the idempotency plugin is not registered before it`,
      );
      return sendResult(reply, (engine?.errorResponse ?? problemResponse)('internal-error'));
    }
    let scope: string | undefined;
    try {
      scope = scopeFunctions.get(engine)?.(request);
    } catch (error) {
      request.log.error(error, 'onceflow: idempotency scope function threw');
      return sendResult(reply, engine.errorResponse('internal-error'));
    }
    const input: IdempotentRequest = {
      method: request.method.toUpperCase(),
      route: id,
      url: request.url,
      params: { ...(request.params as Record<string, string>) },
      headers: headerMap(request),
      body: request.body,
      scope: scope ?? '',
      key: admittedKeys.get(request),
      raw: request,
    };
    return sendResult(reply, await engine.handle(input, route));
  };
  return Object.assign(run, { [specSymbol]: handler as IdempotentHandler | IdempotentPhases });
}

function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

async function plugin(fastify: FastifyInstance, options: FastifyIdempotencyOptions): Promise<void> {
  const { engine: given, scope, ...engineOptions } = options;
  const engine = given ?? createIdempotencyEngine({ logger: fastify.log, ...engineOptions });
  scopeFunctions.set(engine, scope ?? (() => 'default'));
  fastify.decorate('idempotency', engine);
  if (!given) {
    // Started with the app (its completer and reaper with it), stopped when the app closes.
    const running = await engine.start();
    fastify.addHook('onClose', async () => running.stop());
  }

  const admit: onRequestHookHandler = async (request, reply) => {
    const route = engine.routes.get(routeIdOf(request.method, request.routeOptions.url ?? request.url));
    if (!route) return;
    const admission = engine.admit(keyHeaderLines(request.raw), route);
    if (!admission.ok) return sendResult(reply, admission.response);
    admittedKeys.set(request, admission.key);
  };
  const checkUtf8: preParsingHookHandler = async (request, _reply, payload) => {
    const kind = utf8CheckOf(request.headers['content-type']);
    return kind ? payload.pipe(createUtf8Check(kind)) : payload;
  };

  fastify.addHook('onRoute', (routeOptions: RouteOptions) => {
    const spec = (routeOptions.handler as Partial<WrappedHandler>)[specSymbol];
    if (!spec) return;
    const settings =
      (routeOptions.config as { idempotency?: IdempotentRouteOptions } | undefined)?.idempotency ?? {};
    for (const method of asArray(routeOptions.method)) {
      engine.register(defineRoute(routeIdOf(method, routeOptions.url), spec, settings));
    }
    routeOptions.bodyLimit ??= engine.options.bodyLimitBytes;
    // Appended, so the app's own onRequest hooks (authentication) run first; key checks still
    // run before the body is read.
    routeOptions.onRequest = [...asArray(routeOptions.onRequest), admit];
    routeOptions.preParsing = [...asArray(routeOptions.preParsing), checkUtf8];
    // Refused bodies answer in the engine's error format; any other error goes to the route's own
    // error handler, or (rethrown) to the app's.
    const routeErrorHandler = routeOptions.errorHandler;
    routeOptions.errorHandler = function (this: FastifyInstance, error, request, reply) {
      const kind = bodyProblemOf(error);
      if (kind) return sendResult(reply, engine.errorResponse(kind));
      if (routeErrorHandler) return routeErrorHandler.call(this, error, request, reply);
      throw error;
    };
  });
}

/**
 * Fastify plugin: registers the Idempotency-Key engine for routes whose handler is wrapped with
 * {@link idempotent}. Register it before those routes.
 */
export const idempotency = fp(plugin, { name: '@onceflow/http', fastify: '5.x' });
