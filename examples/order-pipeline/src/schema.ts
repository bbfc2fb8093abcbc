import { fileURLToPath } from 'node:url';
import { migrate } from '@onceflow/postgres';
import { bigserial, integer, pgSchema, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { Pool } from 'pg';
import type { PipelineConfig } from './config';

/** Folder of the pipeline's own SQL migrations (`NNNN_name.sql`, `{{schema}}` placeholder). */
export const appMigrationsDirectory = fileURLToPath(new URL('../migrations/', import.meta.url));

/**
 * The pipeline's tables in schema `schemaName`, for typed drizzle queries. They mirror
 * migrations/0001_order_pipeline.sql, which is what creates them.
 */
export function appTables(schemaName: string) {
  const schema = pgSchema(schemaName);
  const createdAt = () =>
    timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
  return {
    orders: schema.table('orders', {
      id: uuid('id').primaryKey(),
      idempotencyKey: text('idempotency_key').notNull(),
      customer: text('customer').notNull(),
      sku: text('sku').notNull(),
      quantity: integer('quantity').notNull(),
      amountCents: integer('amount_cents').notNull(),
      createdAt: createdAt(),
    }),
    payments: schema.table('payments', {
      id: bigserial('id', { mode: 'number' }).primaryKey(),
      orderId: uuid('order_id').notNull(),
      amountCents: integer('amount_cents').notNull(),
      createdAt: createdAt(),
    }),
    ledger: schema.table('ledger', {
      id: bigserial('id', { mode: 'number' }).primaryKey(),
      orderId: uuid('order_id').notNull(),
      providerChargeId: text('provider_charge_id').notNull(),
      amountCents: integer('amount_cents').notNull(),
      createdAt: createdAt(),
    }),
    inventory: schema.table('inventory', {
      sku: text('sku').primaryKey(),
      initialStock: integer('initial_stock').notNull(),
      stock: integer('stock').notNull(),
    }),
    shipments: schema.table('shipments', {
      id: bigserial('id', { mode: 'number' }).primaryKey(),
      orderId: uuid('order_id').notNull(),
      sku: text('sku').notNull(),
      quantity: integer('quantity').notNull(),
      createdAt: createdAt(),
    }),
    notifications: schema.table('notifications', {
      id: bigserial('id', { mode: 'number' }).primaryKey(),
      orderId: uuid('order_id').notNull(),
      channel: text('channel').notNull(),
      createdAt: createdAt(),
    }),
    /** Customers whose card the simulated provider declines (the poison order's, until the demo fixes it). */
    declinedCards: schema.table('declined_cards', {
      customer: text('customer').primaryKey(),
    }),
  };
}

/** The pipeline's drizzle tables. */
export type AppTables = ReturnType<typeof appTables>;

/** The SKUs the first migration stocks. */
export const skus = Array.from({ length: 8 }, (_, i) => `sku-${i + 1}`);

/**
 * Brings both schemas up to date with onceflow's migrator: onceflow's own tables, then the
 * pipeline's from {@link appMigrationsDirectory}. Safe to run from every process at start.
 */
export async function migratePipeline(pool: Pool, config: PipelineConfig): Promise<void> {
  await migrate(pool, { schema: config.onceflowSchema });
  await migrate(pool, { schema: config.appSchema, directory: appMigrationsDirectory });
}
