import { invalidOptions, type RetryPolicy } from '@onceflow/core';
import type { Pool } from 'pg';
import { describePool } from '../describe-pool';
import { defaultSchemaName, validateIdentifier } from '../identifier';
import { schemaMismatch } from '../schema-mismatch';
import { claimOutboxBatch, type OutboxRow } from './claim-batch';
import { outboxLaneCount } from './enqueue';
import {
  type AcquiredLane,
  acquireLaneLeases,
  heartbeatRelay,
  type LaneLease,
  releaseLaneLeases,
  renewLaneLeases,
  unregisterRelay,
} from './lane-leases';
import { rotatePublishedLedger } from './published-ledger';
import { type SettleResult, settleOutboxBatch } from './settle-batch';
import { type OutboxStatus, readOutboxStatus } from './status';
import { listenForWakeups } from './wakeups';

/** What the relay asks the store to settle after a publish. */
export interface OutboxSettlement {
  /** The leases of every lane the rows belong to; a lane whose lease is gone settles nothing. */
  leases: readonly LaneLease[];
  /** Rows the broker acknowledged: deleted. */
  published: readonly { lane: number; seq: string }[];
  /** Rows that can never be published, with the error to keep: parked. */
  parked: readonly { lane: number; seq: string; error: string }[];
}

/** How the relay listens for new rows. */
export interface OutboxListenOptions {
  /** Called with the lane of a new row, or null when every lane should look (after a reconnect). */
  onWake(lane: number | null): void;
  /** Called when the listening connection failed; it is reopened with `retry`'s backoff. */
  onError(error: unknown): void;
  /** Backoff between reconnects (`maxAttempts` does not apply: it reconnects until `signal` aborts). */
  retry: RetryPolicy;
  /** Aborting stops listening. */
  signal: AbortSignal;
}

/**
 * The storage of the outbox relay, as the inbox engine has its `InboxStore`: lanes and their leases,
 * the relays' liveness, claiming and settling rows, and wake-ups. The Postgres implementation is
 * {@link createPgOutboxStore}.
 */
export interface OutboxStore {
  /**
   * Names this outbox among others that share a Kafka cluster (the Postgres store's is its schema);
   * it is part of the relay's default fencing id, so relays of different outboxes never fence each other.
   */
  readonly name: string;
  /** Where the store keeps its data, for messages (`Postgres at db:5432 (database app)`). Optional. */
  readonly target?: string;
  /** Number of lanes the keys are spread over; a relay takes a fair share of them. */
  readonly laneCount: number;
  /** Records that `relayId` is alive for `leaseMs`; resolves to the number of live relays, itself included. */
  heartbeat(relayId: string, leaseMs: number): Promise<number>;
  /** Removes a stopping relay from the live set, so the others rebalance at once. */
  unregister(relayId: string): Promise<void>;
  /**
   * Takes up to `max` free or expired lanes for `owner` for `leaseMs`, each with a new epoch, and the
   * fencing id its previous owner recorded (to be fenced before the lane is published).
   */
  acquireLanes(owner: string, max: number, leaseMs: number): Promise<AcquiredLane[]>;
  /**
   * Extends the leases still held by `leaseMs` and returns them (a lease missing from the result was
   * taken over); with `fencingId`, records it as the publisher of those lanes.
   */
  renewLanes(leases: readonly LaneLease[], leaseMs: number, fencingId?: string): Promise<LaneLease[]>;
  /** Gives lanes back; only once nothing of theirs is in flight. */
  releaseLanes(leases: readonly LaneLease[]): Promise<void>;
  /**
   * The oldest unpublished rows of each of `lanes` in order, at most `limit` per lane, leaving out
   * parked rows, later rows of a parked row's key, `exclude` (rows in flight) and the rows of
   * `excludeTopics` (topics held back).
   */
  claim(
    lanes: readonly number[],
    limit: number,
    exclude: readonly { seq: string }[],
    excludeTopics?: readonly string[],
  ): Promise<OutboxRow[]>;
  /** Deletes published rows and parks failed ones, each lane only while its lease holds. */
  settle(settlement: OutboxSettlement): Promise<SettleResult>;
  /** Backlog, oldest age, parked count, live relays and owned lanes. */
  status(): Promise<OutboxStatus>;
  /** Turns notifications of new rows into wake-ups until `signal` aborts. */
  listen(options: OutboxListenOptions): Promise<void>;
}

