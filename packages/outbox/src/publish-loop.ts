import { performance } from 'node:perf_hooks';
import {
  backoffDelayMs,
  isOnceflowError,
  type LanePublisher,
  type Logger,
  OnceflowError,
  reportError,
  sleep,
} from '@onceflow/core';
import type { LaneLease, OutboxRow } from '@onceflow/postgres';
import type { ResolvedRelayOptions } from './options';
import { type BatchOutcome, publishBatch } from './publish-batch';
import { RefusedTopics } from './refused-topics';

/** What the relay was doing when a failure happened, in `details.operation` of the error reported. */
export type RelayOperation =
  | 'heartbeat'
  | 'fence'
  | 'publish'
  | 'settle'
  | 'listen'
  | 'metrics'
  | 'stop'
  | 'run';

/** Everything the publish loop shares with its relay. */
export interface PublishLoopContext {
  options: ResolvedRelayOptions;
  /** The relay's logger. */
  logger: Logger;
  /** This relay's fencing id: the one publisher every owned lane is published through. */
  fencingId: string;
  /** Called when lanes were found taken over (their lease is gone; do not release them). */
  onLost: (lanes: number[]) => void;
  /** Reports a failure the relay recovers from by retrying. */
  report: (operation: RelayOperation, error: unknown) => void;
}

function notify(call: () => void): void {
  try {
    call();
  } catch {
    // Observers must not break the relay.
  }
}

function groupByLane(rows: readonly OutboxRow[]): Map<number, OutboxRow[]> {
  const byLane = new Map<number, OutboxRow[]>();
  for (const row of rows) {
    const group = byLane.get(row.lane);
    if (group) group.push(row);
    else byLane.set(row.lane, [row]);
  }
  return byLane;
}

/**
 * Publishes every lane the relay owns through one publisher, one batch at a time: claim the ready
 * rows of the lanes with work (one statement), publish them as one all-or-nothing Kafka transaction,
 * settle them (one statement). One transaction per cycle instead of one per lane keeps the broker's
 * transaction overhead flat however many lanes a relay holds.
 *
 * Fencing stays per lane: the relay records its fencing id on every lane it holds, and a relay that
 * takes a lane over after its lease expired fences that id before publishing (see relay.ts). The
 * loop (re)opens its publisher only followed by a confirmation of its leases, and claims only lanes
 * confirmed since, so a relay whose publisher was fenced cannot publish a lane it no longer holds.
 * Lanes join and leave only between cycles, so nothing of a removed lane is in flight afterwards.
 */
export class PublishLoop {
  /** Monotonic time (performance.now) until which every lease is known to hold. */
  validUntil = 0;
  private readonly leases = new Map<number, LaneLease>();
  /** Lanes notified since their last claim. */
  private readonly woken = new Set<number>();
  /** Lanes whose last claim filled their share: more rows are likely waiting. */
  private readonly backlogged = new Set<number>();
  private lastPollAt = Number.NEGATIVE_INFINITY;
  private wakeIdle: (() => void) | undefined;
  private readonly abort = new AbortController();
  private finished: Promise<void> | undefined;
  private publisher: LanePublisher | undefined;
  /** The batch claimed while the previous one was being published. */
  private prefetch: Promise<OutboxRow[] | undefined> | undefined;
  /** The settle of the last published batch, while it runs. */
  private settling: { rows: readonly OutboxRow[]; done: Promise<void> } | undefined;
  /** Lane changes applied at the next cycle boundary. */
  private changes: Array<() => void> = [];
  private boundary: Array<() => void> = [];

  /** Topics the broker refused, whose events wait for another try (or are parked in the end). */
  private readonly refused: RefusedTopics;

  constructor(private readonly context: PublishLoopContext) {
    const { options } = context;
    this.refused = new RefusedTopics(options.parkRefusedTopicAfterMs, options.retry, (error) =>
      context.report('publish', error),
    );
  }

  /** Lanes the loop publishes, ascending. */
  lanes(): number[] {
    return [...this.leases.keys()].sort((a, b) => a - b);
  }

  /** Current leases, for renewal. */
  currentLeases(): LaneLease[] {
    return [...this.leases.values()];
  }

  start(): void {
    // run() handles its own failures; should anything escape, it is reported, never left unhandled.
    this.finished ??= this.run().catch((error: unknown) => this.context.report('publish', error));
  }

  /** Adds lanes whose previous publisher is already fenced; they are claimed from the next cycle on. */
  addLanes(leases: readonly LaneLease[], validUntil: number): Promise<void> {
    return this.atBoundary(() => {
      if (this.leases.size === 0) this.validUntil = validUntil;
      else this.validUntil = Math.min(this.validUntil, validUntil);
      for (const lease of leases) {
        this.leases.set(lease.lane, lease);
        this.woken.add(lease.lane);
      }
    });
  }

