import { invalidOptions, OnceflowError } from '@onceflow/core';
import type { Pool } from 'pg';
import {
  getIdempotencyKey,
  type IdempotencyKeyDetail,
  type IdempotencyKeyInfo,
  listIdempotencyKeys,
  type PurgeKeysResult,
  purgeIdempotencyKeys,
} from '../idempotency/list-keys';
import { defaultSchemaName, validateIdentifier } from '../identifier';
import {
  type DeadLetter,
  type DeadLetterDetail,
  type DeadLetterFilter,
  getDeadLetter,
  listDeadLetters,
  type RedriveOptions,
  type RedriveResult,
  requestRedrive,
} from '../inbox/dead-letters';
import {
  type InboxPosition,
  type InboxPositionChange,
  listInboxPositions,
  type ResetPositionsOptions,
  resetInboxPositions,
} from '../inbox/positions';
import { type InboxStatus, readInboxStatus } from '../inbox/status';
import { type MigrateOptions, type MigrateResult, migrate } from '../migrate';
import {
  dropParkedEvents,
  listParkedEvents,
  type OutboxLaneStatus,
  type OutboxStatus,
  type OutboxTopicStatus,
  type ParkedEvent,
  type ParkedEventFilter,
  readOutboxBreakdown,
  readOutboxStatus,
  unparkEvents,
} from '../outbox/status';
import { schemaMismatch } from '../schema-mismatch';
import { type MessageTrace, readFlowCounters, traceMessage } from './locate-message';

/** Options of {@link createOnceflowAdmin}. */
export interface OnceflowAdminOptions {
  /** The pool the verbs query through; the admin never ends it. Required. */
  pool: Pool;
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
}

/**
 * What operators do with a running onceflow schema: the verbs the `onceflow` command and a console
 * share. Each verb is one short statement on the pool; none holds a connection between calls.
 */
export interface OnceflowAdmin {
  /** The validated schema name. */
  readonly schema: string;
  /** Brings onceflow's tables in the schema up to date (see `migrate`). */
  migrate(options?: Omit<MigrateOptions, 'schema'>): Promise<MigrateResult>;
  /**
   * Backlog, age of the oldest waiting event, parked events, live relays and owned lanes, with the
   * backlog per topic and per lane and each lane's owner.
   */
  outboxStatus(): Promise<OutboxStatusDetail>;
  /** Parked events, oldest first, optionally by ids, key or topic. `limit` default: 100. */
  listParkedEvents(options?: ParkedEventFilter & { limit?: number }): Promise<ParkedEvent[]>;
  /**
   * Returns parked events to the queue once their cause is fixed (e.g. the topic's size limit
   * raised): all of them, or those selected by ids, key or topic. Resolves to how many were unparked.
   */
  unparkEvents(options?: ParkedEventFilter): Promise<number>;
  /**
   * Deletes parked events that will never be needed (by ids, key or topic; at least one is
   * required), releasing the later events of their keys. With `dryRun` (default: true) only lists
   * them. Resolves to the events dropped, or that would be.
   */
  dropParkedEvents(options: ParkedEventFilter & { dryRun?: boolean }): Promise<ParkedEvent[]>;
  /** Inbox consumers with their retention windows, positions and dead-letter counts, and the retention generations. */
  inboxStatus(): Promise<InboxStatus>;
  /** Dead letters, oldest first, optionally of one consumer, topic, reason or state. `limit` default: 100. */
  listDeadLetters(options?: DeadLetterFilter & { limit?: number }): Promise<DeadLetter[]>;
  /** One dead letter with its payload and headers; undefined when there is none. */
  getDeadLetter(options: { consumer: string; messageId: string }): Promise<DeadLetterDetail | undefined>;
  /**
   * Redrives a consumer's dead letters (those in state `dead`, by ids or by filter, oldest first, at
   * most `limit`, default 100): each is marked `redrive_requested` with a new token and a copy of its
   * message is enqueued into the outbox in the same transaction; the relay publishes it to the
   * original topic and the inbox runs the handler for it exactly once (docs/operations.md). With
   * `dryRun: true`, lists what would be redriven and changes nothing.
   */
  redriveDeadLetters(options: RedriveOptions): Promise<RedriveResult>;
  /** The inbox positions (next offset per consumer, topic and partition), optionally of one consumer or topic. */
  listPositions(options?: { consumer?: string; topic?: string }): Promise<InboxPosition[]>;
  /**
   * Sets a consumer's stored positions in a topic, in one transaction: after a topic was deleted and
   * recreated (OF_POSITION_AHEAD), a database restore, or to skip or replay part of a topic. The inbox
   * rows stay, so messages already processed are still recognised as duplicates. Consumers running
   * meanwhile may overwrite the change with their own progress: stop them first. Resolves to each
   * partition's position before and after.
   */
  resetPositions(options: ResetPositionsOptions): Promise<InboxPositionChange[]>;
  /** Idempotency keys, most recently touched first, optionally of one scope or state. `limit` default: 100. */
  listIdempotencyKeys(options?: {
    scope?: string;
    state?: IdempotencyKeyInfo['state'];
    limit?: number;
  }): Promise<IdempotencyKeyInfo[]>;
  /**
   * Where message `messageId` is: its outbox row while waiting or parked, its published-ledger
   * records (topic, relay, latency), each consumer's inbox row and the positions of its topics' consumers.
   */
  traceMessage(messageId: string): Promise<MessageTrace>;
  /** Cumulative rows published (ledger) and consumed (inbox), from table statistics; diff two reads for a rate. */
  flowCounters(): Promise<{ published: number; consumed: number }>;
  /** One idempotency key; undefined when there is none. */
  getIdempotencyKey(options: { scope: string; key: string }): Promise<IdempotencyKeyDetail | undefined>;
  /**
   * Deletes completed idempotency keys, optionally of one scope and untouched for `olderThanMs`; keys
   * of requests in progress are never purged. With `dryRun` (default: true) only counts and lists them.
   */
  purgeIdempotencyKeys(options?: {
    scope?: string;
    olderThanMs?: number;
    dryRun?: boolean;
  }): Promise<PurgeKeysResult>;
}

