import type { IdempotencyEngineOptions } from '@onceflow/http';
import { idempotency, idempotent } from '@onceflow/http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Pool } from 'pg';

/** Counters of handler executions, so tests can tell "ran" from "replayed". */
export interface Executions {
  charges: number;
  refunds: number;
  flaky: number;
}

/**
 * A small charges API guarded by onceflow: the handler writes one business row and one outbox
 * event in the key's transaction.
 */
export async function startChargesApp(
  pool: Pool,
  schema: string,
  options: Partial<IdempotencyEngineOptions> & { failFirstFlaky?: 'throw' | '503' } = {},
): Promise<{ app: FastifyInstance; url: string; executions: Executions }> {
  await pool.query(
    `CREATE TABLE IF NOT EXISTS "${schema}".charges (id serial PRIMARY KEY, tenant text NOT NULL, amount integer NOT NULL)`,
  );
  const executions: Executions = { charges: 0, refunds: 0, flaky: 0 };
  const { failFirstFlaky, ...engineOptions } = options;
  const app = Fastify({ logger: false });
  await app.register(idempotency, {
    pool,
    schema,
    scope: (req) => req.headers['x-tenant'] as string | undefined,
    completer: false,
    reaper: false,
    onError: () => undefined,
    ...engineOptions,
  });

  const charge = idempotent<{ amount: number }>(async (req, { client, outbox }) => {
    executions.charges++;
    if (typeof req.body?.amount !== 'number' || req.body.amount <= 0)
      return { status: 400, body: { error: 'amount must be positive' } };
    const { rows } = await client.query<{ id: number }>(
      `INSERT INTO "${schema}".charges (tenant, amount) VALUES ($1, $2) RETURNING id`,
      [req.scope, req.body.amount],
    );
    const created = { id: rows[0]!.id, amount: req.body.amount, note: 'ünïcode ✓' };
    await outbox.enqueue({ topic: 'charges', key: String(created.id), value: created });
    return { status: 201, headers: { location: `/charges/${created.id}` }, body: created };
  });
  app.post('/charges', { config: { idempotency: { required: true } } }, charge);
  app.post(
    '/refunds',
    { config: { idempotency: { required: true } } },
    idempotent(async () => {
      executions.refunds++;
      return { status: 201, body: { refunded: true } };
    }),
  );
  app.post(
    '/flaky',
    { config: { idempotency: { required: true } } },
    idempotent(async (_req, { client, outbox }) => {
      executions.flaky++;
      await client.query(`INSERT INTO "${schema}".charges (tenant, amount) VALUES ('flaky', 1)`);
      await outbox.enqueue({ topic: 'charges', value: { flaky: true } });
      if (executions.flaky === 1 && failFirstFlaky === 'throw')
        throw new Error('secret-internal-detail: connection string postgres://admin:hunter2@db');
      if (executions.flaky === 1 && failFirstFlaky === '503')
        return { status: 503, body: { error: 'try later' } };
      return { status: 200, body: { ok: true, attempt: executions.flaky } };
    }),
  );
  app.post(
    '/optional',
    idempotent(async () => ({ status: 200, body: { ran: true } })),
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, executions };
}
