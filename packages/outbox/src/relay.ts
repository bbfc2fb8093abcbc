import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  createStoppable,
  isOnceflowError,
  OnceflowError,
  type RetryPolicy,
  type StartedHandle,
  sleep,
  waitForService,
} from '@onceflow/core';
import {
  type AcquiredLane,
  acquireLaneLeases,
  describePool,
  heartbeatRelay,
  type LaneLease,
  missingPoolErrorListener,
  outboxLaneCount,
  readOutboxStatus,
  releaseLaneLeases,
  renewLaneLeases,
  unregisterRelay,
} from '@onceflow/postgres';
import { type OutboxRelayEngineOptions, type ResolvedRelayOptions, resolveRelayOptions } from './options';
import { PublishLoop } from './publish-loop';
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
   * Registers the relay, takes its share of lanes and starts publishing. While Postgres cannot be
   * reached it waits with backoff, reporting each attempt through `observer.onError` (stderr without
   * one), up to `startupTimeoutMs` (then OF_UNAVAILABLE naming the server); later failures are
   * retried. Call once.
   */
  start(): Promise<OutboxRelayHandle>;
  /**
   * Stops the relay: interrupts a `start()` still waiting for Postgres (it then rejects with
   * OF_STOPPED), or does what the started handle's `stop()` does. Idempotent.
   */
  stop(): Promise<void>;
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
  const abort = new AbortController();
  let starting: Promise<OutboxRelayHandle> | undefined;
  let stopping: Promise<void> | undefined;
  return {
    start() {
      if (starting !== undefined)
        return Promise.reject(
          new OnceflowError(
            'OF_INVALID_OPTIONS',
            'createOutboxRelay: start() was already called; create a new relay',
          ),
        );
      starting = startRelay(resolved, abort.signal);
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        abort.abort();
        const handle = await starting?.catch(() => undefined);
        await handle?.stop();
      })();
      return stopping;
    },
  };
}

const startupHint =
  "Check that it runs and accepts connections at that address, and that the pool's connection settings are right; startupTimeoutMs bounds this wait.";