/** {@link OutboxStatus} with the backlog per topic and per lane, and the lanes' owners. */
export interface OutboxStatusDetail extends OutboxStatus {
  /** Topics with waiting or parked events. */
  topics: OutboxTopicStatus[];
  /** Every lane. */
  lanes: OutboxLaneStatus[];
}

function requireText(verb: string, name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '')
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      `onceflow admin ${verb}: ${name} is required (a non-empty string)`,
    );
  return value;
}

/** The fields of `object` named in `keys` that are defined (options are `exactOptionalPropertyTypes`). */
function pick<T extends object, K extends keyof T>(object: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (object[key] !== undefined) picked[key] = object[key];
  return picked;
}

function limitOf(verb: string, limit: number | undefined): number {
  const value = limit ?? 100;
  if (!Number.isInteger(value) || value < 1 || value > 100_000)
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      `onceflow admin ${verb}: limit must be an integer between 1 and 100000 (got ${String(limit)})`,
    );
  return value;
}

/**
 * The admin library over `pool` and `schema`, shaped like graphile-worker's `makeWorkerUtils`: the
 * operator's verbs for parked events, positions and keys, used by the CLI and by a console alike.
 * A schema without onceflow's tables makes a verb reject with OF_SCHEMA_MISMATCH.
 */
