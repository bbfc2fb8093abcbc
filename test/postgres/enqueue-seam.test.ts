// The trace-context seam at enqueue: a subscriber of the `onceflow:outbox:enqueue` diagnostics channel
// (what a tracing package does) adds headers that travel with the event, without any engine option.
import diagnosticsChannel from 'node:diagnostics_channel';
import { isOnceflowError, type OutboxEnqueueMessage, outboxEnqueueChannel } from '@onceflow/core';
import { enqueue, runInTransaction } from '@onceflow/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function storedHeaders(eventId: string): Promise<Record<string, string>> {
  const { rows } = await db.pool.query<{ header_names: string[]; header_values: Buffer[] }>(
    `SELECT header_names, header_values FROM "${db.schema}".outbox WHERE event_id = $1`,
    [eventId],
  );
  const row = rows[0]!;
  return Object.fromEntries(
    row.header_names.map((name, i) => [name, row.header_values[i]!.toString('utf8')]),
  );
}

describe('enqueue diagnostics channel', () => {
  it("a subscriber's headers are stored with the event; message-id stays onceflow's; without one nothing is added", async () => {
    const seen: OutboxEnqueueMessage[] = [];
    const subscriber = (message: unknown): void => {
      const enqueued = message as OutboxEnqueueMessage;
      seen.push(enqueued);
      enqueued.headers.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      enqueued.headers['message-id'] = 'hijacked';
    };
    diagnosticsChannel.subscribe(outboxEnqueueChannel, subscriber);
    let traced: string;
    try {
      traced = await runInTransaction(db.pool, (client) =>
        enqueue(
          client,
          { topic: 'orders', value: { n: 1 }, headers: { tenant: 'acme' } },
          { schema: db.schema },
        ),
      );
    } finally {
      diagnosticsChannel.unsubscribe(outboxEnqueueChannel, subscriber);
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]!.schema).toBe(db.schema);
    expect(seen[0]!.event.topic).toBe('orders');
    expect(await storedHeaders(traced)).toEqual({
      tenant: 'acme',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });

    const plain = await runInTransaction(db.pool, (client) =>
      enqueue(
        client,
        { topic: 'orders', value: { n: 2 }, headers: { tenant: 'acme' } },
        { schema: db.schema },
      ),
    );
    expect(await storedHeaders(plain)).toEqual({ tenant: 'acme' });
  });

  it('an event that can never be published is refused with OF_INVALID_EVENT, before anything is written', async () => {
    for (const event of [
      { topic: '', value: 1 },
      { topic: 'x'.repeat(250), value: 1 },
      { topic: 't', value: 1, key: 42 },
    ]) {
      const error = await runInTransaction(db.pool, (client) =>
        enqueue(client, event as never, { schema: db.schema }),
      ).catch((caught: unknown) => caught);
      expect(isOnceflowError(error, 'OF_INVALID_EVENT'), JSON.stringify(event).slice(0, 40)).toBe(true);
    }
  });
});

describe('enqueue inside a drizzle transaction', () => {
  it('writes the event with its headers, as through a pg client (arrays are passed as one parameter each)', async () => {
    const { drizzle } = await import('drizzle-orm/node-postgres');
    const id = await drizzle({ client: db.pool }).transaction((tx) =>
      enqueue(
        tx,
        { topic: 'orders', key: 'k', value: 'v', headers: { tenant: 'acme', region: 'eu' } },
        { schema: db.schema },
      ),
    );
    expect(await storedHeaders(id)).toEqual({ tenant: 'acme', region: 'eu' });
  });
});
