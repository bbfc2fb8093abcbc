import { type ConsoleAuditEntry, createConsole } from '@onceflow/console';
import { createOnceflowAdmin, enqueue } from '@onceflow/postgres';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support';

describe('the console mounted in an application', () => {
  it('serves under the prefix, takes who acts from the auth hook, and audits a confirmed unpark', async () => {
    await using db = await createTestDatabase({ poolSize: 2 });
    await enqueue(db.pool, { topic: 'orders', key: 'k', value: 'v', id: 'evt-1' }, { schema: db.schema });
    await db.pool.query(
      `UPDATE "${db.schema}".outbox SET parked_at = now(), last_error = 'refused' WHERE event_id = 'evt-1'`,
    );
    const audit: ConsoleAuditEntry[] = [];
    const app = Fastify();
    await app.register(
      createConsole({
        pool: db.pool,
        schema: db.schema,
        authenticate: (request) => (request.headers['x-user'] === 'ada' ? 'ada@example.com' : null),
        auditLog: (entry) => {
          audit.push(entry);
        },
      }),
      { prefix: '/ops' },
    );
    try {
      const page = await app.inject({ url: '/ops/parked', headers: { 'x-user': 'ada' } });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('href="/ops/assets/console.css"');
      expect(page.body).toContain('signed in as <strong>ada@example.com</strong>');
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
      const post = (body: string, user = 'ada') =>
        app.inject({
          method: 'POST',
          url: '/ops/parked/unpark',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-user': user },
          payload: body,
        });
      expect((await post(`id=evt-1&confirm=yes&_csrf=${encodeURIComponent(csrf)}`, 'eve')).statusCode).toBe(
        401,
      );
      expect((await post('id=evt-1&confirm=yes&_csrf=wrong')).statusCode).toBe(403);
      const confirm = await post(`id=evt-1&_csrf=${encodeURIComponent(csrf)}`);
      expect(confirm.body).toContain('Unpark 1 event?');
      expect(audit).toEqual([]);
      const done = await post(`id=evt-1&confirm=yes&_csrf=${encodeURIComponent(csrf)}`);
      expect(done.body).toContain('1 event unparked');
      expect(audit).toEqual([
        expect.objectContaining({ who: 'ada@example.com', action: 'unpark', ids: ['evt-1'], done: 1 }),
      ]);
      expect(await createOnceflowAdmin({ pool: db.pool, schema: db.schema }).listParkedEvents()).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('read-only refuses every write, whoever asks', async () => {
    await using db = await createTestDatabase({ poolSize: 2 });
    const app = Fastify();
    await app.register(
      createConsole({ pool: db.pool, schema: db.schema, readOnly: true, authenticate: () => 'ada' }),
    );
    try {
      const response = await app.inject({
        method: 'POST',
        url: '/parked/unpark',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'id=evt-1&confirm=yes',
      });
      expect(response.statusCode).toBe(403);
      expect(response.body).toContain('read-only');
    } finally {
      await app.close();
    }
  });
});