  /** Stops publishing `lanes`; resolves once no batch of theirs is in flight. */
  removeLanes(lanes: readonly number[]): Promise<void> {
    return this.atBoundary(() => {
      for (const lane of lanes) this.forget(lane);
    });
  }

  /** Drops lanes found taken over, at once: whatever of theirs is in flight will not settle. */
  dropLanes(lanes: readonly number[]): void {
    for (const lane of lanes) this.forget(lane);
  }

  /** Makes the loop look at `lane` now, or at every lane when null. */
  wake(lane: number | null): void {
    if (lane === null) this.lastPollAt = Number.NEGATIVE_INFINITY;
    else if (this.leases.has(lane)) this.woken.add(lane);
    else return;
    this.wakeIdle?.();
  }

  /** Finishes the batch in flight (published and settled) and stops. */
  stop(): Promise<void> {
    this.abort.abort();
    this.wakeIdle?.();
    return this.finished ?? Promise.resolve();
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private forget(lane: number): void {
    this.leases.delete(lane);
    this.woken.delete(lane);
    this.backlogged.delete(lane);
  }

  private atBoundary(change: () => void): Promise<void> {
    if (this.finished === undefined || this.stopped) {
      change();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.changes.push(change);
      this.boundary.push(resolve);
      this.wakeIdle?.();
    });
  }

  private applyChanges(): void {
    const changes = this.changes.splice(0);
    const done = this.boundary.splice(0);
    for (const change of changes) change();
    for (const resolve of done) resolve();
  }

  private async run(): Promise<void> {
    const { options } = this.context;
    let attempt = 0;
    try {
      while (!this.stopped) {
        try {
          // Lanes leave only when nothing of theirs is in flight, the settle included.
          if (this.changes.length > 0) await this.drainSettle();
          this.applyChanges();
          if (this.leases.size === 0) {
            await this.idle(options.pollIntervalMs);
            continue;
          }
          if (this.publisher === undefined) {
            this.publisher = await options.transport.openLane(this.context.fencingId);
            // Opening re-initialised our publisher; only lanes confirmed after it are published.
            await this.confirmLeases();
          } else if (performance.now() >= this.validUntil) await this.confirmLeases();
          if (this.stopped) break;
          const rows = await this.nextBatch();
          if (rows === undefined) {
            await this.drainSettle();
            await this.idle(this.untilNextPoll());
            continue;
          }
          if (rows.length > 0) {
            // Under load (a backlog, or a batch of at least a row per lane), read the next batch while
            // this one is published; it is used only if this one went out whole, else later rows of
            // a key could overtake a parked or failed one. At a light load the next claim waits for
            // this publish to end: a claim made at its start would miss what is committed meanwhile,
            // which would then wait a whole cycle more.
            if (this.backlogged.size > 0 || rows.length >= this.leases.size) {
              this.prefetch = this.claim([...rows, ...(this.settling?.rows ?? [])]);
              this.prefetch.catch(() => undefined);
            }
            const clean = await this.publishAndSettle(this.publisher, rows);
            if (!clean) this.discardPrefetch();
          }
          attempt = 0;
        } catch (error) {
          this.discardPrefetch();
          await this.drainSettle().catch((settleError: unknown) =>
            this.context.report('settle', settleError),
          );
          if (isOnceflowError(error, 'OF_LEASE_LOST')) {
            // Fenced: a relay took over one of our lanes. Reopen and keep the lanes still confirmed.
            await this.closePublisher();
            continue;
          }
          this.context.report('publish', error);
          // The publisher may be mid-transaction or broken; reopening aborts whatever it left open.
          await this.closePublisher();
          attempt++;
          await sleep(backoffDelayMs(options.retry, attempt), this.abort.signal);
        }
      }
    } finally {
      await this.drainSettle().catch((error: unknown) => this.context.report('settle', error));
      await this.closePublisher();
      this.applyChanges();
    }
  }

  /** The next batch: the prefetched one (minus lanes that left meanwhile) or a fresh claim; undefined when no lane is due. */
  private async nextBatch(): Promise<OutboxRow[] | undefined> {
    const prefetch = this.prefetch;
    this.prefetch = undefined;
    const rows = prefetch ? await prefetch : await this.claim(this.settling?.rows ?? []);
    if (rows === undefined) return undefined;
    return rows.filter((row) => this.leases.has(row.lane));
  }

  /** Drops the prefetched batch; its claim consumed the lanes' wake-ups, so every lane is looked at next. */
  private discardPrefetch(): void {
    if (this.prefetch === undefined) return;
    this.prefetch = undefined;
    this.lastPollAt = Number.NEGATIVE_INFINITY;
  }

