import { randomUUID } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import {
  alreadyStarted,
  createStoppable,
  type HttpRequestContext,
  httpRequestChannel,
  type IdempotencyOutcome,
  invalidOptions,
  isConnectionError,
  isOnceflowError,
  OnceflowError,
  reportError,
  type StartedHandle,
  toOnceflowError,
  traceCall,
} from '@onceflow/core';
import {
  createPgIdempotencyKeyStore,
  type IdempotencyKeyRecord,
  type IdempotencyKeyStore,
  type IdempotencyKeyTransaction,
  missingPoolErrorListener,
  type StoredRequest,
  type StoredResponse,
} from '@onceflow/postgres';
import { createIdempotencyCompleter, type IdempotencyCompleter } from './completer';
import { requestFingerprint } from './fingerprint';
import { parseIdempotencyKey, replayedHeader } from './key-header';
import { InFlightLimiter } from './limiter';
import { type IdempotencyEngineOptions, type ResolvedEngineOptions, resolveEngineOptions } from './options';
import { errorResponse, type ProblemKind, rejectedKind } from './problem';
import { createIdempotencyReaper, type IdempotencyReaper } from './reaper';
import { type HttpResult, serializeResponse } from './response';
import {
  type IdempotentRequest,
  isRecoveryPoint,
  type PhaseContext,
  type RouteSpec,
  startedRecoveryPoint,
} from './route';

const requestTracing = diagnosticsChannel.tracingChannel<unknown, HttpRequestContext>(httpRequestChannel);

/** Where a request notes how it was answered, for the tracing channel. */
interface OutcomeNote {
  outcome?: IdempotencyOutcome;
}

/** How a keyed run's last step answered the request. */
function outcomeOf(step: Step): IdempotencyOutcome {
  switch (step.type) {
    case 'done':
      return 'claimed';
    case 'replay':
      return 'replayed';
    case 'mismatch':
      return 'conflict';
    case 'locked':
    case 'busy':
    case 'lost':
      return 'in-flight';
    default:
      return 'failed';
  }
}

/** Runs a request, traced on the request channel while someone listens. */
function traced(
  request: IdempotentRequest,
  route: RouteSpec,
  run: (note: OutcomeNote) => Promise<HttpResult>,
): Promise<HttpResult> {
  if (!requestTracing.hasSubscribers) return run({});
  const context: HttpRequestContext = {
    route: route.id,
    method: request.method,
    headers: request.headers,
    scope: request.key === undefined ? undefined : request.scope,
    key: request.key,
  };
  return traceCall(requestTracing, context, async () => {
    const response = await run(context);
    context.status = response.status;
    return response;
  });
}

/** Outcome of {@link IdempotencyEngine.admit}: the key to use, or the answer to send right away. */
export type Admission = { ok: true; key: string | undefined } | { ok: false; response: HttpResult };

/** What {@link IdempotencyEngine.resume} did with an abandoned request. */
export type ResumeOutcome = 'completed' | 'released' | 'skipped' | 'failed';

/**
 * The framework-independent Idempotency-Key engine; adapters translate requests and responses. It
 * answers requests once started: before `start()` and after its handle's `stop()` every request is
 * answered 503.
 */
export interface IdempotencyEngine {
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
  /** onceflow's answer for a problem, in this engine's `errorFormat`; adapters use it for refused bodies. */
  errorResponse(kind: ProblemKind, options?: { retryAfterS?: number }): HttpResult;
  /**
   * Starts answering requests, and runs the completer and the reaper unless they were turned off.
   * The handle's `stop()` answers new requests 503, waits for those in flight and stops both. Call
   * once: a second call rejects with OF_ALREADY_STARTED.
   */
  start(): Promise<StartedHandle>;
}

type Step =
  | { type: 'locked' }
  | { type: 'busy'; retryAfterS: number }
  | { type: 'mismatch' }
  | { type: 'replay'; response: HttpResult }
  | { type: 'done'; response: HttpResult }
  | { type: 'next'; requestId: string; recoveryPoint: string }
  | { type: 'lost' }
  | { type: 'skip' }
  | { type: 'failed' };

