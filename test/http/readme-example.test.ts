// The README's ten-line program, run as written (with a test schema and a loopback port).
import { idempotency, idempotent } from '@onceflow/http';
import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { createTestDatabase } from '../support';
import { postJson } from './helpers';

it('the README example guards POST /charges: one row, one outbox event, replayed response', async () => {
  await using db = await createTestDatabase();
  const pool = db.pool;
  await pool.query(`CREATE TABLE "${db.schema}".charges (id serial PRIMARY KEY, amount integer NOT NULL)`);
  const app = Fastify();
  await app.register(idempotency, {
    pool,
    schema: db.schema,
    scope: (req) => req.headers['x-tenant'] as string,
  });
  app.post(
    '/charges',
    { config: { idempotency: { required: true } } },
    idempotent<{ amount: number }>(async (req, { client, outbox }) => {
      const { rows } = await client.query(
        `INSERT INTO "${db.schema}".charges (amount) VALUES ($1) RETURNING *`,
        [req.body.amount],
      );
      await outbox.enqueue({ topic: 'charges', key: String(rows[0].id), value: rows[0] });
      return { status: 201, body: rows[0] };
    }),
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const headers = { 'idempotency-key': 'readme-1', 'x-tenant': 't' };
    const first = await postJson(url, '/charges', { amount: 42 }, headers);
    const second = await postJson(url, '/charges', { amount: 42 }, headers);
    expect(first.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.equals(first.body)).toBe(true);
    const { rows } = await pool.query(
      `SELECT (SELECT count(*) FROM "${db.schema}".charges)::int AS charges, (SELECT count(*) FROM "${db.schema}".outbox)::int AS outbox`,
    );
    expect(rows[0]).toEqual({ charges: 1, outbox: 1 });
  } finally {
    await app.close();
  }
});
