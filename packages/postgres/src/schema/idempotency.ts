import { sql } from 'drizzle-orm';
import {
  customType,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';
import { defaultSchemaName, validateIdentifier } from '../identifier';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * drizzle definition of the idempotency key table in `schemaName` (default `onceflow`), matching
 * migration 0003. The migration is the source of truth; this is for typed queries and tooling.
 */
export function idempotencyTables(schemaName: string = defaultSchemaName) {
  const schema = pgSchema(validateIdentifier(schemaName));
  const idempotencyKeys = schema.table(
    'idempotency_keys',
    {
      requestId: uuid('request_id').notNull(),
      scope: text('scope').notNull(),
      key: text('key').notNull(),
      fingerprint: bytea('fingerprint').notNull(),
      route: text('route').notNull(),
      state: text('state', { enum: ['in_progress', 'completed'] }).notNull(),
      recoveryPoint: text('recovery_point').notNull(),
      phaseData: jsonb('phase_data'),
      request: jsonb('request'),
      requestBody: bytea('request_body'),
      responseStatus: integer('response_status'),
      responseHeaders: jsonb('response_headers').$type<Record<string, string>>(),
      responseBody: bytea('response_body'),
      leaseToken: uuid('lease_token'),
      lockedUntil: timestamp('locked_until', { withTimezone: true }),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
      updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
      expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    },
    (table) => [
      primaryKey({ name: 'idempotency_keys_pkey', columns: [table.scope, table.key] }),
      index('idempotency_keys_expires_idx').on(table.expiresAt).where(sql`state = 'completed'`),
      index('idempotency_keys_unfinished_idx').on(table.lockedUntil).where(sql`state = 'in_progress'`),
    ],
  );
  return { idempotencyKeys };
}