/** Options of {@link createPgOutboxStore}. */
export interface PgOutboxStoreOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /**
   * Whether the settle statement records each published event in the published ledger (migration
   * 0006), which the console's "where is message X?" reads. Default: true.
   */
  publishedLedger?: boolean;
  /**
   * How long the published ledger keeps a record, in hours, when no inbox consumer declared a
   * retention window in the schema (otherwise the longest declared window applies). Default: 168.
   */
  publishedLedgerRetentionHours?: number;
}

/** Defaults of {@link PgOutboxStoreOptions}. */
export const defaultPgOutboxStoreOptions = Object.freeze({
  publishedLedger: true,
  publishedLedgerRetentionHours: 168,
});

// The ledger's rotation rides on the relays' heartbeats, at most this often per store.
const ledgerRotationIntervalMs = 60_000;

/**
 * The outbox store on a pg Pool, over the tables and functions of migrations 0002 and 0006 (the
 * published ledger, rotated on the relays' heartbeats). `listen` holds one
 * pooled connection in LISTEN.
 */
export function createPgOutboxStore(pool: Pool, options: PgOutboxStoreOptions = {}): OutboxStore {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const ledger = options.publishedLedger ?? defaultPgOutboxStoreOptions.publishedLedger;
  const retentionHours =
    options.publishedLedgerRetentionHours ?? defaultPgOutboxStoreOptions.publishedLedgerRetentionHours;
  if (!(retentionHours > 0))
    invalidOptions(
      'onceflow outbox store',
      'publishedLedgerRetentionHours must be a positive number of hours',
    );
  let ledgerRotatedAt = Number.NEGATIVE_INFINITY;
  // The first statements of a relay and of a metrics read: where a schema never migrated shows.
  const checked = <T>(work: Promise<T>): Promise<T> =>
    work.catch((error: unknown) => {
      throw schemaMismatch(error, schema);
    });
  return {
    name: schema,
    target: describePool(pool),
    laneCount: outboxLaneCount,
    heartbeat: async (relayId, leaseMs) => {
      const live = await checked(heartbeatRelay(pool, { schema, relayId, ttlMs: leaseMs }));
      if (ledger && Date.now() - ledgerRotatedAt >= ledgerRotationIntervalMs) {
        await rotatePublishedLedger(pool, {
          schema,
          defaultRetentionSeconds: Math.ceil(retentionHours * 3600),
        });
        ledgerRotatedAt = Date.now();
      }
      return live;
    },
    unregister: (relayId) => unregisterRelay(pool, { schema, relayId }),
    acquireLanes: (owner, max, leaseMs) => acquireLaneLeases(pool, { schema, owner, max, ttlMs: leaseMs }),
    renewLanes: (leases, leaseMs, fencingId) =>
      renewLaneLeases(pool, {
        schema,
        leases,
        ttlMs: leaseMs,
        ...(fencingId === undefined ? {} : { fencingId }),
      }),
    releaseLanes: (leases) => releaseLaneLeases(pool, { schema, leases }),
    claim: (lanes, limit, exclude, excludeTopics) =>
      claimOutboxBatch(pool, { schema, lanes, limit, exclude, excludeTopics: excludeTopics ?? [] }),
    settle: (settlement) => settleOutboxBatch(pool, { schema, ledger, ...settlement }),
    status: () => checked(readOutboxStatus(pool, { schema })),
    listen: (listenOptions) => listenForWakeups({ pool, schema, ...listenOptions }),
  };
}