  /** Claims the rows of the lanes due now, leaving out `exclude` (rows in flight). */
  private async claim(exclude: readonly OutboxRow[]): Promise<OutboxRow[] | undefined> {
    const { options } = this.context;
    const lanes = this.lanesToClaim();
    if (lanes.length === 0) return undefined;
    const share = Math.max(1, Math.ceil(options.batchSize / lanes.length));
    // Rows of a refused topic not yet due for another try are left out (their keys' later rows share
    // the topic, so no order is broken), by the claim and, for a topic refused while the claim ran,
    // here; they neither count for a backlog: claiming the lane again at once would only find them again.
    const claimed = await options.store.claim(lanes, share, exclude, this.refused.excludedTopics());
    const rows = claimed.filter((row) => !this.refused.waits(row));
    const counts = new Map<number, number>();
    for (const row of rows) counts.set(row.lane, (counts.get(row.lane) ?? 0) + 1);
    for (const lane of lanes)
      if ((counts.get(lane) ?? 0) >= share) this.backlogged.add(lane);
      else this.backlogged.delete(lane);
    return rows;
  }

  private async closePublisher(): Promise<void> {
    const publisher = this.publisher;
    this.publisher = undefined;
    await publisher?.close().catch(() => undefined);
  }

  private lanesToClaim(): number[] {
    if (performance.now() - this.lastPollAt >= this.context.options.pollIntervalMs) {
      this.lastPollAt = performance.now();
      this.woken.clear();
      return this.lanes();
    }
    const lanes = new Set([...this.woken, ...this.backlogged]);
    this.woken.clear();
    return [...lanes].filter((lane) => this.leases.has(lane)).sort((a, b) => a - b);
  }

  private untilNextPoll(): number {
    return Math.max(1, this.lastPollAt + this.context.options.pollIntervalMs - performance.now());
  }

  /** Renews every lease; lanes taken over are dropped and reported. */
  private async confirmLeases(): Promise<void> {
    const { options } = this.context;
    const startedAt = performance.now();
    const current = this.currentLeases();
    const held = await options.store.renewLanes(current, options.leaseMs, this.context.fencingId);
    const heldLanes = new Set(held.map((lease) => lease.lane));
    const lost = current.map((lease) => lease.lane).filter((lane) => !heldLanes.has(lane));
    this.dropLanes(lost);
    if (lost.length > 0) this.context.onLost(lost);
    this.validUntil = startedAt + options.leaseMs;
  }

