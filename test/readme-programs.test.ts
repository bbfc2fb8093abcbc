// The programs of the root README (and the node:http one of packages/http/README.md), run as written
// against the test's Kafka and Postgres: only names (schema, topics, consumer) are made unique.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createIdempotencyEngine, idempotentListener } from '@onceflow/http';
import { createInboxConsumer, createKafkajsLogCreator, createOutboxRelay } from '@onceflow/kafkajs';
import { createOnceflowAdmin, enqueue } from '@onceflow/postgres';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import { Kafka } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from './http/helpers';
import { readPublished, waitForDrain } from './outbox/helpers';
import { brokers, createTestDatabase, createTopic, type TestDatabase, uniqueName } from './support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** A pino-shaped logger that keeps what it is told. */
function keepingLogger(lines: string[]) {
  const at =
    (level: string) =>
    (first: object | string, message?: string): void => {
      lines.push(`${level} ${typeof first === 'string' ? first : (message ?? '')}`);
    };
  const logger = {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    child: () => logger,
  };
  return logger;
}

describe('README programs', () => {
  it('publish from a transaction, relay with a logger and onError, consume effectively once, inspect with the admin library', async () => {
    const schema = db.schema;
    const orderTopic = uniqueName('orders');
    const paymentTopic = uniqueName('payments');
    await createTopic(orderTopic, 2);
    await createTopic(`${orderTopic}.dlq`, 1);
    await createTopic(paymentTopic, 2);
    const s = pgSchema(schema);
    const orders = s.table('orders', { id: text('id').primaryKey(), amountCents: integer('amount_cents') });
    const payments = s.table('payments', {
      orderId: text('order_id').primaryKey(),
      amountCents: integer('amount_cents'),
    });
    await db.pool.query(
      `CREATE TABLE "${schema}".orders (id text PRIMARY KEY, amount_cents integer);
       CREATE TABLE "${schema}".payments (order_id text PRIMARY KEY, amount_cents integer)`,
    );
    const pool = db.pool;

    // "Publish from a transaction"
    const order = { id: 'o-1', amountCents: 1250 };
    await drizzle({ client: pool }).transaction(async (tx) => {
      await tx.insert(orders).values(order);
      await enqueue(
        tx,
        { topic: orderTopic, key: order.id, value: { type: 'order.placed', ...order } },
        { schema },
      );
    });

    // "One shape for every part": the relay with a logger kafkajs forwards to, and onError
    const lines: string[] = [];
    const logger = keepingLogger(lines);
    const kafka = new Kafka({ brokers: brokers(), logCreator: createKafkajsLogCreator(logger) });
    const errors: string[] = [];
    const relay = await createOutboxRelay({
      pool,
      kafka,
      schema,
      logger,
      onError: (error) => errors.push(error.code),
    }).start();

    // "Consume effectively once"
    const consumer = await createInboxConsumer({
      kafka: new Kafka({ brokers: brokers() }),
      pool: new pg.Pool({ connectionString: db.url }),
      schema,
      consumer: uniqueName('payments'),
      topics: [orderTopic],
      handler: async (message, { db: tx, outbox }) => {
        const placed = JSON.parse(message.value!.toString());
        await tx.insert(payments).values({ orderId: placed.id, amountCents: placed.amountCents });
        await outbox.enqueue({ topic: paymentTopic, key: placed.id, value: { orderId: placed.id } });
      },
    }).start();
    try {
      const published = await readPublished(paymentTopic, 1);
      expect(published.map((record) => JSON.parse(record.value))).toEqual([{ orderId: 'o-1' }]);
      await waitForDrain(db);
    } finally {
      await consumer.stop();
      await relay.stop();
    }
    const { rows } = await pool.query(`SELECT order_id, amount_cents FROM "${schema}".payments`);
    expect(rows).toEqual([{ order_id: 'o-1', amount_cents: 1250 }]);
    expect(lines).toContain('info outbox relay started');
    expect(errors).toEqual([]);

    // "Schema, the CLI and the admin library"
    const admin = createOnceflowAdmin({ pool, schema });
    const { backlog, parked } = await admin.outboxStatus();
    expect({ backlog, parked }).toEqual({ backlog: 0, parked: 0 });
    expect(await admin.listParkedEvents()).toEqual([]);
  });

  it('node:http and Express (packages/http/README.md): the engine started, the listener guards the route', async () => {
    const pool = db.pool;
    const tenantOf = (req: { headers: Record<string, unknown> }) => req.headers['x-tenant'] as string;
    const engine = createIdempotencyEngine({ pool, schema: db.schema });
    const running = await engine.start();
    const listener = idempotentListener(
      engine,
      { path: '/orders', required: true, scope: (req) => tenantOf(req) },
      async (req, { outbox }) => {
        await outbox.enqueue({ topic: 'orders', value: req.body });
        return { status: 201, body: req.body };
      },
    );
    const server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const headers = { 'idempotency-key': 'readme-node', 'x-tenant': 't' };
      const first = await postJson(url, '/orders', { item: 1 }, headers);
      const second = await postJson(url, '/orders', { item: 1 }, headers);
      expect(first.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await running.stop();
    }
  });
});