async function startRelay(
  options: ResolvedRelayOptions,
  stopSignal: AbortSignal,
): Promise<OutboxRelayHandle> {
  const stopped = (): OnceflowError =>
    new OnceflowError('OF_STOPPED', 'outbox relay: stop() was called before start() finished');
  if (stopSignal.aborted) throw stopped();
  const relayId = options.relayId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const retry: RetryPolicy = {
    maxAttempts: Number.MAX_SAFE_INTEGER,
    initialDelayMs: options.retryInitialDelayMs,
    maxDelayMs: options.retryMaxDelayMs,
    multiplier: 2,
    jitter: 0.2,
  };
  const { pool, schema, leaseTtlMs, observer, transport } = options;
  const fencingId = `${options.fencingIdPrefix}${relayId}`;
  const abort = new AbortController();
  const { signal } = abort;
  const reportLost = (lanes: readonly number[]): void => {
    for (const lane of lanes) notify(() => observer.onLaneReleased?.(lane, 'lost'));
  };
  const loop = new PublishLoop({ options, retry, fencingId, onLost: reportLost });
  // Lanes taken over from an expired lease whose previous publisher could not be fenced yet.
  const unfenced = new Map<number, AcquiredLane>();

  // A lane whose previous owner's lease expired may still have a batch in flight: fence that
  // publisher (opening a publisher with its id aborts its open transaction and refuses its later
  // ones) before this relay publishes a row of the lane. A lane given back cleanly has none.
  const fenceAndAdd = async (acquired: readonly AcquiredLane[], validUntil: number): Promise<void> => {
    const previous = new Set<string>();
    for (const lane of acquired)
      if (lane.previousFencingId !== null && lane.previousFencingId !== fencingId)
        previous.add(lane.previousFencingId);
    const fenced = new Set<string>();
    for (const id of previous) {
      try {
        const publisher = await transport.openLane(id);
        await publisher.close();
        fenced.add(id);
      } catch (error) {
        notify(() => observer.onError?.(error, `outbox relay fencing ${id}`));
      }
    }
    const ready: LaneLease[] = [];
    for (const lane of acquired) {
      if (
        lane.previousFencingId === null ||
        lane.previousFencingId === fencingId ||
        fenced.has(lane.previousFencingId)
      ) {
        unfenced.delete(lane.lane);
        ready.push({ lane: lane.lane, owner: lane.owner, epoch: lane.epoch });
      } else unfenced.set(lane.lane, lane);
    }
    if (ready.length === 0) return;
    // From here on a later owner fences this relay's publisher instead.
    const held = await renewLaneLeases(pool, { schema, leases: ready, ttlMs: leaseTtlMs, fencingId });
    await loop.addLanes(held, validUntil);
    for (const lease of held) notify(() => observer.onLaneAcquired?.(lease.lane, lease.epoch));
  };

  // One heartbeat: prove liveness, renew held leases, then move toward a fair share of lanes.
  const tick = async (): Promise<void> => {
    const startedAt = performance.now();
    const live = await heartbeatRelay(pool, { schema, relayId, ttlMs: leaseTtlMs });
    const current = loop.currentLeases();
    const waiting = [...unfenced.values()];
    const held = await renewLaneLeases(pool, {
      schema,
      leases: [...current, ...waiting],
      ttlMs: leaseTtlMs,
    });
    const heldLanes = new Set(held.map((lease) => lease.lane));
    const lost = current.map((lease) => lease.lane).filter((lane) => !heldLanes.has(lane));
    // Taken over while we were not looking: stop without releasing, the lane is someone else's now.
    loop.dropLanes(lost);
    reportLost(lost);
    if (lost.length < current.length) loop.validUntil = Math.max(loop.validUntil, startedAt + leaseTtlMs);
    for (const lane of waiting) if (!heldLanes.has(lane.lane)) unfenced.delete(lane.lane);
    if (signal.aborted) return;
    if (unfenced.size > 0) await fenceAndAdd([...unfenced.values()], startedAt + leaseTtlMs);
    const target = Math.ceil(outboxLaneCount / live);
    const owned = loop.lanes().length + unfenced.size;
    if (owned < target) {
      const acquiredAt = performance.now();
      const acquired = await acquireLaneLeases(pool, {
        schema,
        owner: relayId,
        max: target - owned,
        ttlMs: leaseTtlMs,
      });
      if (signal.aborted) {
        // Not published yet: the previous owners' publishers stay recorded for whoever comes next.
        await releaseLaneLeases(pool, {
          schema,
          leases: acquired.filter((l) => l.previousFencingId === null),
        });
        return;
      }
      await fenceAndAdd(acquired, acquiredAt + leaseTtlMs);
    } else if (owned > target) {
      const surplus = loop.lanes().slice(0, owned - target);
      const leases = loop.currentLeases().filter((lease) => surplus.includes(lease.lane));
      await loop.removeLanes(surplus);
      await releaseLaneLeases(pool, { schema, leases });
      for (const lane of surplus) notify(() => observer.onLaneReleased?.(lane, 'released'));
    }
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

  const reportStartup = (error: unknown): void => {
    if (observer.onError) notify(() => observer.onError?.(error, 'outbox relay startup'));
    // Waiting without a word looks like a hang: without an observer, stderr tells.
    else console.error(`onceflow: ${error instanceof Error ? error.message : String(error)}`);
  };
  const warning = missingPoolErrorListener(pool, 'outbox relay');
  if (warning !== undefined) reportStartup(warning);
  try {
    await waitForService(tick, {
      component: 'outbox relay',
      service: describePool(pool),
      hint: startupHint,
      timeoutMs: options.startupTimeoutMs,
      retry,
      signal: stopSignal,
      onWait: reportStartup,
    });
  } catch (error) {
    abort.abort();
    const leases = loop.currentLeases();
    await loop.stop();
    await releaseLaneLeases(pool, { schema, leases }).catch(() => undefined);
    await unregisterRelay(pool, { schema, relayId }).catch(() => undefined);
    await options.transport.close().catch(() => undefined);
    if (isOnceflowError(error, 'OF_UNAVAILABLE') || isOnceflowError(error, 'OF_STOPPED')) throw error;
    throw new OnceflowError(
      'OF_UNAVAILABLE',
      `outbox relay could not register in schema ${schema}: ${String(error)}`,
      {
        cause: error,
        retriable: true,
      },
    );
  }

  loop.start();
  // stop() during the start aborts the relay's own loops too.
  const onStop = (): void => abort.abort();
  stopSignal.addEventListener('abort', onStop, { once: true });
  const background = Promise.all([
    heartbeatLoop(),
    metricsLoop(),
    listenForWakeups({
      pool,
      schema,
      retry,
      signal,
      onWake: (lane) => loop.wake(lane),
      onError: (error) => notify(() => observer.onError?.(error, 'outbox relay LISTEN connection')),
    }),
  ]).then(
    () => undefined,
    // Each loop handles its own failures; whatever escapes is reported, never left unhandled.
    (error: unknown) => notify(() => observer.onError?.(error, 'outbox relay')),
  );

  return createStoppable(
    {
      relayId,
      ownedLanes: () => loop.lanes(),
    },
    async () => {
      stopSignal.removeEventListener('abort', onStop);
      abort.abort();
      await background;
      const stopping = loop.currentLeases();
      await loop.stop();
      await releaseLaneLeases(pool, { schema, leases: stopping }).catch((error: unknown) =>
        notify(() => observer.onError?.(error, 'outbox relay stop')),
      );
      for (const lease of stopping) notify(() => observer.onLaneReleased?.(lease.lane, 'released'));
      await unregisterRelay(pool, { schema, relayId }).catch(() => undefined);
      await options.transport.close().catch(() => undefined);
    },
  );
}
