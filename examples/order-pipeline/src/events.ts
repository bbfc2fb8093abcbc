/** Body of `POST /orders`. */
export interface PlaceOrderRequest {
  customer: string;
  sku: string;
  quantity: number;
  amountCents: number;
}

/** Value of an `order.placed` event. */
export interface OrderPlaced {
  orderId: string;
  customer: string;
  sku: string;
  quantity: number;
  amountCents: number;
}

/** Value of a `payment.captured` event. */
export interface PaymentCaptured {
  orderId: string;
  sku: string;
  quantity: number;
  amountCents: number;
  providerChargeId: string;
}

/** Value of an `order.shipped` event. */
export interface OrderShipped {
  orderId: string;
  sku: string;
  quantity: number;
}

/**
 * Customer name that makes the simulated payment provider refuse the charge every time while the
 * customer is in the `declined_cards` table: the poison order that the payments consumer must
 * dead-letter instead of retrying forever, and that the demo redrives once the card is fixed.
 */
export const poisonCustomer = 'poison-pill';

/** Parses and checks a `POST /orders` body; returns a problem description instead of throwing. */
export function parsePlaceOrder(body: unknown): PlaceOrderRequest | string {
  if (body === null || typeof body !== 'object') return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.customer !== 'string' || b.customer.length === 0 || b.customer.length > 100)
    return 'customer must be a string of 1-100 characters';
  if (typeof b.sku !== 'string' || !/^sku-\d+$/.test(b.sku)) return 'sku must look like sku-<n>';
  if (typeof b.quantity !== 'number' || !Number.isInteger(b.quantity) || b.quantity < 1 || b.quantity > 100)
    return 'quantity must be an integer between 1 and 100';
  if (typeof b.amountCents !== 'number' || !Number.isInteger(b.amountCents) || b.amountCents < 0)
    return 'amountCents must be a non-negative integer';
  return { customer: b.customer, sku: b.sku, quantity: b.quantity, amountCents: b.amountCents };
}
