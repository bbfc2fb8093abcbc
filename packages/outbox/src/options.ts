import {
  type BaseOptions,
  checkDurationMs,
  type ErrorHook,
  invalidOptions,
  isOnceflowError,
  type Logger,
  type PublisherTransport,
  type RetryPolicy,
  resolveLogger,
  resolveRetryPolicy,
} from '@onceflow/core';
import {
  createPgOutboxStore,
  defaultSchemaName,
  type OutboxRow,
  type OutboxStatus,
  type OutboxStore,
  type ParkedEvent,
} from '@onceflow/postgres';
import type { Pool } from 'pg';

/** A batch the relay published and settled. */
export interface PublishedBatch {
  lane: number;
  /** Events published in this batch. */
  count: number;
  /** Milliseconds from handing the batch to the publisher until the broker acknowledged it. */
  publishLatencyMs: number;
  /** Largest time in milliseconds from an event's insert (database clock) to its acknowledgement. */
  maxEndToEndMs: number;
}

/**
 * Callbacks for metrics. Each is optional and must not throw (what it throws is ignored); none is
 * awaited. The counters operators usually want: `onPublished` (sum of `count` = published events,
 * `publishLatencyMs`/`maxEndToEndMs` = latency) and `onBacklog` (`backlog`, `oldestAgeMs`, `parked`).
 * Errors go to the relay's `logger` and `onError`, not here.
 */
export interface OutboxRelayObserver {
  /** After every settled batch. */
  onPublished?(batch: PublishedBatch): void;
  /** Every `metricsIntervalMs`: backlog size, oldest unpublished age, parked count, live relays. */
  onBacklog?(status: OutboxStatus): void;
  /** When an event is parked; its key is held back until it is unparked. */
  onParked?(event: ParkedEvent): void;
  /** When this relay starts publishing a lane. */
  onLaneAcquired?(lane: number, epoch: number): void;
  /** When this relay stops publishing a lane: `released` (rebalance, stop) or `lost` (taken over or fenced). */
  onLaneReleased?(lane: number, reason: 'released' | 'lost'): void;
}

/**
 * Seams for tests, awaited by the relay around the publish of a claimed batch, to inject faults or
 * take measurements at an exact point. Not for production use.
 */
export interface OutboxRelayTestHooks {
  /** After the claim, before the publish. */
  beforePublish?(lane: number, rows: readonly OutboxRow[]): Promise<void>;
  /** After the broker acknowledged, before the rows are settled in Postgres. */
  afterPublish?(lane: number, rows: readonly OutboxRow[]): Promise<void>;
}

/**
 * Options of `createOutboxRelay`: where the outbox is (a pg `pool`, or any `store`), the Kafka side
 * (`transport`), and how the relay runs. `retry` is the backoff after a transient failure (broker or
 * database unavailable), which the relay retries until stopped: its `maxAttempts` does not apply.
 */
export interface OutboxRelayOptions extends BaseOptions {
  /** The Kafka side, for example `createKafkajsPublisherTransport` from @onceflow/kafkajs. Required. */
  transport: PublisherTransport;
  /**
   * Pool of the Postgres outbox in `schema`; the relay also holds one of its connections for LISTEN.
   * Give exactly one of `pool` and `store`.
   */
  pool?: Pool;
  /** The outbox store, instead of `pool` (its schema is the store's; `schema` must not be given then). */
  store?: OutboxStore;
  /**
   * Most rows claimed and published per batch, that is per Kafka transaction; the lanes with waiting
   * rows share it. Default: 1000.
   */
  batchSize?: number;
  /** How often, in milliseconds, an idle lane is polled when no notification arrives. Default: 1000. */
  pollIntervalMs?: number;
  /** Lifetime of a lane lease in milliseconds; a dead relay's lanes are taken over after it. Default: 10000. */
  leaseMs?: number;
  /** Interval in milliseconds between lease renewals; must be below half of `leaseMs`. Default: 2000. */
  heartbeatIntervalMs?: number;
  /** Interval in milliseconds of `observer.onBacklog`; 0 disables it. Default: 5000. */
  metricsIntervalMs?: number;
  /**
   * How long, in milliseconds, the events of a topic the broker refuses (it does not exist, this client
   * may not write to it) are tried again before they are parked. Meanwhile they wait, each try reported
   * through the logger and `onError` (OF_TOPIC_MISSING), and every other topic and key keeps flowing;
   * tries follow `retry`'s backoff. Then the first event of each key is parked with an error naming the
   * topic, and the key's later events wait behind it; the topic's events of other keys are parked as
   * soon as they are tried, until one of its events is published again (the topic was created). A
   * topic with an invalid name is parked at once. 0 parks at the first refusal. Default: 30000.
   */
  parkRefusedTopicAfterMs?: number;
  /**
   * Prefix of the relay's fencing id (its Kafka transactional id); the relay id is appended. The id is
   * recorded on every lane the relay holds, for a relay taking a lane over to fence. Default:
   * `onceflow.outbox.<schema>.relay-`.
   */
  fencingIdPrefix?: string;
  /** This relay's id in the lease table. Default: a new random id per relay. */
  relayId?: string;
  /**
   * How long `start()` waits for Postgres when it cannot be reached (not up yet, restarting), in
   * milliseconds: it retries with `retry`'s backoff and reports each attempt through the logger and
   * `onError`, then rejects with OF_UNAVAILABLE. 0 tries once. Default: no limit, it keeps trying
   * until Postgres answers or `stop()` is called.
   */
  startupTimeoutMs?: number;
  /** Metrics callbacks. Default: none. */
  observer?: OutboxRelayObserver;
  /** Seams for tests. Default: none. */
  testHooks?: OutboxRelayTestHooks;
}

