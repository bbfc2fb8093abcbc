import { checkDurationMs, invalidOptions, type PublisherTransport } from '@onceflow/core';
import { defaultSchemaName, type OutboxRow, type OutboxStatus, validateIdentifier } from '@onceflow/postgres';
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

/** An event the relay parked because it can never be published. */
export interface ParkedEvent {
  lane: number;
  eventId: string;
  topic: string;
  key: Buffer | null;
  error: string;
}

/**
 * Callbacks for metrics and logs. Each is optional and must not throw (what it throws is ignored);
 * none is awaited. The counters operators usually want: `onPublished` (sum of `count` = published
 * events, `publishLatencyMs`/`maxEndToEndMs` = latency) and `onBacklog` (`backlog`, `oldestAgeMs`, `parked`).
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
  /** A failure the relay recovers from by retrying (broker or database unavailable, listener dropped). */
  onError?(error: unknown, context: string): void;
}

/**
 * Fault-injection points for tests: awaited by a lane worker around the publish of a claimed batch.
 * Not for production use.
 */
export interface OutboxRelayTestHooks {
  /** After the claim, before the publish. */
  beforePublish?(lane: number, rows: readonly OutboxRow[]): Promise<void>;
  /** After the broker acknowledged, before the rows are settled in Postgres. */
  afterPublish?(lane: number, rows: readonly OutboxRow[]): Promise<void>;
}

/** Options of the relay engine. */
export interface OutboxRelayEngineOptions {
  /** Pool the relay reads, settles and leases through; it also holds one connection for LISTEN. */
  pool: Pool;
  /** The Kafka side. */
  transport: PublisherTransport;
  /** Schema holding the outbox tables. Default: `onceflow`. */
  schema?: string;
  /**
   * Most rows claimed and published per batch, that is per Kafka transaction; the lanes with waiting
   * rows share it. Default: 1000.
   */
  batchSize?: number;
  /** How often, in milliseconds, an idle lane is polled when no notification arrives. Default: 1000. */
  pollIntervalMs?: number;
  /** Lifetime of a lane lease in milliseconds; a dead relay's lanes are taken over after it. Default: 10000. */
  leaseTtlMs?: number;
  /** Interval in milliseconds between lease renewals; must be below half of `leaseTtlMs`. Default: 2000. */
  heartbeatIntervalMs?: number;
  /** First delay in milliseconds before retrying after a transient failure. Default: 200. */
  retryInitialDelayMs?: number;
  /** Longest delay in milliseconds between retries; transient failures are retried forever. Default: 5000. */
  retryMaxDelayMs?: number;
  /** Interval in milliseconds of `observer.onBacklog`; 0 disables it. Default: 5000. */
  metricsIntervalMs?: number;
  /**
   * How long, in milliseconds, the events of a topic the broker refuses (it does not exist, this client
   * may not write to it) are tried again before they are parked. Meanwhile they wait, each try reported
   * through `observer.onError` (OF_TOPIC_MISSING), and every other topic and key keeps flowing; tries
   * follow `retryInitialDelayMs` doubling up to `retryMaxDelayMs`. Then the first event of each key is
   * parked with an error naming the topic, and the key's later events wait behind it. A topic with an
   * invalid name is parked at once. 0 parks at the first refusal. Default: 30000.
   */
  parkRefusedTopicAfterMs?: number;
  /**
   * Prefix of the relay's fencing id (its Kafka transactional id); the relay id is appended. The id is
   * recorded on every lane the relay holds, for a relay taking a lane over to fence. Default:
   * `onceflow.outbox.<schema>.relay-`.
   */
  fencingIdPrefix?: string;
  /** This relay's id in the lease table. Default: a new random id per start. */
  relayId?: string;
  /**
   * How long `start()` waits for Postgres when it cannot be reached (not up yet, restarting), in
   * milliseconds: it retries with backoff (`retryInitialDelayMs` to `retryMaxDelayMs`) and reports each
   * attempt through `observer.onError` (stderr without one), then rejects with OF_UNAVAILABLE. 0 tries
   * once. Default: no limit, it keeps trying until Postgres answers or `stop()` is called.
   */
  startupTimeoutMs?: number;
  /** Metrics and log callbacks. */
  observer?: OutboxRelayObserver;
  /** Fault-injection points for tests. */
  testHooks?: OutboxRelayTestHooks;
}