export function createOnceflowAdmin(options: OnceflowAdminOptions): OnceflowAdmin {
  const component = 'onceflow admin';
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (typeof options.pool?.query !== 'function') invalidOptions(component, 'pool must be a pg Pool');
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const { pool } = options;
  const checked = <T>(work: Promise<T>): Promise<T> =>
    work.catch((error: unknown) => {
      throw schemaMismatch(error, schema);
    });
  return {
    schema,
    migrate: (migrateOptions = {}) => migrate(pool, { ...migrateOptions, schema }),
    outboxStatus: () =>
      checked(
        Promise.all([readOutboxStatus(pool, { schema }), readOutboxBreakdown(pool, { schema })]).then(
          ([status, breakdown]) => ({ ...status, ...breakdown }),
        ),
      ),
    listParkedEvents: async (listOptions = {}) =>
      checked(
        listParkedEvents(pool, {
          schema,
          limit: limitOf('listParkedEvents', listOptions.limit),
          eventIds: listOptions.eventIds,
          key: listOptions.key,
          topic: listOptions.topic,
        }),
      ),
    unparkEvents: (unparkOptions = {}) =>
      checked(
        unparkEvents(pool, {
          schema,
          eventIds: unparkOptions.eventIds,
          key: unparkOptions.key,
          topic: unparkOptions.topic,
        }),
      ),
    dropParkedEvents: async (dropOptions) => {
      const { eventIds, key, topic } = dropOptions ?? {};
      if (eventIds === undefined && key === undefined && topic === undefined)
        throw new OnceflowError(
          'OF_INVALID_ARGUMENT',
          'onceflow admin dropParkedEvents: name the events by eventIds, key or topic (dropping every parked event at once is not offered)',
        );
      return checked(
        dropParkedEvents(pool, { schema, eventIds, key, topic, dryRun: dropOptions.dryRun ?? true }),
      );
    },
    inboxStatus: () => checked(readInboxStatus(pool, { schema })),
    listDeadLetters: async (listOptions = {}) =>
      checked(
        listDeadLetters(pool, {
          schema,
          limit: limitOf('listDeadLetters', listOptions.limit),
          ...pick(listOptions, ['consumer', 'topic', 'reason', 'state']),
        }),
      ),
    getDeadLetter: async (getOptions) =>
      checked(
        getDeadLetter(pool, {
          schema,
          consumer: requireText('getDeadLetter', 'consumer', getOptions?.consumer),
          messageId: requireText('getDeadLetter', 'messageId', getOptions?.messageId),
        }),
      ),
    redriveDeadLetters: async (redriveOptions) =>
      checked(
        requestRedrive(pool, {
          ...redriveOptions,
          consumer: requireText('redriveDeadLetters', 'consumer', redriveOptions?.consumer),
          schema,
          limit: limitOf('redriveDeadLetters', redriveOptions.limit),
        }),
      ),
    getIdempotencyKey: async (keyOptions) =>
      checked(
        getIdempotencyKey(pool, {
          schema,
          scope: requireText('getIdempotencyKey', 'scope', keyOptions?.scope),
          key: requireText('getIdempotencyKey', 'key', keyOptions?.key),
        }),
      ),
    purgeIdempotencyKeys: async (purgeOptions = {}) => {
      const { olderThanMs } = purgeOptions;
      if (olderThanMs !== undefined && (!Number.isFinite(olderThanMs) || olderThanMs < 0))
        throw new OnceflowError(
          'OF_INVALID_ARGUMENT',
          `onceflow admin purgeIdempotencyKeys: olderThanMs must be a non-negative number of milliseconds (got ${String(olderThanMs)})`,
        );
      return checked(
        purgeIdempotencyKeys(pool, {
          schema,
          scope: purgeOptions.scope,
          olderThanMs,
          dryRun: purgeOptions.dryRun ?? true,
        }),
      );
    },
    listPositions: (listOptions = {}) =>
      checked(listInboxPositions(pool, { schema, consumer: listOptions.consumer, topic: listOptions.topic })),
    resetPositions: (resetOptions) => checked(resetInboxPositions(pool, { ...resetOptions, schema })),
    listIdempotencyKeys: async (listOptions = {}) =>
      checked(
        listIdempotencyKeys(pool, {
          schema,
          limit: limitOf('listIdempotencyKeys', listOptions.limit),
          scope: listOptions.scope,
          state: listOptions.state,
        }),
      ),
    traceMessage: async (messageId) => {
      if (typeof messageId !== 'string' || messageId === '')
        throw new OnceflowError(
          'OF_INVALID_ARGUMENT',
          'onceflow admin traceMessage: messageId must be a non-empty string',
        );
      return checked(traceMessage(pool, { schema, messageId }));
    },
    flowCounters: () => checked(readFlowCounters(pool, { schema })),
  };
}
