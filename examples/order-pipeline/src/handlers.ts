import { randomUUID } from 'node:crypto';
import { type InboundMessage, valueAsJson } from '@onceflow/core';
import type { TransactionContext } from '@onceflow/postgres';
import { eq, inArray, sql } from 'drizzle-orm';
import type { ConsumerName, PipelineConfig } from './config';
import { type OrderPlaced, type OrderShipped, type PaymentCaptured, poisonCustomer } from './events';
import { appTables } from './schema';

/** A pipeline step: runs inside the transaction that onceflow commits (or rolls back) around it. */
export type PipelineHandler = (message: InboundMessage, tx: TransactionContext) => Promise<void>;

/** Thrown by the simulated payment provider for the poison order, on every attempt while its card is declined. */
export class ChargeRefusedError extends Error {
  override name = 'ChargeRefusedError';
}

/**
 * Payments: captures the payment of a placed order. The "foreign" charge is simulated by a ledger row,
 * so that a charge made twice would be visible; the payment row, the charge and the `payment.captured`
 * event commit together with the inbox row, so they happen once per order.
 */
export function paymentsHandler(config: PipelineConfig): PipelineHandler {
  const t = appTables(config.appSchema);
  return async (message, tx) => {
    const order = valueAsJson<OrderPlaced>(message);
    if (!order) throw new Error('order.placed without a value');
    if (
      order.customer === poisonCustomer &&
      (await tx.db.select().from(t.declinedCards).where(eq(t.declinedCards.customer, order.customer)))
        .length > 0
    )
      throw new ChargeRefusedError(`payment provider refused the charge of order ${order.orderId}`);
    const providerChargeId = `ch_${randomUUID().replaceAll('-', '')}`;
    await tx.db.insert(t.payments).values({ orderId: order.orderId, amountCents: order.amountCents });
    await tx.db
      .insert(t.ledger)
      .values({ orderId: order.orderId, providerChargeId, amountCents: order.amountCents });
    const captured: PaymentCaptured = {
      orderId: order.orderId,
      sku: order.sku,
      quantity: order.quantity,
      amountCents: order.amountCents,
      providerChargeId,
    };
    await tx.outbox.enqueue({ topic: config.topics.paymentCaptured, key: order.orderId, value: captured });
  };
}

/**
 * Fulfilment: reserves stock by decrementing the inventory row, which is not idempotent on purpose
 * (running it twice takes the stock twice), records the shipment and enqueues `order.shipped`.
 */
export function fulfilmentHandler(config: PipelineConfig): PipelineHandler {
  const t = appTables(config.appSchema);
  return async (message, tx) => {
    const payment = valueAsJson<PaymentCaptured>(message);
    if (!payment) throw new Error('payment.captured without a value');
    await tx.db
      .update(t.inventory)
      .set({ stock: sql`${t.inventory.stock} - ${payment.quantity}` })
      .where(sql`${t.inventory.sku} = ${payment.sku}`);
    await tx.db
      .insert(t.shipments)
      .values({ orderId: payment.orderId, sku: payment.sku, quantity: payment.quantity });
    const shipped: OrderShipped = {
      orderId: payment.orderId,
      sku: payment.sku,
      quantity: payment.quantity,
    };
    await tx.outbox.enqueue({ topic: config.topics.orderShipped, key: payment.orderId, value: shipped });
  };
}

/** A pipeline step over the new messages of one transaction. */
export type PipelineBatchHandler = (
  messages: readonly InboundMessage[],
  tx: TransactionContext,
) => Promise<void>;

/**
 * Fulfilment over a batch, the way the fulfilment consumer runs it: the inventory rows the batch
 * needs are locked first, in sku order, then each message is handled as by {@link fulfilmentHandler}.
 * The few inventory rows are hot: partitions processed concurrently that updated them in message order
 * would each hold some and wait for the others, a deadlock Postgres breaks only after
 * `deadlock_timeout` (1 s by default) by rolling one transaction back. Locking in one stable order
 * makes them queue instead.
 */
export function fulfilmentBatchHandler(config: PipelineConfig): PipelineBatchHandler {
  const t = appTables(config.appSchema);
  const each = fulfilmentHandler(config);
  return async (messages, tx) => {
    const skus = [
      ...new Set(
        messages
          .map((message) => valueAsJson<PaymentCaptured>(message)?.sku)
          .filter((sku) => sku !== undefined),
      ),
    ].sort();
    if (skus.length > 0)
      await tx.db
        .select({ sku: t.inventory.sku })
        .from(t.inventory)
        .where(inArray(t.inventory.sku, skus))
        .orderBy(t.inventory.sku)
        .for('update');
    for (const message of messages) await each(message, tx);
  };
}

/** Notifications: records one notification per shipped order. */
export function notificationsHandler(config: PipelineConfig): PipelineHandler {
  const t = appTables(config.appSchema);
  return async (message, tx) => {
    const shipped = valueAsJson<OrderShipped>(message);
    if (!shipped) throw new Error('order.shipped without a value');
    await tx.db.insert(t.notifications).values({ orderId: shipped.orderId, channel: 'email' });
  };
}

/** The handler of each consumer. */
export const pipelineHandlers: Record<ConsumerName, (config: PipelineConfig) => PipelineHandler> = {
  payments: paymentsHandler,
  fulfilment: fulfilmentHandler,
  notifications: notificationsHandler,
};
