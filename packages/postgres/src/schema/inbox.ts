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

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

import { defaultSchemaName, validateIdentifier } from '../identifier';

/**
 * drizzle definitions of the inbox tables in `schema`, for queries and tooling. The tables are
 * created by migrations/0001_inbox.sql (partitioning and functions are SQL-only).
 */
export function inboxTables(schema: string = defaultSchemaName) {
  const s = pgSchema(validateIdentifier(schema));
  return {
    /** Processed message ids per consumer, partitioned by generation slot. */
    inbox: s.table(
      'inbox',
      {
        consumer: text('consumer').notNull(),
        messageId: text('message_id').notNull(),
        slot: smallint('slot').notNull(),
        generation: bigint('generation', { mode: 'bigint' }).notNull(),
        topic: text('topic').notNull(),
        kafkaPartition: integer('kafka_partition').notNull(),
        kafkaOffset: bigint('kafka_offset', { mode: 'bigint' }).notNull(),
        processedAt: timestamp('processed_at', { withTimezone: true }).notNull().defaultNow(),
      },
      (t) => [primaryKey({ columns: [t.consumer, t.messageId, t.slot] })],
    ),
    /** Next offset to process per consumer and partition. */
    inboxPosition: s.table(
      'inbox_position',
      {
        consumer: text('consumer').notNull(),
        topic: text('topic').notNull(),
        kafkaPartition: integer('kafka_partition').notNull(),
        nextOffset: bigint('next_offset', { mode: 'bigint' }).notNull(),
        updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
      },
      (t) => [primaryKey({ columns: [t.consumer, t.topic, t.kafkaPartition] })],
    ),
    /** Generations of the inbox ring; the highest is written. */
    inboxGeneration: s.table('inbox_generation', {
      generation: bigint('generation', { mode: 'bigint' }).primaryKey(),
      startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    }),
    /** Retention window declared by each consumer. */
    inboxRetention: s.table('inbox_retention', {
      consumer: text('consumer').primaryKey(),
      retentionSeconds: integer('retention_seconds').notNull(),
      declaredAt: timestamp('declared_at', { withTimezone: true }).notNull().defaultNow(),
    }),
    /** Dead letters with their payload and redrive state (migrations/0005_dead_letters.sql). */
    deadLetter: s.table(
      'dead_letter',
      {
        consumer: text('consumer').notNull(),
        messageId: text('message_id').notNull(),
        topic: text('topic').notNull(),
        kafkaPartition: integer('kafka_partition').notNull(),
        kafkaOffset: bigint('kafka_offset', { mode: 'bigint' }).notNull(),
        key: bytea('key'),
        payload: bytea('payload'),
        headerNames: text('header_names').array().notNull().default([]),
        headerValues: bytea('header_values').array().notNull().default([]),
        reason: text('reason').notNull(),
        errorCode: text('error_code').notNull(),
        errorMessage: text('error_message').notNull(),
        attempts: integer('attempts').notNull(),
        deadLetteredAt: timestamp('dead_lettered_at', { withTimezone: true }).notNull().defaultNow(),
        state: text('state', { enum: ['dead', 'redrive_requested', 'redriven'] })
          .notNull()
          .default('dead'),
        redriveToken: text('redrive_token'),
        redriveRequestedAt: timestamp('redrive_requested_at', { withTimezone: true }),
        redrivenAt: timestamp('redriven_at', { withTimezone: true }),
        redrives: integer('redrives').notNull().default(0),
      },
      (t) => [primaryKey({ columns: [t.consumer, t.messageId] })],
    ),
  };
}

/** The tables returned by {@link inboxTables}. */
export type InboxTables = ReturnType<typeof inboxTables>;
