import {
  bigint,
  customType,
  integer,
  pgSchema,
  primaryKey,
  smallint,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';
import { defaultSchemaName, validateIdentifier } from '../identifier';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });
const byteaArray = customType<{ data: Buffer[]; driverData: Buffer[] }>({ dataType: () => 'bytea[]' });

/**
 * drizzle definitions of the outbox tables in `schema` (default `onceflow`), for typed reads such as
 * dashboards. The SQL migrations are the source of truth; these mirror them.
 */
export function outboxTables(schema: string = defaultSchemaName) {
  const s = pgSchema(validateIdentifier(schema));
  const outbox = s.table(
    'outbox',
    {
      seq: bigint('seq', { mode: 'bigint' }).notNull(),
      eventId: text('event_id').notNull(),
      lane: smallint('lane').notNull(),
      topic: text('topic').notNull(),
      key: bytea('key'),
      value: bytea('value'),
      headerNames: text('header_names').array().notNull().default([]),
      headerValues: byteaArray('header_values').notNull(),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
      attempts: integer('attempts').notNull().default(0),
      lastError: text('last_error'),
      parkedAt: timestamp('parked_at', { withTimezone: true }),
    },
    (table) => [primaryKey({ columns: [table.lane, table.seq] })],
  );
  const outboxLanes = s.table('outbox_lanes', {
    lane: smallint('lane').primaryKey(),
    owner: text('owner'),
    epoch: bigint('epoch', { mode: 'number' }).notNull().default(0),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    fencingId: text('fencing_id'),
  });
  const outboxRelays = s.table('outbox_relays', {
    relayId: text('relay_id').primaryKey(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  });
  return { outbox, outboxLanes, outboxRelays };
}

/** The tables {@link outboxTables} returns. */
export type OutboxTables = ReturnType<typeof outboxTables>;
