import { invalidOptions, OnceflowError } from '@onceflow/core';
import type { Pool } from 'pg';
import { type IdempotencyKeyInfo, listIdempotencyKeys } from '../idempotency/list-keys';
import { defaultSchemaName, validateIdentifier } from '../identifier';
import {
  type InboxPosition,
  type InboxPositionChange,
  listInboxPositions,
  type ResetPositionsOptions,
  resetInboxPositions,
} from '../inbox/positions';
import { type MigrateOptions, type MigrateResult, migrate } from '../migrate';
import {
  listParkedEvents,
  type OutboxStatus,
  type ParkedEvent,
  readOutboxStatus,
  unparkEvents,
} from '../outbox/status';
import { schemaMismatch } from '../schema-mismatch';
import {
  type MessageTrace,
  type OutboxTopology,
  readFlowCounters,
  readOutboxTopology,
  traceMessage,
} from './locate-message';

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
  /** Backlog, age of the oldest waiting event, parked events, live relays and owned lanes. */
  outboxStatus(): Promise<OutboxStatus>;
  /** Parked events, oldest first. `limit` default: 100. */
  listParkedEvents(options?: { limit?: number }): Promise<ParkedEvent[]>;
  /**
   * Returns parked events to the queue once their cause is fixed (e.g. the topic's size limit
   * raised): all of them, or those of `eventIds`. Resolves to how many were unparked.
   */
  unparkEvents(options?: { eventIds?: readonly string[] }): Promise<number>;
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
  /** Backlog, parked count and oldest age per topic, each lane's owner and epoch, the live relays. */
  outboxTopology(): Promise<OutboxTopology>;
  /** Cumulative rows published (ledger) and consumed (inbox), from table statistics; diff two reads for a rate. */
  flowCounters(): Promise<{ published: number; consumed: number }>;
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
    outboxStatus: () => checked(readOutboxStatus(pool, { schema })),
    listParkedEvents: async (listOptions = {}) =>
      checked(listParkedEvents(pool, { schema, limit: limitOf('listParkedEvents', listOptions.limit) })),
    unparkEvents: (unparkOptions = {}) =>
      checked(unparkEvents(pool, { schema, eventIds: unparkOptions.eventIds })),
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
    outboxTopology: () => checked(readOutboxTopology(pool, { schema })),
    flowCounters: () => checked(readFlowCounters(pool, { schema })),
  };
}