/** Defaults of {@link OutboxRelayOptions}. */
export const defaultOutboxRelayOptions = Object.freeze({
  schema: defaultSchemaName,
  batchSize: 1_000,
  pollIntervalMs: 1_000,
  leaseMs: 10_000,
  heartbeatIntervalMs: 2_000,
  metricsIntervalMs: 5_000,
  parkRefusedTopicAfterMs: 30_000,
  retry: Object.freeze({
    maxAttempts: Number.MAX_SAFE_INTEGER,
    initialDelayMs: 200,
    maxDelayMs: 5_000,
    multiplier: 2,
    jitter: 0.2,
  }) as Readonly<RetryPolicy>,
});

/** Options after defaults and validation. */
export interface ResolvedRelayOptions {
  transport: PublisherTransport;
  store: OutboxStore;
  /** The store's name (the schema of the Postgres store). */
  schema: string;
  batchSize: number;
  pollIntervalMs: number;
  leaseMs: number;
  heartbeatIntervalMs: number;
  metricsIntervalMs: number;
  parkRefusedTopicAfterMs: number;
  fencingIdPrefix: string;
  relayId: string | undefined;
  /** Undefined: no limit. */
  startupTimeoutMs: number | undefined;
  retry: RetryPolicy;
  /** The relay's logger (silent by default), bound to `component: 'outbox relay'`. */
  logger: Logger;
  onError: ErrorHook | undefined;
  observer: OutboxRelayObserver;
  testHooks: OutboxRelayTestHooks;
}

const component = 'createOutboxRelay';

function positiveInteger(name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min)
    invalidOptions(component, `${name} must be an integer >= ${min} (got ${value})`);
}

function resolveStore(options: OutboxRelayOptions): OutboxStore {
  if (options.store !== undefined) {
    if (options.pool !== undefined) invalidOptions(component, 'give either pool or store, not both');
    if (options.schema !== undefined)
      invalidOptions(component, "schema belongs to the store: pass it to the store's factory instead");
    if (typeof options.store.claim !== 'function' || typeof options.store.settle !== 'function')
      invalidOptions(component, 'store must be an OutboxStore (createPgOutboxStore from @onceflow/postgres)');
    return options.store;
  }
  if (typeof options.pool?.connect !== 'function')
    invalidOptions(component, 'give a pg pool (or an outbox store)');
  try {
    return createPgOutboxStore(options.pool, { schema: options.schema ?? defaultSchemaName });
  } catch (error) {
    if (isOnceflowError(error, 'OF_INVALID_IDENTIFIER')) invalidOptions(component, error.message);
    throw error;
  }
}

/** Applies defaults and throws OF_INVALID_OPTIONS for values that cannot work. */
export function resolveRelayOptions(options: OutboxRelayOptions): ResolvedRelayOptions {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (typeof options.transport?.openLane !== 'function')
    invalidOptions(component, 'transport must implement PublisherTransport (openLane, close)');
  const merged = { ...defaultOutboxRelayOptions, ...stripUndefined(options) };
  const store = resolveStore(options);
  positiveInteger('batchSize', merged.batchSize);
  checkDurationMs(component, 'pollIntervalMs', merged.pollIntervalMs, { min: 10 });
  checkDurationMs(component, 'leaseMs', merged.leaseMs, { min: 100 });
  checkDurationMs(component, 'heartbeatIntervalMs', merged.heartbeatIntervalMs, { min: 10 });
  if (merged.heartbeatIntervalMs * 2 >= merged.leaseMs)
    invalidOptions(
      component,
      `heartbeatIntervalMs (${merged.heartbeatIntervalMs}) must be below half of leaseMs (${merged.leaseMs}), so a lease is renewed at least twice before it expires`,
    );
  const retry = resolveRetryPolicy(component, options.retry, defaultOutboxRelayOptions.retry);
  checkDurationMs(component, 'metricsIntervalMs', merged.metricsIntervalMs, {
    zeroMeans: 'no backlog reports',
  });
  positiveInteger('parkRefusedTopicAfterMs', merged.parkRefusedTopicAfterMs, 0);
  if (merged.parkRefusedTopicAfterMs > 2 ** 31 - 1)
    invalidOptions(
      component,
      `parkRefusedTopicAfterMs must be at most ${2 ** 31 - 1} (got ${merged.parkRefusedTopicAfterMs})`,
    );
  const startupTimeoutMs =
    options.startupTimeoutMs === undefined
      ? undefined
      : checkDurationMs(component, 'startupTimeoutMs', options.startupTimeoutMs, {
          zeroMeans: 'one attempt, no wait',
        });
  if (options.onError !== undefined && typeof options.onError !== 'function')
    invalidOptions(component, 'onError must be a function');
  return {
    transport: options.transport,
    store,
    schema: store.name,
    batchSize: merged.batchSize,
    pollIntervalMs: merged.pollIntervalMs,
    leaseMs: merged.leaseMs,
    heartbeatIntervalMs: merged.heartbeatIntervalMs,
    metricsIntervalMs: merged.metricsIntervalMs,
    parkRefusedTopicAfterMs: merged.parkRefusedTopicAfterMs,
    fencingIdPrefix: options.fencingIdPrefix ?? `onceflow.outbox.${store.name}.relay-`,
    relayId: options.relayId,
    startupTimeoutMs,
    retry,
    logger: resolveLogger(component, options.logger, { component: 'outbox relay' }),
    onError: options.onError,
    observer: options.observer ?? {},
    testHooks: options.testHooks ?? {},
  };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
