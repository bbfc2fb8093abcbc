import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createStoppable, OnceflowError, type RetryPolicy, type StartedHandle, sleep } from '@onceflow/core';
import {
  acquireLaneLeases,
  heartbeatRelay,
  type LaneLease,
  outboxLaneCount,
  readOutboxStatus,
  releaseLaneLeases,
  renewLaneLeases,
  unregisterRelay,
} from '@onceflow/postgres';
import { LaneWorker } from './lane-worker';
import { type OutboxRelayEngineOptions, type ResolvedRelayOptions, resolveRelayOptions } from './options';
import { listenForWakeups } from './wakeups';

/** A running relay. */
export interface OutboxRelayHandle extends StartedHandle {
  /** This relay's id in the lease table. */
  readonly relayId: string;
  /** Lanes this relay publishes right now, ascending. */
  ownedLanes(): number[];
}

/** A relay ready to start. */
export interface OutboxRelay {
  /**
   * Registers the relay, takes its share of lanes and starts publishing. Rejects when Postgres is
   * unreachable at start; later failures are retried. Call once.
   */
  start(): Promise<OutboxRelayHandle>;
}

function notify(call: () => void): void {
  try {
    call();
  } catch {
    // Observers must not break the relay.
  }
}

/**
 * The relay engine, independent of the Kafka client: give it a {@link PublisherTransport}. It takes
 * a fair share of the outbox's lanes through leases in Postgres (ceil(lanes / live relays)), takes
 * over lanes whose lease expired, and publishes each owned lane in `seq` order. `stop()` finishes
 * the batches in flight, gives the lanes back and closes the transport.
 */
export function createOutboxRelayEngine(options: OutboxRelayEngineOptions): OutboxRelay {
  const resolved = resolveRelayOptions(options);
  let started = false;
  return {
    async start() {
      if (started)
        throw new OnceflowError(
          'OF_INVALID_OPTIONS',
          'createOutboxRelay: start() was already called; create a new relay',
        );
      started = true;
      return startRelay(resolved);
    },
  };
}

async function startRelay(options: ResolvedRelayOptions): Promise<OutboxRelayHandle> {
  const relayId = options.relayId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const retry: RetryPolicy = {
    maxAttempts: Number.MAX_SAFE_INTEGER,
    initialDelayMs: options.retryInitialDelayMs,
    maxDelayMs: options.retryMaxDelayMs,
    multiplier: 2,
    jitter: 0.2,
  };
  const { pool, schema, leaseTtlMs, observer } = options;
  const workers = new Map<number, LaneWorker>();
  const abort = new AbortController();
  const { signal } = abort;

  const onExit = (worker: LaneWorker, lost: boolean): void => {
    if (workers.get(worker.lane) === worker) workers.delete(worker.lane);
    if (lost) notify(() => observer.onLaneReleased?.(worker.lane, 'lost'));
  };
  const addWorker = (lease: LaneLease, validUntil: number): void => {
    const worker = new LaneWorker({ options: { ...options, relayId }, retry, onExit }, lease, validUntil);
    workers.set(lease.lane, worker);
    worker.start();
    notify(() => observer.onLaneAcquired?.(lease.lane, lease.epoch));
  };

  // One heartbeat: prove liveness, renew held leases, then move toward a fair share of lanes.
  const tick = async (): Promise<void> => {
    const startedAt = performance.now();
    const live = await heartbeatRelay(pool, { schema, relayId, ttlMs: leaseTtlMs });
    const current = [...workers.values()];
    const held = await renewLaneLeases(pool, {
      schema,
      leases: current.map((w) => w.lease),
      ttlMs: leaseTtlMs,
    });
    const heldLanes = new Set(held.map((lease) => lease.lane));
    for (const worker of current) {
      if (heldLanes.has(worker.lane)) worker.validUntil = startedAt + leaseTtlMs;
      else {
        // Taken over while we were not looking: stop without releasing, the lane is someone else's now.
        workers.delete(worker.lane);
        notify(() => observer.onLaneReleased?.(worker.lane, 'lost'));
        void worker.stop();
      }
    }
    if (signal.aborted) return;
    const target = Math.ceil(outboxLaneCount / live);
    const owned = workers.size;
    if (owned < target) {
      const acquiredAt = performance.now();
      const acquired = await acquireLaneLeases(pool, {
        schema,
        owner: relayId,
        max: target - owned,
        ttlMs: leaseTtlMs,
      });
      if (signal.aborted) {
        await releaseLaneLeases(pool, { schema, leases: acquired });
        return;
      }
      for (const lease of acquired) addWorker(lease, acquiredAt + leaseTtlMs);
    } else if (owned > target) {
      const surplus = [...workers.values()].slice(0, owned - target);
      await Promise.all(surplus.map((worker) => giveBack(worker)));
    }
  };

  const giveBack = async (worker: LaneWorker): Promise<void> => {
    workers.delete(worker.lane);
    await worker.stop();
    await releaseLaneLeases(pool, { schema, leases: [worker.lease] });
    notify(() => observer.onLaneReleased?.(worker.lane, 'released'));
  };

  const heartbeatLoop = async (): Promise<void> => {
    while (!signal.aborted) {
      await sleep(options.heartbeatIntervalMs, signal);
      if (signal.aborted) return;
      await tick().catch((error: unknown) =>
        notify(() => observer.onError?.(error, 'outbox relay heartbeat')),
      );
    }
  };

  const metricsLoop = async (): Promise<void> => {
    if (options.metricsIntervalMs === 0 || !observer.onBacklog) return;
    while (!signal.aborted) {
      await readOutboxStatus(pool, { schema }).then(
        (status) => notify(() => observer.onBacklog?.(status)),
        (error: unknown) => notify(() => observer.onError?.(error, 'outbox relay metrics')),
      );
      await sleep(options.metricsIntervalMs, signal);
    }
  };

  try {
    await tick();
  } catch (error) {
    abort.abort();
    await Promise.all([...workers.values()].map((worker) => worker.stop()));
    await releaseLaneLeases(pool, { schema, leases: [...workers.values()].map((w) => w.lease) }).catch(
      () => undefined,
    );
    await options.transport.close().catch(() => undefined);
    throw new OnceflowError(
      'OF_UNAVAILABLE',
      `outbox relay could not register in schema ${schema}: ${String(error)}`,
      {
        cause: error,
        retriable: true,
      },
    );
  }

  const background = Promise.all([
    heartbeatLoop(),
    metricsLoop(),
    listenForWakeups({
      pool,
      schema,
      retry,
      signal,
      onWake: (lane) => {
        if (lane === null) for (const worker of workers.values()) worker.wake();
        else workers.get(lane)?.wake();
      },
      onError: (error) => notify(() => observer.onError?.(error, 'outbox relay LISTEN connection')),
    }),
  ]);

  return createStoppable(
    {
      relayId,
      ownedLanes: () => [...workers.keys()].sort((a, b) => a - b),
    },
    async () => {
      abort.abort();
      await background;
      const stopping = [...workers.values()];
      workers.clear();
      await Promise.all(stopping.map((worker) => worker.stop()));
      await releaseLaneLeases(pool, { schema, leases: stopping.map((worker) => worker.lease) }).catch(
        (error: unknown) => notify(() => observer.onError?.(error, 'outbox relay stop')),
      );
      for (const worker of stopping) notify(() => observer.onLaneReleased?.(worker.lane, 'released'));
      await unregisterRelay(pool, { schema, relayId }).catch(() => undefined);
      await options.transport.close().catch(() => undefined);
    },
  );
}
