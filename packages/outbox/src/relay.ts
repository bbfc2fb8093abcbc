import { randomUUID } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  alreadyStarted,
  type ComponentStatus,
  createStatusTracker,
  createStoppable,
  isConnectionError,
  isOnceflowError,
  OnceflowError,
  type RelayBacklogMessage,
  relayBacklogChannel,
  reportError,
  type StartedHandle,
  type StatusTracker,
  sleep,
  toOnceflowError,
  waitForService,
} from '@onceflow/core';
import { type AcquiredLane, type LaneLease, missingPoolErrorListener } from '@onceflow/postgres';
import { instrumentRelay } from './diagnostics';
import { type OutboxRelayOptions, type ResolvedRelayOptions, resolveRelayOptions } from './options';
import { PublishLoop, type RelayOperation } from './publish-loop';

/** A running relay. */
export interface OutboxRelayHandle extends StartedHandle {
  /** This relay's id in the lease table. */
  readonly relayId: string;
  /** Lanes this relay publishes right now, ascending. */
  ownedLanes(): number[];
  /** Where the relay is in its life, for health and readiness probes; see {@link OutboxRelay.status}. */
  status(): ComponentStatus;
}

/** A configured relay, not yet started. */
export interface OutboxRelay {
  /**
   * Registers the relay, takes its share of lanes and starts publishing. While Postgres cannot be
   * reached it waits with backoff, reporting each attempt through the logger and `onError`, up to
   * `startupTimeoutMs` (then OF_UNAVAILABLE naming the server); it rejects with OF_SCHEMA_MISMATCH
   * when the schema lacks the outbox tables. Later failures are retried. Call once: a second call
   * rejects with OF_ALREADY_STARTED.
   */
  start(): Promise<OutboxRelayHandle>;
  /**
   * Stops the relay: interrupts a `start()` still waiting for Postgres (it then rejects with
   * OF_STOPPED), or does what the started handle's `stop()` does. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Where the relay is in its life: `starting`, `waiting-for-database` while Postgres cannot be
   * reached (at start, or later until a lease renewal succeeds again), `waiting-for-broker` while
   * Kafka cannot be reached (until a publisher opens or a publish succeeds again), `running`,
   * `stopping`, `stopped` (also after a start that failed); with the last error reported.
   */
  status(): ComponentStatus;
}

/** What the relay says while it waits for an unreachable database at start. */
const startupHint =
  "Check that it runs and accepts connections at that address, and that the pool's connection settings are right; startupTimeoutMs bounds this wait.";

const backlogChannel = diagnosticsChannel.channel(relayBacklogChannel);

function notify(call: () => void): void {
  try {
    call();
  } catch {
    // Observers must not break the relay.
  }
}