/** Defaults of {@link OutboxRelayEngineOptions}. */
export const defaultOutboxRelayOptions = Object.freeze({
  schema: defaultSchemaName,
  batchSize: 1_000,
  pollIntervalMs: 1_000,
  leaseTtlMs: 10_000,
  heartbeatIntervalMs: 2_000,
  retryInitialDelayMs: 200,
  retryMaxDelayMs: 5_000,
  metricsIntervalMs: 5_000,
  parkRefusedTopicAfterMs: 30_000,
});

/** Options after defaults and validation. */
export interface ResolvedRelayOptions
  extends Required<
    Omit<OutboxRelayEngineOptions, 'observer' | 'testHooks' | 'relayId' | 'startupTimeoutMs'>
  > {
  relayId: string | undefined;
  /** Undefined: no limit. */
  startupTimeoutMs: number | undefined;
  observer: OutboxRelayObserver;
  testHooks: OutboxRelayTestHooks;
}

const component = 'createOutboxRelay';

function positiveInteger(name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min)
    invalidOptions(component, `${name} must be an integer >= ${min} (got ${value})`);
}

/** Applies defaults and throws OF_INVALID_OPTIONS for values that cannot work. */
export function resolveRelayOptions(options: OutboxRelayEngineOptions): ResolvedRelayOptions {
  if (!options || typeof options.pool?.connect !== 'function')
    invalidOptions(component, 'pool must be a pg Pool');
  if (typeof options.transport?.openLane !== 'function')
    invalidOptions(component, 'transport must implement PublisherTransport (openLane, close)');
  const merged = { ...defaultOutboxRelayOptions, ...stripUndefined(options) };
  const schema = validateIdentifier(merged.schema);
  positiveInteger('batchSize', merged.batchSize);
  checkDurationMs(component, 'pollIntervalMs', merged.pollIntervalMs, { min: 10 });
  checkDurationMs(component, 'leaseTtlMs', merged.leaseTtlMs, { min: 100 });
  checkDurationMs(component, 'heartbeatIntervalMs', merged.heartbeatIntervalMs, { min: 10 });
  if (merged.heartbeatIntervalMs * 2 >= merged.leaseTtlMs)
    invalidOptions(
      component,
      `heartbeatIntervalMs (${merged.heartbeatIntervalMs}) must be below half of leaseTtlMs (${merged.leaseTtlMs}), so a lease is renewed at least twice before it expires`,
    );
  checkDurationMs(component, 'retryInitialDelayMs', merged.retryInitialDelayMs);
  checkDurationMs(component, 'retryMaxDelayMs', merged.retryMaxDelayMs);
  if (!(merged.retryMaxDelayMs >= merged.retryInitialDelayMs))
    invalidOptions(component, 'retryMaxDelayMs must be >= retryInitialDelayMs');
  checkDurationMs(component, 'metricsIntervalMs', merged.metricsIntervalMs, {
    zeroMeans: 'no backlog reports',
  });
  const startupTimeoutMs =
    options.startupTimeoutMs === undefined
      ? undefined
      : checkDurationMs(component, 'startupTimeoutMs', options.startupTimeoutMs, {
          zeroMeans: 'one attempt, no wait',
        });
  positiveInteger('parkRefusedTopicAfterMs', merged.parkRefusedTopicAfterMs, 0);
  if (merged.parkRefusedTopicAfterMs > 2 ** 31 - 1)
    invalidOptions(
      component,
      `parkRefusedTopicAfterMs must be at most ${2 ** 31 - 1} (got ${merged.parkRefusedTopicAfterMs})`,
    );
  return {
    pool: options.pool,
    transport: options.transport,
    schema,
    batchSize: merged.batchSize,
    pollIntervalMs: merged.pollIntervalMs,
    leaseTtlMs: merged.leaseTtlMs,
    heartbeatIntervalMs: merged.heartbeatIntervalMs,
    retryInitialDelayMs: merged.retryInitialDelayMs,
    retryMaxDelayMs: merged.retryMaxDelayMs,
    metricsIntervalMs: merged.metricsIntervalMs,
    parkRefusedTopicAfterMs: merged.parkRefusedTopicAfterMs,
    fencingIdPrefix: options.fencingIdPrefix ?? `onceflow.outbox.${schema}.relay-`,
    relayId: options.relayId,
    startupTimeoutMs,
    observer: options.observer ?? {},
    testHooks: options.testHooks ?? {},
  };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
