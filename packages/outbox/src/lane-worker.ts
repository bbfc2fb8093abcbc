import { performance } from 'node:perf_hooks';
import {
  backoffDelayMs,
  isOnceflowError,
  type LanePublisher,
  OnceflowError,
  type RetryPolicy,
  sleep,
} from '@onceflow/core';
import {
  claimOutboxBatch,
  type LaneLease,
  type OutboxRow,
  renewLaneLeases,
  settleOutboxBatch,
} from '@onceflow/postgres';
import type { ResolvedRelayOptions } from './options';
import { type BatchOutcome, publishBatch } from './publish-batch';

/** Everything a lane worker shares with its relay. */
export interface LaneWorkerContext {
  options: ResolvedRelayOptions;
  retry: RetryPolicy;
  /** Called once when the worker has finished, with whether it lost its lease. */
  onExit: (worker: LaneWorker, lost: boolean) => void;
}

function notify(call: () => void): void {
  try {
    call();
  } catch {
    // Observers must not break the relay.
  }
}

/**
 * Publishes one lane while its lease holds: claim → publish → settle, woken by notifications or
 * polling. Opening the lane's publisher fences any earlier owner; the publisher is (re)opened only
 * right after the lease was confirmed in Postgres, so this worker can never fence a newer owner.
 */
export class LaneWorker {
  /** Monotonic time (performance.now) until which the lease is known to hold. */
  validUntil: number;
  private wakePending = true;
  private wakeIdle: (() => void) | undefined;
  private readonly abort = new AbortController();
  private finished: Promise<void> | undefined;

  constructor(
    private readonly context: LaneWorkerContext,
    public lease: LaneLease,
    validUntil: number,
  ) {
    this.validUntil = validUntil;
  }

  get lane(): number {
    return this.lease.lane;
  }

  start(): void {
    this.finished ??= this.run();
  }

  /** Makes an idle worker look for rows now. */
  wake(): void {
    this.wakePending = true;
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

  private async run(): Promise<void> {
    const { options } = this.context;
    let publisher: LanePublisher | undefined;
    let lost = false;
    let attempt = 0;
    try {
      while (!this.stopped) {
        try {
          if (publisher === undefined || performance.now() >= this.validUntil) await this.confirmLease();
          publisher ??= await options.transport.openLane(`${options.fencingIdPrefix}${this.lane}`);
          if (this.stopped) break;
          this.wakePending = false;
          const rows = await claimOutboxBatch(options.pool, {
            schema: options.schema,
            lane: this.lane,
            limit: options.batchSize,
          });
          if (rows.length === 0) {
            attempt = 0;
            await this.idle(options.pollIntervalMs);
            continue;
          }
          await this.publishAndSettle(publisher, rows);
          attempt = 0;
        } catch (error) {
          if (isOnceflowError(error, 'OF_LEASE_LOST')) {
            lost = true;
            break;
          }
          notify(() => options.observer.onError?.(error, `outbox lane ${this.lane}`));
          // The publisher may be mid-transaction or broken; a fresh one is opened after the lease is confirmed.
          await publisher?.close().catch(() => undefined);
          publisher = undefined;
          attempt++;
          await sleep(backoffDelayMs(this.context.retry, attempt), this.abort.signal);
        }
      }
    } finally {
      await publisher?.close().catch(() => undefined);
      this.context.onExit(this, lost);
    }
  }

  /** Renews this lane's lease; throws OF_LEASE_LOST when another relay took it. */
  private async confirmLease(): Promise<void> {
    const { options } = this.context;
    const startedAt = performance.now();
    const held = await renewLaneLeases(options.pool, {
      schema: options.schema,
      leases: [this.lease],
      ttlMs: options.leaseTtlMs,
    });
    if (held.length === 0)
      throw new OnceflowError('OF_LEASE_LOST', `outbox lane ${this.lane} was taken over by another relay`, {
        details: { lane: this.lane, epoch: this.lease.epoch },
      });
    this.validUntil = startedAt + options.leaseTtlMs;
  }

  private async idle(ms: number): Promise<void> {
    if (this.wakePending || this.stopped) return;
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

  private async publishAndSettle(publisher: LanePublisher, rows: OutboxRow[]): Promise<void> {
    const { options } = this.context;
    await options.testHooks.beforePublish?.(this.lane, rows);
    const startedAt = performance.now();
    const outcome: BatchOutcome = { published: [], parked: [], heldBack: 0 };
    let failure: unknown;
    try {
      await publishBatch(publisher, rows, outcome);
    } catch (error) {
      failure = error;
    }
    const ackedAt = performance.now();
    if (failure === undefined) await options.testHooks.afterPublish?.(this.lane, rows);
    if (outcome.published.length > 0 || outcome.parked.length > 0) {
      const settled = await settleOutboxBatch(options.pool, {
        schema: options.schema,
        lease: this.lease,
        published: outcome.published,
        parked: outcome.parked.map(({ row, error }) => ({ seq: row.seq, error })),
      });
      if (!settled.leaseHeld)
        throw new OnceflowError(
          'OF_LEASE_LOST',
          `outbox lane ${this.lane} was taken over before its batch was settled`,
          {
            details: { lane: this.lane, epoch: this.lease.epoch },
          },
        );
      this.report(rows, outcome, ackedAt - startedAt);
    }
    if (failure !== undefined) throw failure;
  }

  private report(rows: readonly OutboxRow[], outcome: BatchOutcome, publishLatencyMs: number): void {
    const { observer } = this.context.options;
    const published = new Set(outcome.published);
    let maxAgeMs = 0;
    for (const row of rows) if (published.has(row.seq)) maxAgeMs = Math.max(maxAgeMs, row.ageMs);
    if (published.size > 0)
      notify(() =>
        observer.onPublished?.({
          lane: this.lane,
          count: published.size,
          publishLatencyMs,
          maxEndToEndMs: maxAgeMs + publishLatencyMs,
        }),
      );
    for (const { row, error } of outcome.parked)
      notify(() =>
        observer.onParked?.({ lane: this.lane, eventId: row.eventId, topic: row.topic, key: row.key, error }),
      );
  }
}
