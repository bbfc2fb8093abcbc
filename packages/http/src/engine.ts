import { randomUUID } from 'node:crypto';
import { createStoppable, type StartedHandle } from '@onceflow/core';
import {
  createPgIdempotencyKeyStore,
  type IdempotencyKeyRecord,
  type IdempotencyKeyStore,
  type IdempotencyKeyTransaction,
  missingPoolErrorListener,
  type StoredRequest,
} from '@onceflow/postgres';
import { FingerprintError, requestFingerprint } from './fingerprint';
import { parseIdempotencyKey, replayedHeader } from './key-header';
import { InFlightLimiter } from './limiter';
import { type IdempotencyEngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './options';
import { problemResponse } from './problem';
import { type HttpResult, serializeResponse } from './response';
import {
  type IdempotentRequest,
  isRecoveryPoint,
  type PhaseContext,
  type RouteSpec,
  startedRecoveryPoint,
} from './route';

/** Outcome of {@link IdempotencyEngine.admit}: the key to use, or the answer to send right away. */
export type Admission = { ok: true; key: string | undefined } | { ok: false; response: HttpResult };

/** What {@link IdempotencyEngine.resume} did with an abandoned request. */
export type ResumeOutcome = 'completed' | 'released' | 'skipped' | 'failed';

/** The framework-independent Idempotency-Key engine; adapters translate requests and responses. */
export interface IdempotencyEngine extends StartedHandle {
  readonly options: ResolvedEngineOptions;
  readonly store: IdempotencyKeyStore;
  /**
   * The checks that run before the body is read and before any row is touched: key syntax and
   * the route's key requirement. Adapters call it as early as their framework allows.
   */
  admit(keyHeader: string | string[] | undefined, route: RouteSpec): Admission;
  /** Runs a request on a route: replays, refuses, or executes its phases and stores the outcome. */
  handle(request: IdempotentRequest, route: RouteSpec): Promise<HttpResult>;
  /** Makes a route known to completers, which finish abandoned requests by route id. */
  register(route: RouteSpec): void;
  /** The routes registered so far, by id. */
  readonly routes: ReadonlyMap<string, RouteSpec>;
  /** Finishes an abandoned multi-phase request from its last recovery point, if it is still abandoned. */
  resume(scope: string, key: string): Promise<ResumeOutcome>;
}

type Step =
  | { type: 'busy'; retryAfterS: number }
  | { type: 'mismatch' }
  | { type: 'replay'; response: HttpResult }
  | { type: 'done'; response: HttpResult }
  | { type: 'next'; requestId: string; recoveryPoint: string }
  | { type: 'lost' }
  | { type: 'skip' }
  | { type: 'failed' };

/** Unwinds the phase's transaction while still answering with `response` (a released outcome). */
class Released extends Error {
  constructor(readonly response: HttpResult) {
    super('released');
  }
}

interface PhaseState {
  /** True once the key has a committed record (a previous phase ran). */
  stored: boolean;
  requestId: string;
  recoveryPoint: string;
  data: unknown;
  token: string;
  fingerprint: Buffer;
}

function encodeBody(body: unknown): { bodyType: StoredRequest['bodyType']; bytes: Buffer | null } {
  if (body === undefined || body === null) return { bodyType: 'none', bytes: null };
  if (Buffer.isBuffer(body) || body instanceof Uint8Array)
    return { bodyType: 'bytes', bytes: Buffer.from(body) };
  if (typeof body === 'string') return { bodyType: 'text', bytes: Buffer.from(body, 'utf8') };
  return { bodyType: 'json', bytes: Buffer.from(JSON.stringify(body), 'utf8') };
}

function decodeBody(request: StoredRequest, bytes: Buffer | null): unknown {
  if (request.bodyType === 'none' || bytes === null) return undefined;
  if (request.bodyType === 'bytes') return bytes;
  const text = bytes.toString('utf8');
  return request.bodyType === 'json' ? JSON.parse(text) : text;
}

/** Creates the engine; throws OF_INVALID_OPTIONS for invalid options. */
export function createIdempotencyEngine(options: IdempotencyEngineOptions): IdempotencyEngine {
  const resolved = resolveEngineOptions(options);
  const store = options.store ?? createPgIdempotencyKeyStore(options.pool!, { schema: resolved.schema });
  if (options.pool !== undefined) {
    const warning = missingPoolErrorListener(options.pool, 'idempotency');
    if (warning !== undefined)
      try {
        resolved.onError(warning, { route: 'startup', scope: '', key: undefined });
      } catch {
        // A failing reporter must not stop the engine.
      }
  }
  const limiter = new InFlightLimiter(resolved.maxInFlight, resolved.maxKeysInFlightPerScope);
  const routes = new Map<string, RouteSpec>();
  const running = new Set<Promise<unknown>>();
  const retentionMs = resolved.retentionHours * 3_600_000;
  let stopped = false;

  function storedRequest(
    request: IdempotentRequest,
    route: RouteSpec,
  ): { request: StoredRequest; bytes: Buffer | null } {
    const headers: Record<string, string> = {};
    for (const name of ['content-type', ...resolved.fingerprintHeaders, ...route.fingerprintHeaders]) {
      const value = request.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    const { bodyType, bytes } = encodeBody(request.body);
    return {
      request: { method: request.method, url: request.url, params: { ...request.params }, headers, bodyType },
      bytes,
    };
  }

  async function runPhase(
    tx: IdempotencyKeyTransaction,
    request: IdempotentRequest,
    route: RouteSpec,
    state: PhaseState,
  ): Promise<Step> {
    const phase = route.phases[state.recoveryPoint];
    if (!phase) throw new Error(`route ${route.id} has no phase for recovery point ${state.recoveryPoint}`);
    const context: PhaseContext = {
      ...tx.context,
      requestId: state.requestId,
      recoveryPoint: state.recoveryPoint,
      data: state.data,
      foreignKey: (step) => `${state.requestId}:${step}`,
    };
    const result = await phase(request, context);
    if (isRecoveryPoint(result)) {
      const next = result.recoveryPoint;
      if (!route.phases[next] || next === startedRecoveryPoint)
        throw new Error(
          `route ${route.id}: phase ${state.recoveryPoint} returned unknown recovery point ${next}`,
        );
      const phaseData = result.data ?? null;
      if (!state.stored) {
        const stored = route.multiPhase ? storedRequest(request, route) : undefined;
        tx.insert({
          requestId: state.requestId,
          scope: request.scope,
          key: request.key!,
          fingerprint: state.fingerprint,
          route: route.id,
          recoveryPoint: next,
          phaseData,
          request: stored?.request ?? null,
          requestBody: stored?.bytes ?? null,
          response: null,
          leaseToken: state.token,
          leaseMs: resolved.leaseMs,
          retentionMs,
        });
      } else {
        tx.advance({ recoveryPoint: next, phaseData, leaseToken: state.token, leaseMs: resolved.leaseMs });
      }
      return { type: 'next', requestId: state.requestId, recoveryPoint: next };
    }
    const response = serializeResponse(result);
    if (result.release === true || resolved.releaseOn(response.status)) throw new Released(response);
    if (!state.stored) {
      tx.insert({
        requestId: state.requestId,
        scope: request.scope,
        key: request.key!,
        fingerprint: state.fingerprint,
        route: route.id,
        recoveryPoint: state.recoveryPoint,
        phaseData: null,
        request: null,
        requestBody: null,
        response,
        leaseToken: state.token,
        leaseMs: resolved.leaseMs,
        retentionMs,
      });
    } else {
      tx.complete(response);
    }
    return { type: 'done', response };
  }

  /**
   * Claims the key and drives the request through its phases, one transaction each. `resolve`
   * gives the request to run for the key as found (a live request, or one rebuilt by a completer);
   * `fingerprint` undefined means "resume only": never create, replay or refuse.
   */
  async function runKeyed(
    scope: string,
    key: string,
    fingerprint: Buffer | undefined,
    resolve: (
      record: IdempotencyKeyRecord | undefined,
    ) => { request: IdempotentRequest; route: RouteSpec } | undefined,
  ): Promise<{ step: Step; response: HttpResult | undefined }> {
    const token = randomUUID();
    let committed = false;
    let routeId = 'unknown route';
    try {
      let target: { request: IdempotentRequest; route: RouteSpec } | undefined;
      let step: Step = await store.claim(scope, key, { wait: false }, async (claim, tx) => {
        if (claim.status === 'busy') return { type: 'busy', retryAfterS: 1 };
        const record = claim.status === 'found' ? claim.record : undefined;
        target = resolve(record);
        if (!target) return { type: 'skip' };
        routeId = target.route.id;
        if (!record) {
          if (fingerprint === undefined) return { type: 'skip' };
          const state = {
            stored: false,
            requestId: randomUUID(),
            recoveryPoint: startedRecoveryPoint,
            data: undefined,
          };
          return runPhase(tx, target.request, target.route, { ...state, token, fingerprint });
        }
        if (fingerprint !== undefined && !record.fingerprint.equals(fingerprint)) return { type: 'mismatch' };
        if (record.state === 'completed')
          return fingerprint === undefined
            ? { type: 'skip' }
            : { type: 'replay', response: record.response! };
        if (record.leaseLive) return { type: 'busy', retryAfterS: record.leaseRemainingMs / 1000 };
        // Taking over: the phase's own key write (next recovery point or completion) carries the
        // new lease token, and a rollback leaves the old, expired lease as it was.
        const state = {
          stored: true,
          requestId: record.requestId,
          recoveryPoint: record.recoveryPoint,
          data: record.phaseData,
        };
        return runPhase(tx, target.request, target.route, {
          ...state,
          token,
          fingerprint: record.fingerprint,
        });
      });
      while (step.type === 'next' && target) {
        const { request, route } = target;
        committed = true;
        await resolved.afterPhaseCommit?.({
          route: route.id,
          scope,
          key,
          requestId: step.requestId,
          recoveryPoint: step.recoveryPoint,
        });
        // Wait rather than fail: the only other holder is a request being told 409.
        step = await store.claim(scope, key, { wait: true }, async (claim, tx) => {
          const record = claim.status === 'found' ? claim.record : undefined;
          if (record?.state !== 'in_progress' || record.leaseToken !== token) return { type: 'lost' };
          const state = {
            stored: true,
            requestId: record.requestId,
            recoveryPoint: record.recoveryPoint,
            data: record.phaseData,
          };
          return runPhase(tx, request, route, { ...state, token, fingerprint: record.fingerprint });
        });
      }
      switch (step.type) {
        case 'busy':
          return {
            step,
            response: problemResponse('request-in-progress', { retryAfterS: step.retryAfterS }),
          };
        case 'lost':
          return {
            step,
            response: problemResponse('request-in-progress', { retryAfterS: resolved.leaseMs / 1000 }),
          };
        case 'mismatch':
          return { step, response: problemResponse('key-reused') };
        case 'replay':
          return {
            step,
            response: { ...step.response, headers: { ...step.response.headers, [replayedHeader]: 'true' } },
          };
        case 'done':
          return { step, response: step.response };
        default:
          return { step, response: undefined };
      }
    } catch (error) {
      // A later phase failed: its own transaction rolled back, the earlier phases stay committed.
      // Ending the lease lets a retry resume from the last recovery point at once.
      if (committed)
        await store
          .releaseLease(scope, key, token)
          .catch((releaseError: unknown) => resolved.onError(releaseError, { route: routeId, scope, key }));
      if (error instanceof Released)
        return { step: { type: 'done', response: error.response }, response: error.response };
      resolved.onError(error, { route: routeId, scope, key });
      return { step: { type: 'failed' }, response: undefined };
    }
  }

  async function runUnkeyed(request: IdempotentRequest, route: RouteSpec): Promise<HttpResult> {
    const requestId = randomUUID();
    let recoveryPoint: string = startedRecoveryPoint;
    let data: unknown;
    try {
      for (;;) {
        const phase = route.phases[recoveryPoint];
        if (!phase) throw new Error(`route ${route.id} has no phase for recovery point ${recoveryPoint}`);
        const outcome = await store.transaction(async (transaction) => {
          const context: PhaseContext = {
            ...transaction,
            requestId,
            recoveryPoint,
            data,
            foreignKey: (step) => `${requestId}:${step}`,
          };
          const result = await phase(request, context);
          if (isRecoveryPoint(result)) return result;
          const response = serializeResponse(result);
          if (result.release === true || resolved.releaseOn(response.status)) throw new Released(response);
          return response;
        });
        if (!('recoveryPoint' in outcome)) return outcome;
        recoveryPoint = outcome.recoveryPoint;
        data = outcome.data;
      }
    } catch (error) {
      if (error instanceof Released) return error.response;
      resolved.onError(error, { route: route.id, scope: request.scope, key: undefined });
      return problemResponse('internal-error');
    }
  }

  function track<T>(work: Promise<T>): Promise<T> {
    running.add(work);
    void work.finally(() => running.delete(work)).catch(() => undefined);
    return work;
  }

  async function handle(request: IdempotentRequest, route: RouteSpec): Promise<HttpResult> {
    if (stopped) return problemResponse('unavailable', { retryAfterS: 1 });
    const { key, scope } = request;
    if (key === undefined) {
      if (route.required) return problemResponse('key-missing');
      return track(runUnkeyed(request, route));
    }
    // Without a principal, keys of different clients would meet in one scope.
    if (typeof scope !== 'string' || scope.length === 0) return problemResponse('scope-missing');
    let fingerprint: Buffer;
    try {
      fingerprint = requestFingerprint(request, [
        ...resolved.fingerprintHeaders,
        ...route.fingerprintHeaders,
      ]);
    } catch (error) {
      if (error instanceof FingerprintError) return problemResponse('body-invalid');
      throw error;
    }
    const admission = limiter.enter(scope, key);
    if (admission === 'duplicate') return problemResponse('request-in-progress', { retryAfterS: 1 });
    if (admission === 'flood') return problemResponse('too-many-requests', { retryAfterS: 1 });
    if (admission === 'full') return problemResponse('unavailable', { retryAfterS: 1 });
    try {
      const { response } = await track(runKeyed(scope, key, fingerprint, () => ({ request, route })));
      return response ?? problemResponse('internal-error');
    } finally {
      limiter.leave(scope, key);
    }
  }

  async function resume(scope: string, key: string): Promise<ResumeOutcome> {
    if (stopped) return 'skipped';
    if (limiter.enter(scope, key) !== 'admitted') return 'skipped';
    try {
      const { step } = await track(
        runKeyed(scope, key, undefined, (record) => {
          if (record?.state !== 'in_progress' || record.request === null) return undefined;
          const route = routes.get(record.route);
          if (!route) return undefined;
          const stored = record.request;
          const request: IdempotentRequest = {
            method: stored.method,
            route: record.route,
            url: stored.url,
            params: stored.params,
            headers: stored.headers,
            body: decodeBody(stored, record.requestBody),
            scope,
            key,
            raw: undefined,
          };
          return { request, route };
        }),
      );
      if (step.type === 'done') return resolved.releaseOn(step.response.status) ? 'released' : 'completed';
      return step.type === 'failed' ? 'failed' : 'skipped';
    } finally {
      limiter.leave(scope, key);
    }
  }

  function admit(keyHeader: string | string[] | undefined, route: RouteSpec): Admission {
    const parsed = parseIdempotencyKey(keyHeader, {
      maxKeyLength: resolved.maxKeyLength,
      acceptUnquoted: resolved.acceptUnquotedKeys,
    });
    if (!parsed.ok) return { ok: false, response: problemResponse('key-malformed') };
    if (parsed.key === undefined && route.required)
      return { ok: false, response: problemResponse('key-missing') };
    return { ok: true, key: parsed.key };
  }

  const engine = {
    options: resolved,
    store,
    admit,
    handle,
    resume,
    routes,
    register(route: RouteSpec): void {
      routes.set(route.id, route);
    },
  };
  return createStoppable(engine, async () => {
    stopped = true;
    await Promise.allSettled([...running]);
  });
}