  private async idle(ms: number): Promise<void> {
    if (this.woken.size > 0 || this.changes.length > 0 || this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      this.wakeIdle = done;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
    this.wakeIdle = undefined;
  }

  /** Waits for the settle in flight, if any; rethrows its failure. */
  private async drainSettle(): Promise<void> {
    const settling = this.settling;
    if (settling === undefined) return;
    try {
      await settling.done;
    } finally {
      if (this.settling === settling) this.settling = undefined;
    }
  }

  /**
   * Publishes `rows` and settles them; true when every row went out. The settle of a cleanly published batch is left running while
   * the next batch is claimed (its rows excluded) and published: Kafka already holds this batch, so
   * the next one lands after it whatever the settle's timing. A batch that parked or held back rows
   * is settled before anything else is claimed, or later rows of a parked key could slip out.
   */
  private async publishAndSettle(publisher: LanePublisher, rows: OutboxRow[]): Promise<boolean> {
    const { options } = this.context;
    const byLane = groupByLane(rows);
    if (options.testHooks.beforePublish)
      for (const [lane, laneRows] of byLane) await options.testHooks.beforePublish(lane, laneRows);
    const startedAt = performance.now();
    // Rows of a topic the broker refused wait until it is due for another try; the rest go out.
    const waiting = rows.filter((row) => this.refused.waits(row));
    const sending = waiting.length === 0 ? rows : rows.filter((row) => !this.refused.waits(row));
    const outcome: BatchOutcome = { published: [], parked: [], heldBack: 0, deferred: waiting };
    let failure: unknown;
    const narrowing = this.freshAfterFailure(publisher, [...byLane.keys()]);
    try {
      await publishBatch(narrowing, sending, outcome, this.refused.decide);
    } catch (error) {
      failure = error;
    }
    this.refused.settled(outcome);
    const deferred = outcome.deferred?.length ?? 0;
    // Nothing more is sent under the epoch of a failed send: the next cycle reopens the publisher.
    if (narrowing.failed()) await this.closePublisher();
    const ackedAt = performance.now();
    if (failure === undefined && options.testHooks.afterPublish)
      for (const [lane, laneRows] of byLane) await options.testHooks.afterPublish(lane, laneRows);
    // One settle in flight at most: the next claim excludes exactly its rows.
    await this.drainSettle();
    if (outcome.published.length > 0 || outcome.parked.length > 0) {
      const done = this.settle(byLane, outcome, ackedAt - startedAt);
      // Left running, it may fail (connection lost, server shutting down) while the loop awaits
      // something else: handled here so that it cannot kill the process, it is still rethrown by
      // drainSettle. Its rows stay in the outbox and are published again, with the same ids.
      done.catch(() => undefined);
      if (failure === undefined && outcome.parked.length === 0 && outcome.heldBack === 0 && deferred === 0) {
        this.settling = { rows, done };
        return true;
      }
      await done;
    }
    if (failure !== undefined) throw failure;
    return outcome.parked.length === 0 && outcome.heldBack === 0 && deferred === 0;
  }

  /**
   * `publisher` for the narrowing of one batch: every publish after a failed one goes through a
   * reopened publisher. A failed send may still have been appended for some partitions of its
   * request (the broker refuses per partition) while the client rolls back its sequence numbers for
   * all of them; resending under the same producer epoch then matches the aborted records as
   * duplicates, which the broker acknowledges without appending, so the rows would be settled as
   * published while no consumer ever sees them. Reopening starts a new epoch with fresh sequences;
   * the leases of `lanes` are confirmed after it, as whenever the publisher is reopened, and losing
   * one of them ends the batch.
   */
  private freshAfterFailure(
    publisher: LanePublisher,
    lanes: readonly number[],
  ): LanePublisher & { failed(): boolean } {
    let current = publisher;
    let failed = false;
    return {
      publish: async (records) => {
        if (failed) {
          await this.closePublisher();
          this.publisher = await this.context.options.transport.openLane(this.context.fencingId);
          current = this.publisher;
          await this.confirmLeases();
          const lost = lanes.filter((lane) => !this.leases.has(lane));
          if (lost.length > 0)
            throw new OnceflowError('OF_LEASE_LOST', `outbox lanes ${lost.join(', ')} were taken over`, {
              details: { lanes: lost },
            });
          failed = false;
        }
        try {
          await current.publish(records);
        } catch (error) {
          failed = true;
          throw error;
        }
      },
      close: () => current.close(),
      failed: () => failed,
    };
  }

  private async settle(
    byLane: ReadonlyMap<number, OutboxRow[]>,
    outcome: BatchOutcome,
    publishLatencyMs: number,
  ): Promise<void> {
    const { options } = this.context;
    const leases = [...byLane.keys()]
      .map((lane) => this.leases.get(lane))
      .filter((lease) => lease !== undefined);
    const settled = await options.store.settle({
      leases,
      published: outcome.published,
      parked: outcome.parked.map(({ row, error }) => ({ lane: row.lane, seq: row.seq, error })),
    });
    const lost = [...byLane.keys()].filter((lane) => !settled.heldLanes.includes(lane));
    this.report(outcome, publishLatencyMs, new Set(settled.heldLanes), settled.parkedAt ?? new Date());
    if (lost.length > 0) {
      const stillOurs = lost.filter((lane) => this.leases.has(lane));
      this.dropLanes(lost);
      if (stillOurs.length > 0) this.context.onLost(stillOurs);
    }
  }

  private report(
    outcome: BatchOutcome,
    publishLatencyMs: number,
    held: ReadonlySet<number>,
    parkedAt: Date,
  ): void {
    const { observer, onError } = this.context.options;
    const perLane = new Map<number, { count: number; maxAgeMs: number }>();
    for (const row of outcome.published) {
      if (!held.has(row.lane)) continue;
      const entry = perLane.get(row.lane) ?? { count: 0, maxAgeMs: 0 };
      entry.count++;
      entry.maxAgeMs = Math.max(entry.maxAgeMs, row.ageMs);
      perLane.set(row.lane, entry);
    }
    for (const [lane, { count, maxAgeMs }] of perLane)
      notify(() =>
        observer.onPublished?.({
          lane,
          count,
          publishLatencyMs,
          maxEndToEndMs: maxAgeMs + publishLatencyMs,
        }),
      );
    for (const { row, error } of outcome.parked) {
      if (!held.has(row.lane)) continue;
      const event = {
        lane: row.lane,
        seq: row.seq,
        eventId: row.eventId,
        topic: row.topic,
        key: row.key,
        error,
        parkedAt,
      };
      reportError(
        { logger: this.context.logger, onError },
        'error',
        new OnceflowError(
          'OF_EVENT_PARKED',
          `outbox event ${row.eventId} to ${row.topic} can never be published and was parked, holding back later events of its key; fix the cause, then unpark it: ${error}`,
          { details: { eventId: row.eventId, topic: row.topic, lane: row.lane, seq: row.seq } },
        ),
      );
      notify(() => observer.onParked?.(event));
    }
  }
}
