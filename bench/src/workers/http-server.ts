import { randomUUID } from 'node:crypto';
import { idempotency, idempotent } from '@onceflow/http';
import { enqueue, runInTransaction } from '@onceflow/postgres';
import Fastify from 'fastify';
import { benchPool, type SyncCommit } from '../shared';
import { announceReady, finishWith, terminated, type WorkerParams, workerParams } from './protocol';

/** Parameters of the HTTP server worker. */
export interface HttpServerParams extends WorkerParams {
  syncCommit: SyncCommit;
  topic: string;
}

interface OrderBody {
  sku: string;
  quantity: number;
}

/**
 * A loopback Fastify server with two routes doing the same work (one order row and one outbox
 * event in one transaction): `/plain` without idempotency, `/orders` guarded by onceflow's
 * Idempotency-Key plugin (key required). The event is keyed by the new order's id, as an order
 * API keys the events of one order: with one key for every request (the body's sku), every request
 * of either route queued on that key's enqueue lock, and the figures measured the queue instead of
 * the route.
 */
export async function httpServer(): Promise<void> {
  const p = workerParams<HttpServerParams>();
  const pool = benchPool(p, p.syncCommit, 10);
  const app = Fastify({ logger: false });
  const insertOrder = `INSERT INTO "${p.schema}".orders (id, sku, quantity) VALUES ($1, $2, $3)`;
  const counts = { plain: 0, idempotent: 0 };

  app.post<{ Body: OrderBody }>('/plain', async (request, reply) => {
    const id = randomUUID();
    await runInTransaction(pool, async (client) => {
      await client.query(insertOrder, [id, request.body.sku, request.body.quantity]);
      await enqueue(
        client,
        { topic: p.topic, key: id, value: { id, ...request.body } },
        { schema: p.schema },
      );
    });
    counts.plain++;
    return reply.code(201).send({ id, status: 'created' });
  });

  await app.register(idempotency, { pool, schema: p.schema, completer: false, reaper: false });
  app.post(
    '/orders',
    { config: { idempotency: { required: true } } },
    idempotent<OrderBody>(async (request, context) => {
      const id = randomUUID();
      await context.client.query(insertOrder, [id, request.body.sku, request.body.quantity]);
      await context.outbox.enqueue({ topic: p.topic, key: id, value: { id, ...request.body } });
      counts.idempotent++;
      return { status: 201, body: { id, status: 'created' } };
    }),
  );

  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  announceReady({ url: address });
  await terminated();
  await app.close();
  await pool.end();
  finishWith({ handlerRuns: counts });
}