/**
 * The outbox relay, independent of the Kafka client: give it a {@link PublisherTransport} (for
 * kafkajs, `createOutboxRelay` of @onceflow/kafkajs does) and the outbox (a pg `pool` or a `store`).
 * It takes a fair share of the outbox's lanes through leases (ceil(lanes / live relays)), takes over
 * lanes whose lease expired, and publishes each owned lane in `seq` order. Options are checked here:
 * invalid ones throw OF_INVALID_OPTIONS. `stop()` finishes the batches in flight, gives the lanes
 * back and closes the transport.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const resolved = resolveRelayOptions(options);
  const relayId = resolved.relayId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const tracker = createStatusTracker('outbox relay', relayId);
  // Every error reported is the status's last error too.
  const { onError } = resolved;
  resolved.onError = (error) => {
    tracker.error(error);
    onError?.(error);
  };
  // A pool whose idle connections may break without a listener would end the process: say so now.
  if (options.pool !== undefined) {
    const warning = missingPoolErrorListener(options.pool, 'outbox relay');
    if (warning !== undefined)
      reportError(
        resolved,
        'warn',
        new OnceflowError(warning.code, warning.message, {
          details: { ...warning.details, operation: 'startup' },
        }),
      );
  }
  const abort = new AbortController();
  let starting: Promise<OutboxRelayHandle> | undefined;
  let stopping: Promise<void> | undefined;
  return {
    async start() {
      if (starting !== undefined) alreadyStarted('createOutboxRelay');
      starting = startRelay(instrumentRelay(resolved, relayId, tracker), abort.signal, relayId, tracker);
      // A start that failed leaves the relay stopped, with the error that ended it.
      starting.catch((error: unknown) =>
        tracker.set('stopped', toOnceflowError(error, 'OF_UNAVAILABLE', 'outbox relay could not start')),
      );
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        tracker.set('stopping');
        abort.abort();
        const handle = await starting?.catch(() => undefined);
        await handle?.stop();
        tracker.set('stopped');
      })();
      return stopping;
    },
    status: tracker.status,
  };
}

async function startRelay(
  options: ResolvedRelayOptions,
  stopSignal: AbortSignal,
  relayId: string,
  tracker: StatusTracker,
): Promise<OutboxRelayHandle> {
  const stopped = (): OnceflowError =>
    new OnceflowError('OF_STOPPED', 'outbox relay: stop() was called before start() finished');
  if (stopSignal.aborted) throw stopped();
  const { store, schema, leaseMs, observer, transport, retry } = options;
  const logger = options.logger.child({ relayId });
  const report = (operation: RelayOperation, error: unknown): void => {
    // A lost database connection (the publisher's failures are the transport's to tell) makes the
    // relay wait for its database until a lease renewal succeeds again.
    if (!isOnceflowError(error) && isConnectionError(error)) tracker.set('waiting-for-database');
    reportError(
      { logger, onError: options.onError },
      'warn',
      toOnceflowError(error, 'OF_UNAVAILABLE', `outbox relay ${operation} failed, retrying`, {
        retriable: true,
        details: { operation, relayId },
      }),
    );
  };
  const fencingId = `${options.fencingIdPrefix}${relayId}`;
  const abort = new AbortController();
  const { signal } = abort;
  const reportLost = (lanes: readonly number[]): void => {
    for (const lane of lanes) notify(() => observer.onLaneReleased?.(lane, 'lost'));
  };
  const loop = new PublishLoop({ options, logger, fencingId, onLost: reportLost, report });
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
        report('fence', error);
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
    const held = await store.renewLanes(ready, leaseMs, fencingId);
    await loop.addLanes(held, validUntil);
    for (const lease of held) {
      logger.debug({ lane: lease.lane, epoch: lease.epoch }, 'outbox relay acquired a lane');
      notify(() => observer.onLaneAcquired?.(lease.lane, lease.epoch));
    }
  };

  // One heartbeat: prove liveness, renew held leases, then move toward a fair share of lanes.
  const tick = async (): Promise<void> => {
    const startedAt = performance.now();
    const live = await store.heartbeat(relayId, leaseMs);
    const current = loop.currentLeases();
    const waiting = [...unfenced.values()];
    const held = await store.renewLanes([...current, ...waiting], leaseMs);
    const heldLanes = new Set(held.map((lease) => lease.lane));
    const lost = current.map((lease) => lease.lane).filter((lane) => !heldLanes.has(lane));
    // Taken over while we were not looking: stop without releasing, the lane is someone else's now.
    loop.dropLanes(lost);
    reportLost(lost);
    if (lost.length < current.length) loop.validUntil = Math.max(loop.validUntil, startedAt + leaseMs);
    for (const lane of waiting) if (!heldLanes.has(lane.lane)) unfenced.delete(lane.lane);
    if (signal.aborted) return;
    if (unfenced.size > 0) await fenceAndAdd([...unfenced.values()], startedAt + leaseMs);
    const target = Math.ceil(store.laneCount / live);
    const owned = loop.lanes().length + unfenced.size;
    if (owned < target) {
      const acquiredAt = performance.now();
      const acquired = await store.acquireLanes(relayId, target - owned, leaseMs);
      if (signal.aborted) {
        // Not published yet: the previous owners' publishers stay recorded for whoever comes next.
        await store.releaseLanes(acquired.filter((l) => l.previousFencingId === null));
        return;
      }
      await fenceAndAdd(acquired, acquiredAt + leaseMs);
    } else if (owned > target) {
      const surplus = loop.lanes().slice(0, owned - target);
      const leases = loop.currentLeases().filter((lease) => surplus.includes(lease.lane));
      await loop.removeLanes(surplus);
      await store.releaseLanes(leases);
      for (const lane of surplus) {
        logger.debug({ lane }, 'outbox relay released a lane');
        notify(() => observer.onLaneReleased?.(lane, 'released'));
      }
    }
  };

  const heartbeatLoop = async (): Promise<void> => {
    while (!signal.aborted) {
      await sleep(options.heartbeatIntervalMs, signal);
      if (signal.aborted) return;
      await tick().then(
        () => {
          if (tracker.state === 'waiting-for-database') tracker.set('running');
        },
        (error: unknown) => report('heartbeat', error),
      );
    }
  };

  const metricsLoop = async (): Promise<void> => {
    if (options.metricsIntervalMs === 0) return;
    while (!signal.aborted) {
      // Read only when someone wants it: an observer, or a subscriber that may have come since.
      if (observer.onBacklog !== undefined || backlogChannel.hasSubscribers)
        await store.status().then(
          (status) => {
            notify(() => observer.onBacklog?.(status));
            if (backlogChannel.hasSubscribers)
              backlogChannel.publish({
                schema,
                relayId,
                backlog: status.backlog,
                oldestAgeMs: status.oldestAgeMs,
                parked: status.parked,
                liveRelays: status.liveRelays,
                ownedLanes: loop.lanes().length,
              } satisfies RelayBacklogMessage);
          },
          (error: unknown) => report('metrics', error),
        );
      await sleep(options.metricsIntervalMs, signal);
    }
  };

  try {
    await waitForService(tick, {
      component: 'outbox relay',
      service: store.target ?? `the outbox ${store.name}`,
      hint: startupHint,
      timeoutMs: options.startupTimeoutMs,
      retry,
      signal: stopSignal,
      // Each wait says so, tagged as the start's, so that it never looks like a hang.
      onWait: (error) => {
        tracker.set('waiting-for-database');
        reportError(
          { logger, onError: options.onError },
          'warn',
          new OnceflowError(error.code, error.message, {
            retriable: error.retriable,
            cause: error.cause,
            details: { ...error.details, operation: 'startup', relayId },
          }),
        );
      },
    });
  } catch (error) {
    abort.abort();
    const leases = loop.currentLeases();
    await loop.stop();
    await store.releaseLanes(leases).catch(() => undefined);
    await store.unregister(relayId).catch(() => undefined);
    await options.transport.close().catch(() => undefined);
    if (
      isOnceflowError(error, 'OF_SCHEMA_MISMATCH') ||
      isOnceflowError(error, 'OF_UNAVAILABLE') ||
      isOnceflowError(error, 'OF_STOPPED')
    )
      throw error;
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
    store.listen({
      retry,
      signal,
      onWake: (lane) => loop.wake(lane),
      onError: (error) => report('listen', error),
    }),
  ]).then(
    () => undefined,
    // Each loop handles its own failures; whatever escapes is reported, never left unhandled.
    (error: unknown) => report('run', error),
  );
  tracker.set('running');
  logger.info({ schema, lanes: loop.lanes() }, 'outbox relay started');

  return createStoppable(
    {
      relayId,
      ownedLanes: () => loop.lanes(),
      status: tracker.status,
    },
    async () => {
      tracker.set('stopping');
      stopSignal.removeEventListener('abort', onStop);
      abort.abort();
      await background;
      const stopping = loop.currentLeases();
      await loop.stop();
      await store.releaseLanes(stopping).catch((error: unknown) => report('stop', error));
      for (const lease of stopping) notify(() => observer.onLaneReleased?.(lease.lane, 'released'));
      await store.unregister(relayId).catch(() => undefined);
      await options.transport.close().catch(() => undefined);
      tracker.set('stopped');
      logger.info('outbox relay stopped');
    },
  );
}
