import type { TracingChannel } from 'node:diagnostics_channel';
import type { InboundMessage } from './envelope';
import type { PublishRecord } from './publisher-transport';

/**
 * Wraps one traced call: it must call `run` once and settle as `run` settles (same result, same
 * error). A tracing package sets it to run the call inside its context, e.g. OpenTelemetry's
 * `context.with(…)`, so that the spans made during the call (a handler's database queries) are
 * children of its span.
 */
export type TracedCallWrapper = <T>(run: () => Promise<T>) => Promise<T>;

/**
 * What every onceflow tracing channel carries. The engines trace a call with Node's
 * `TracingChannel.tracePromise`, so subscribers get its `start`, `end`, `asyncStart`, `asyncEnd` and
 * `error` events (and `result` or `error` set on the context). A `start` subscriber may set `around`:
 * `bindStore` needs the AsyncLocalStorage of whoever keeps the context, which OpenTelemetry's context
 * manager does not expose, so `around` is the way to run the call in a context of one's own.
 * Several subscribers compose: wrap the `around` already there instead of replacing it. Nothing is
 * built when nobody subscribes.
 */
export interface TracedCallContext {
  /** Set by a `start` subscriber; the engine then calls the traced function through it. */
  around?: TracedCallWrapper;
}

/**
 * The `node:diagnostics_channel` TracingChannel around each inbox handler call: `handler(message)`
 * (one message) or `handleBatch(messages)`, inside the inbox transaction. A failed call is traced
 * again on its retry.
 */
export const inboxHandleChannel = 'onceflow:inbox:handle';

/** What {@link inboxHandleChannel} carries. */
export interface InboxHandleContext extends TracedCallContext {
  /** The inbox consumer name. */
  readonly consumer: string;
  readonly topic: string;
  readonly partition: number;
  /** The messages of the call: one for a per-message handler. */
  readonly messages: readonly InboundMessage[];
  /** True for a `handleBatch` call. */
  readonly batch: boolean;
}

/**
 * The TracingChannel around each publish of the outbox relay: one all-or-nothing Kafka transaction
 * of records, in order. A batch the broker partly refuses is published again in parts, each traced.
 */
export const relaySendChannel = 'onceflow:relay:send';

/** What {@link relaySendChannel} carries. */
export interface RelaySendContext extends TracedCallContext {
  /** The records as sent, headers included (the stored event headers, `message-id` among them). */
  readonly records: readonly PublishRecord[];
}

/**
 * How the Idempotency-Key engine answered a request:
 * - `claimed`: this request ran the route's phases under the key (a new key, or one taken over);
 * - `replayed`: the key's stored response was sent back;
 * - `in-flight`: the key is being run by another request (409 with Retry-After);
 * - `conflict`: the key was used for another request (422);
 * - `refused`: not run for lack of capacity or because the engine is stopping (429 or 503);
 * - `failed`: running it failed (500);
 * - `unkeyed`: the request had no key and ran without one.
 */
export type IdempotencyOutcome =
  | 'claimed'
  | 'replayed'
  | 'in-flight'
  | 'conflict'
  | 'refused'
  | 'failed'
  | 'unkeyed';

/**
 * The TracingChannel around each request the Idempotency-Key engine runs on a route (keyed or not):
 * the key claim, the phases (the route's handler) and the replay.
 */
export const httpRequestChannel = 'onceflow:http:request';

/** What {@link httpRequestChannel} carries. */
export interface HttpRequestContext extends TracedCallContext {
  /** The route's id: method and path pattern, e.g. `POST /charges/:id`. */
  readonly route: string;
  readonly method: string;
  /** Request headers, lower case (`traceparent` among them when the client sent one). */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The key's scope; undefined without a key. */
  readonly scope: string | undefined;
  /** The Idempotency-Key; undefined without one. */
  readonly key: string | undefined;
  /** How the request was answered, set by the engine before the traced call settles. */
  outcome?: IdempotencyOutcome;
  /** The response status, set by the engine before the traced call settles. */
  status?: number;
}

/**
 * Runs `run` traced on `channel` with `context`: through `context.around` when a `start` subscriber
 * set it. Callers check `channel.hasSubscribers` first, so that an unobserved call builds nothing.
 */
export function traceCall<C extends TracedCallContext, T>(
  channel: TracingChannel<unknown, C>,
  context: C,
  run: () => Promise<T>,
): Promise<T> {
  return channel.tracePromise(() => (context.around === undefined ? run() : context.around(run)), context);
}
