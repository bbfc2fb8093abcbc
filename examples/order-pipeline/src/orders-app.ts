import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { idempotency, idempotent } from '@onceflow/http';
import { count, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import pino, { type Logger } from 'pino';
import type { PipelineConfig } from './config';
import { type OrderPlaced, parsePlaceOrder } from './events';
import { appTables } from './schema';

/**
 * Header a client may send to slow the order's transaction down by that many milliseconds (at most
 * 2000): the demo uses it to make client timeouts happen while the first attempt is still running.
 */
export const simulatedLatencyHeader = 'x-simulated-latency-ms';

/**
 * The Orders API. `POST /orders` requires an Idempotency-Key and writes the order row and its
 * `order.placed` outbox event in the transaction that also records the key, so a retried request
 * gets the first answer replayed and never creates a second order. `GET /orders/:id` shows how far
 * the order got through the pipeline. `logger` (pino) logs the requests (warnings and above) and the
 * Idempotency-Key engine. Default: a pino logger on stdout.
 */
export async function buildOrdersApp(
  pool: Pool,
  config: PipelineConfig,
  logger?: Logger,
): Promise<FastifyInstance> {
  const tables = appTables(config.appSchema);
  const db = drizzle({ client: pool });
  const app = Fastify({
    loggerInstance: (logger ?? pino()).child({}, { level: 'warn' }) as FastifyBaseLogger,
  });

  await app.register(idempotency, {
    pool,
    schema: config.onceflowSchema,
    ...(logger ? { logger } : {}),
    // One shared scope (no authentication in the demo), so the per-principal limit must allow the whole load.
    maxKeysInFlightPerScope: 1024,
  });

  app.post(
    '/orders',
    { config: { idempotency: { required: true } } },
    idempotent(async (request, tx) => {
      const order = parsePlaceOrder(request.body);
      if (typeof order === 'string')
        return {
          status: 400,
          headers: { 'content-type': 'application/problem+json' },
          body: { title: 'Invalid order', detail: order },
          // Refused before anything was written: not stored, so a corrected retry may reuse the key.
          release: true,
        };
      const delayMs = Math.min(Number(request.headers[simulatedLatencyHeader] ?? 0) || 0, 2_000);
      if (delayMs > 0) await sleep(delayMs);
      const id = randomUUID();
      await tx.db.insert(tables.orders).values({ id, idempotencyKey: request.key ?? '', ...order });
      const event: OrderPlaced = { orderId: id, ...order };
      await tx.outbox.enqueue({ topic: config.topics.orderPlaced, key: id, value: event });
      return { status: 201, headers: { location: `/orders/${id}` }, body: { id, status: 'placed' } };
    }),
  );

  app.get<{ Params: { id: string } }>('/orders/:id', async (request, reply) => {
    const { id } = request.params;
    if (!/^[0-9a-f-]{36}$/.test(id)) return reply.code(404).send({ title: 'No such order' });
    const [order] = await db.select().from(tables.orders).where(eq(tables.orders.id, id));
    if (!order) return reply.code(404).send({ title: 'No such order' });
    const countOf = async (
      table: typeof tables.payments | typeof tables.shipments | typeof tables.notifications,
    ) => (await db.select({ n: count() }).from(table).where(eq(table.orderId, id)))[0]?.n ?? 0;
    const [payments, shipments, notifications] = await Promise.all([
      countOf(tables.payments),
      countOf(tables.shipments),
      countOf(tables.notifications),
    ]);
    const status =
      notifications > 0 ? 'notified' : shipments > 0 ? 'shipped' : payments > 0 ? 'paid' : 'placed';
    return { ...order, status, payments, shipments, notifications };
  });

  return app;
}