/**
 * Unwinds the phase's transaction while still answering with `response` (a released outcome). A
 * signal to roll back, not an error: the engine catches it itself, it never leaves the engine.
 */
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

function resolveStore(options: IdempotencyEngineOptions, schema: string): IdempotencyKeyStore {
  if (options.store !== undefined) {
    if (options.pool !== undefined) invalidOptions('idempotency', 'give either pool or store, not both');
    for (const name of ['schema', 'retry'] as const)
      if (options[name] !== undefined)
        invalidOptions('idempotency', `${name} belongs to the store: pass it to the store's factory instead`);
    if (typeof options.store.claim !== 'function')
      invalidOptions(
        'idempotency',
        'store must be an IdempotencyKeyStore (createPgIdempotencyKeyStore from @onceflow/postgres)',
      );
    return options.store;
  }
  if (typeof options.pool?.connect !== 'function')
    invalidOptions('idempotency', 'give a pg `pool` (or a key `store`)');
  try {
    return createPgIdempotencyKeyStore(options.pool, {
      schema,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
    });
  } catch (error) {
    if (isOnceflowError(error, 'OF_INVALID_IDENTIFIER')) invalidOptions('idempotency', error.message);
    throw error;
  }
}

/** Creates the engine, not yet answering requests; throws OF_INVALID_OPTIONS for invalid options. */
export function createIdempotencyEngine(options: IdempotencyEngineOptions): IdempotencyEngine {
  const resolved = resolveEngineOptions(options);
  const store = resolveStore(options, resolved.schema);
  // A pool whose idle connections may break without a listener would end the process: say so now.
  if (options.pool !== undefined) {
    const warning = missingPoolErrorListener(options.pool, 'idempotency');
    if (warning !== undefined) reportError(resolved, 'warn', warning);
  }
  const limiter = new InFlightLimiter(resolved.maxInFlight, resolved.maxKeysInFlightPerScope);
  const routes = new Map<string, RouteSpec>();
  const running = new Set<Promise<unknown>>();
  const { retentionMs, logger } = resolved;
  const stopping = new AbortController();
  let startCalled = false;
  let started = false;
  let stopped = false;
  let warnedNotStarted = false;

  /** Reports a request that failed: the client gets a generic answer, this gets the cause. */
  function report(error: unknown, route: string, scope: string, key: string | undefined): void {
    const details = key === undefined ? { route, scope } : { route, scope, key };
    reportError(
      resolved,
      'error',
      isConnectionError(error)
        ? toOnceflowError(error, 'OF_UNAVAILABLE', `request on ${route} failed: database unavailable`, {
            retriable: true,
            details,
          })
        : toOnceflowError(error, 'OF_HANDLER_FAILED', `request on ${route} failed`, { details }),
    );
  }

  /** The answer while not started: 503, and once an error saying why. */
  function notStarted(): HttpResult {
    if (!warnedNotStarted) {
      warnedNotStarted = true;
      reportError(
        resolved,
        'error',
        new OnceflowError(
          'OF_STOPPED',
          'idempotency engine: a request arrived before start(); it is answered 503 until the engine is started',
        ),
      );
    }
    return fail('unavailable', 1);
  }
  /** Requests waiting for a key that another request of this process is running. */
  let waiting = 0;
  /** Lock-free reads of keys under way; bounded like executions, so refusals stay cheap under load. */
  let peeking = 0;

  function fail(kind: ProblemKind, retryAfterS?: number): HttpResult {
    return errorResponse(
      kind,
      retryAfterS === undefined
        ? { format: resolved.errorFormat }
        : { format: resolved.errorFormat, retryAfterS },
    );
  }

  function replayOf(response: StoredResponse): HttpResult {
    return { ...response, headers: { ...response.headers, [replayedHeader]: 'true' } };
  }

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
    if (!phase) throw missingPhase(route, state.recoveryPoint);
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
        throw new OnceflowError(
          'OF_HANDLER_FAILED',
          `route ${route.id}: phase ${state.recoveryPoint} returned unknown recovery point ${next}`,
          { details: { route: route.id, recoveryPoint: state.recoveryPoint, returned: next } },
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
        if (claim.status === 'busy') return { type: 'locked' };
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
        await resolved.testHooks.afterPhaseCommit?.({
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
        case 'locked':
          return { step, response: fail('request-in-progress', 1) };
        case 'busy':
          return { step, response: fail('request-in-progress', step.retryAfterS) };
        case 'lost':
          return { step, response: fail('request-in-progress', resolved.leaseMs / 1000) };
        case 'mismatch':
          return { step, response: fail('key-reused') };
        case 'replay':
          return { step, response: replayOf(step.response) };
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
          .catch((releaseError: unknown) => report(releaseError, routeId, scope, key));
      if (error instanceof Released)
        return { step: { type: 'done', response: error.response }, response: error.response };
      report(error, routeId, scope, key);
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
        if (!phase) throw missingPhase(route, recoveryPoint);
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
      report(error, route.id, request.scope, undefined);
      return fail('internal-error');
    }
  }

  function track<T>(work: Promise<T>): Promise<T> {
    running.add(work);
    void work.finally(() => running.delete(work)).catch(() => undefined);
    return work;
  }

  /**
   * The key's committed state, read without its lock: the stored response of a completed key, or
   * 422 for another request under a known key. No answer while the key is open (absent or in
   * progress); `retryAfterS` then tells how long a live lease of another process still runs.
   */
  async function lookup(
    scope: string,
    key: string,
    fingerprint: Buffer,
    routeId: string,
  ): Promise<{ answer?: HttpResult; outcome?: IdempotencyOutcome; retryAfterS: number }> {
    if (peeking >= resolved.maxInFlight) return { retryAfterS: 1 };
    let snapshot: Awaited<ReturnType<IdempotencyKeyStore['peek']>>;
    peeking++;
    try {
      snapshot = await store.peek(scope, key);
    } catch (error) {
      report(error, routeId, scope, key);
      return { answer: fail('internal-error'), outcome: 'failed', retryAfterS: 1 };
    } finally {
      peeking--;
    }
    if (!snapshot) return { retryAfterS: 1 };
    if (!snapshot.fingerprint.equals(fingerprint))
      return { answer: fail('key-reused'), outcome: 'conflict', retryAfterS: 1 };
    if (snapshot.state === 'completed' && snapshot.response)
      return { answer: replayOf(snapshot.response), outcome: 'replayed', retryAfterS: 1 };
    return { retryAfterS: snapshot.leaseLive ? snapshot.leaseRemainingMs / 1000 : 1 };
  }

  async function handleKeyed(
    request: IdempotentRequest,
    route: RouteSpec,
    scope: string,
    key: string,
    fingerprint: Buffer,
    note: OutcomeNote,
  ): Promise<HttpResult> {
    const deadline = Date.now() + resolved.inFlightWaitMs;
    // Until a later answer says otherwise, the request waits for a key in flight.
    note.outcome = 'in-flight';
    for (;;) {
      const admission = limiter.enter(scope, key);
      if (admission === 'admitted') {
        let result: Awaited<ReturnType<typeof runKeyed>>;
        try {
          result = await runKeyed(scope, key, fingerprint, () => ({ request, route }));
        } finally {
          limiter.leave(scope, key);
        }
        note.outcome = outcomeOf(result.step);
        if (result.step.type !== 'locked') return result.response ?? fail('internal-error');
        // Another process holds the key's lock: it may be running the key, or replaying it.
        const stored = await lookup(scope, key, fingerprint, route.id);
        if (stored.outcome) note.outcome = stored.outcome;
        return stored.answer ?? fail('request-in-progress', stored.retryAfterS);
      }
      // A completed key needs no slot and no lock: whatever runs here, its stored response is the answer.
      const stored = await lookup(scope, key, fingerprint, route.id);
      if (stored.outcome) note.outcome = stored.outcome;
      if (stored.answer) return stored.answer;
      if (admission === 'flood' || admission === 'full') note.outcome = 'refused';
      if (admission === 'flood') return fail('too-many-requests', 1);
      if (admission === 'full') return fail('unavailable', 1);
      // The key is running in this process: wait for its outcome, then look again.
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0 || waiting >= resolved.maxInFlight)
        return fail('request-in-progress', stored.retryAfterS);
      waiting++;
      try {
        await limiter.settled(scope, key, remainingMs, stopping.signal);
      } finally {
        waiting--;
      }
      if (stopped) {
        note.outcome = 'refused';
        return fail('unavailable', 1);
      }
    }
  }

  async function handle(request: IdempotentRequest, route: RouteSpec): Promise<HttpResult> {
    if (!started) return notStarted();
    if (stopped) return fail('unavailable', 1);
    const { key, scope } = request;
    if (key === undefined) {
      if (route.required) return fail('key-missing');
      return track(
        traced(request, route, (note) => {
          note.outcome = 'unkeyed';
          return runUnkeyed(request, route);
        }),
      );
    }
    // Without a principal, keys of different clients would meet in one scope.
    if (typeof scope !== 'string' || scope.length === 0) return fail('scope-missing');
    let fingerprint: Buffer;
    try {
      fingerprint = requestFingerprint(request, [
        ...resolved.fingerprintHeaders,
        ...route.fingerprintHeaders,
      ]);
    } catch (error) {
      const kind = rejectedKind(error);
      if (kind) return fail(kind);
      throw error;
    }
    return track(
      traced(request, route, (note) => handleKeyed(request, route, scope, key, fingerprint, note)),
    );
  }

  async function resume(scope: string, key: string): Promise<ResumeOutcome> {
    if (!started || stopped) return 'skipped';
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
    if (!parsed.ok) return { ok: false, response: fail('key-malformed') };
    if (parsed.key === undefined && route.required) return { ok: false, response: fail('key-missing') };
    return { ok: true, key: parsed.key };
  }

  const engine: IdempotencyEngine = {
    options: resolved,
    store,
    admit,
    handle,
    resume,
    routes,
    register(route: RouteSpec): void {
      routes.set(route.id, route);
    },
    errorResponse: (kind: ProblemKind, options: { retryAfterS?: number } = {}) =>
      fail(kind, options.retryAfterS),
    async start() {
      if (startCalled) alreadyStarted('idempotency engine');
      startCalled = true;
      const helpers = [completer, reaper].filter((helper) => helper !== undefined);
      const handles = await Promise.all(helpers.map((helper) => helper.start()));
      started = true;
      logger.info('idempotency engine started');
      return createStoppable({}, async () => {
        stopped = true;
        // Waiting requests give up at once and answer 503 instead of holding stop() for inFlightWaitMs.
        stopping.abort();
        await Promise.all(handles.map((handle) => handle.stop()));
        await Promise.allSettled([...running]);
        logger.info('idempotency engine stopped');
      });
    },
  };
  // Checked now, with the engine's options; run by start().
  const completer: IdempotencyCompleter | undefined =
    options.completer === false ? undefined : createIdempotencyCompleter(engine, options.completer ?? {});
  const reaper: IdempotencyReaper | undefined =
    options.reaper === false ? undefined : createIdempotencyReaper(engine, options.reaper ?? {});
  return engine;
}

function missingPhase(route: RouteSpec, recoveryPoint: string): OnceflowError {
  return new OnceflowError(
    'OF_HANDLER_FAILED',
    `route ${route.id} has no phase for recovery point ${recoveryPoint}: a request stored by another version of the route?`,
    { details: { route: route.id, recoveryPoint } },
  );
}
