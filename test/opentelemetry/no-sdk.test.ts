// @onceflow/opentelemetry turned on in a process without an OpenTelemetry SDK (no tracer provider,
// context manager or propagator registered): requests, the relay and the inbox work as without it,
// and events carry no trace headers.
import { idempotency, idempotent } from '@onceflow/http';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { instrumentOnceflow } from '@onceflow/opentelemetry';
import { context, propagation, trace } from '@opentelemetry/api';
import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { postJson } from '../http/helpers';
import { startConsumer } from '../inbox/helpers';
import { eventually } from '../outbox/helpers';
import { createTestDatabase, createTopic, readTopic, testKafka, uniqueName } from '../support';

it('without an SDK nothing breaks and no trace headers are added', async () => {
  trace.disable();
  context.disable();
  propagation.disable();
  using _instrumentation = instrumentOnceflow();
  await using db = await createTestDatabase();
  const topic = uniqueName('orders');
  await createTopic(topic, 1);
  const app = Fastify();
  await app.register(idempotency, {
    pool: db.pool,
    schema: db.schema,
    scope: (req) => req.headers['x-tenant'] as string,
  });
  app.post(
    '/orders',
    { config: { idempotency: { required: true } } },
    idempotent<{ id: string }>(async (req, { outbox }) => {
      await outbox.enqueue({ topic, key: req.body.id, value: req.body });
      return { status: 201, body: { id: req.body.id } };
    }),
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const relay = await createOutboxRelay({
    pool: db.pool,
    kafka: testKafka(),
    schema: db.schema,
    pollIntervalMs: 200,
  }).start();
  const handled: Array<{ headers: string[]; recording: boolean | undefined }> = [];
  let failures = 0;
  const consumer = await startConsumer(db, {
    consumer: uniqueName('shipping'),
    topics: [topic],
    handler: async (message) => {
      // A failure goes through the tracing wrapper to the engine, which retries.
      if (failures++ === 0) throw new Error('first attempt fails');
      handled.push({
        headers: Object.keys(message.headers),
        recording: trace.getActiveSpan()?.isRecording(),
      });
    },
  });
  try {
    const headers = {
      'idempotency-key': 'k-1',
      'x-tenant': 't',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    };
    const first = await postJson(url, '/orders', { id: 'o-1' }, headers);
    const second = await postJson(url, '/orders', { id: 'o-1' }, headers);
    expect(first.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    await eventually(() => handled.length === 1, 'the message handled');
  } finally {
    await consumer.stop();
    await relay.stop();
    await app.close();
  }
  expect(failures).toBe(2);
  expect(handled).toEqual([{ headers: ['message-id'], recording: undefined }]);
  const records = await readTopic(topic, { minMessages: 1 });
  expect(records.map((record) => Object.keys(record.headers))).toEqual([['message-id']]);
});
