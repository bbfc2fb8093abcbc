// One trace from an HTTP request to its effect in a consumer: the client's span, the Idempotency-Key
// request (key claimed), the event's creation in the request's transaction, the relay's send to the
// real Kafka and the inbox handler with a span of its own, all in one trace with the right parents.
// Spans are kept by an in-memory exporter of the OpenTelemetry SDK.
import { idempotency, idempotent } from '@onceflow/http';
import { createOutboxRelay } from '@onceflow/kafkajs';
import { instrumentOnceflow, type OnceflowInstrumentation } from '@onceflow/opentelemetry';
import { enqueue } from '@onceflow/postgres';
import { type Context, context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from '../http/helpers';
import { startConsumer } from '../inbox/helpers';
import { eventually } from '../outbox/helpers';
import {
  createTestDatabase,
  createTopic,
  readTopic,
  type TestDatabase,
  testKafka,
  uniqueName,
} from '../support';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const appTracer = provider.getTracer('order-app');

let db: TestDatabase;
let instrumentation: OnceflowInstrumentation;
let app: FastifyInstance;
let url: string;
let topic: string;

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  instrumentation = instrumentOnceflow({ tracerProvider: provider });
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE "${db.schema}".shipments (order_id text PRIMARY KEY)`);
  topic = uniqueName('orders');
  await createTopic(topic, 2);
  app = Fastify();
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
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
  instrumentation?.stop();
  context.disable();
  propagation.disable();
});

/** POSTs an order under a client span of its own, its context sent as `traceparent`. */
async function postOrder(id: string, key: string) {
  const span = appTracer.startSpan('client POST /orders', { kind: SpanKind.CLIENT });
  const headers: Record<string, string> = { 'idempotency-key': key, 'x-tenant': 'tenant-1' };
  propagation.inject(trace.setSpan(context.active(), span), headers);
  try {
    return { response: await postJson(url, '/orders', { id }, headers), traceId: span.spanContext().traceId };
  } finally {
    span.end();
  }
}

const spanId = (span: ReadableSpan) => span.spanContext().spanId;
const ms = (span: ReadableSpan) => span.duration[0] * 1e3 + span.duration[1] / 1e6;

/** The spans of one trace as an indented tree: name, kind, duration, the parent's name. */
function printTrace(spans: readonly ReadableSpan[]): string {
  const byId = new Map(spans.map((span) => [spanId(span), span]));
  const parentOf = (span: ReadableSpan) =>
    span.parentSpanContext === undefined ? undefined : byId.get(span.parentSpanContext.spanId);
  const lines: string[] = [];
  const visit = (parent: ReadableSpan | undefined, depth: number): void => {
    const children = spans
      .filter((span) => parentOf(span) === parent)
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
    for (const span of children) {
      lines.push(
        `${'  '.repeat(depth)}${span.name} [${SpanKind[span.kind]}] ${ms(span).toFixed(1)} ms` +
          ` (parent: ${parent ? parent.name : 'none'})`,
      );
      visit(span, depth + 1);
    }
  };
  visit(undefined, 0);
  return lines.join('\n');
}

describe('tracing with @onceflow/opentelemetry', () => {
  it('one trace from the HTTP request through the outbox, Kafka and the inbox handler to its effect', async () => {
    const relay = await createOutboxRelay({
      pool: db.pool,
      kafka: testKafka(),
      schema: db.schema,
      pollIntervalMs: 200,
    }).start();
    const consumer = await startConsumer(db, {
      consumer: uniqueName('shipping'),
      topics: [topic],
      handler: async (message, { client }) => {
        const order = JSON.parse(message.value!.toString('utf8')) as { id: string };
        await appTracer.startActiveSpan('ship order', async (span) => {
          await client.query(`INSERT INTO "${db.schema}".shipments (order_id) VALUES ($1)`, [order.id]);
          span.end();
        });
      },
    });
    let traceId: string;
    try {
      const sent = await postOrder('o-1', 'key-1');
      expect(sent.response.status).toBe(201);
      traceId = sent.traceId;
      await eventually(
        () => exporter.getFinishedSpans().some((span) => span.name === `process ${topic}`),
        'the consumer span',
      );
    } finally {
      await consumer.stop();
      await relay.stop();
    }
    const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    console.log(`one trace, ${spans.length} spans:\n${printTrace(spans)}`);
    const named = (name: string): ReadableSpan => {
      const found = spans.filter((span) => span.name === name);
      expect(
        found.map((span) => span.name),
        `one span named ${name}`,
      ).toEqual([name]);
      return found[0]!;
    };
    const client = named('client POST /orders');
    const request = named('idempotency POST /orders');
    const create = named(`create ${topic}`);
    const send = named(`send ${topic}`);
    const process = named(`process ${topic}`);
    const effect = named('ship order');
    expect(spans).toHaveLength(6);
    const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
    expect(parentOf(client)).toBeUndefined();
    expect(parentOf(request)).toBe(spanId(client));
    expect(parentOf(create)).toBe(spanId(request));
    expect(parentOf(send)).toBe(spanId(create));
    expect(parentOf(process)).toBe(spanId(create));
    expect(parentOf(effect)).toBe(spanId(process));
    expect(request.kind).toBe(SpanKind.SERVER);
    expect(request.attributes).toMatchObject({
      'onceflow.idempotency.scope': 'tenant-1',
      'onceflow.idempotency.key': 'key-1',
      'onceflow.idempotency.outcome': 'claimed',
      'http.response.status_code': 201,
      'http.request.method': 'POST',
    });
    expect([create.kind, send.kind, process.kind]).toEqual([
      SpanKind.PRODUCER,
      SpanKind.PRODUCER,
      SpanKind.CONSUMER,
    ]);
    const [record] = await readTopic(topic, { minMessages: 1 });
    const messageId = record!.headers['message-id']!.toString();
    // The relay sent the creation context, stored with the event, as Kafka headers.
    expect(record!.headers.traceparent?.toString()).toBe(`00-${traceId}-${spanId(create)}-01`);
    for (const span of [create, send])
      expect(span.attributes).toMatchObject({
        'messaging.system': 'kafka',
        'messaging.destination.name': topic,
        'messaging.kafka.message.key': 'o-1',
        'messaging.message.id': messageId,
      });
    expect(process.attributes).toMatchObject({
      'messaging.system': 'kafka',
      'messaging.operation.name': 'process',
      'messaging.destination.name': topic,
      'messaging.destination.partition.id': String(record!.partition),
      'messaging.kafka.offset': Number(record!.offset),
      'messaging.kafka.message.key': 'o-1',
      'messaging.message.id': messageId,
    });
    // The handler's effect committed, once.
    const { rows } = await db.pool.query(`SELECT order_id FROM "${db.schema}".shipments`);
    expect(rows).toEqual([{ order_id: 'o-1' }]);
  });

  it("a replayed request's span says replayed, and no event is created", async () => {
    await postOrder('o-2', 'key-2');
    exporter.reset();
    const again = await postOrder('o-2', 'key-2');
    expect(again.response.headers['idempotent-replayed']).toBe('true');
    const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === again.traceId);
    expect(spans.map((span) => span.name).sort()).toEqual([
      'client POST /orders',
      'idempotency POST /orders',
    ]);
    expect(spans.find((span) => span.name === 'idempotency POST /orders')!.attributes).toMatchObject({
      'onceflow.idempotency.outcome': 'replayed',
      'http.response.status_code': 201,
    });
    // The same key for another body is refused 422: a conflict.
    exporter.reset();
    const reused = await postJson(
      url,
      '/orders',
      { id: 'other' },
      { 'idempotency-key': 'key-2', 'x-tenant': 'tenant-1' },
    );
    expect(reused.status).toBe(422);
    expect(
      exporter.getFinishedSpans().map((span) => span.attributes['onceflow.idempotency.outcome']),
    ).toEqual(['conflict']);
  });

  it('a batch handler runs in one consumer span linked to each producer context', async () => {
    const batchTopic = uniqueName('orders_batch');
    await createTopic(batchTopic, 1);
    const created: Context[] = [];
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      for (const id of ['b-1', 'b-2', 'b-3'])
        await appTracer.startActiveSpan(`place ${id}`, async (span) => {
          created.push(context.active());
          await enqueue(client, { topic: batchTopic, key: id, value: { id } }, { schema: db.schema });
          span.end();
        });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const relay = await createOutboxRelay({
      pool: db.pool,
      kafka: testKafka(),
      schema: db.schema,
      pollIntervalMs: 200,
    }).start();
    let handled = 0;
    const consumer = await startConsumer(db, {
      consumer: uniqueName('billing'),
      topics: [batchTopic],
      handleBatch: async (messages) => {
        handled += messages.length;
        const span = trace.getActiveSpan();
        expect(span?.isRecording()).toBe(true);
      },
    });
    try {
      await eventually(() => handled >= 3, 'three messages handled');
    } finally {
      await consumer.stop();
      await relay.stop();
    }
    const processSpans = exporter.getFinishedSpans().filter((span) => span.name === `process ${batchTopic}`);
    const creates = exporter.getFinishedSpans().filter((span) => span.name === `create ${batchTopic}`);
    expect(creates).toHaveLength(3);
    // Each create span is the child of the span active at enqueue.
    expect(creates.map((span) => span.parentSpanContext?.spanId).sort()).toEqual(
      created.map((ctx) => trace.getSpanContext(ctx)!.spanId).sort(),
    );
    const linked = processSpans.flatMap((span) => span.links.map((link) => link.context.spanId));
    expect(linked.sort()).toEqual(creates.map(spanId).sort());
    for (const span of processSpans) {
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.attributes['messaging.batch.message_count']).toBe(span.links.length);
    }
  });

  it('an explicit traceparent given with the event wins over the active context', async () => {
    const explicit = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await appTracer.startActiveSpan('caller', async (span) => {
        await enqueue(
          client,
          { topic: uniqueName('explicit'), value: 1, id: 'explicit-1', headers: { traceparent: explicit } },
          { schema: db.schema },
        );
        span.end();
      });
      const { rows } = await client.query(
        `SELECT header_names, header_values FROM "${db.schema}".outbox WHERE event_id = 'explicit-1'`,
      );
      const names = rows[0].header_names as string[];
      const values = rows[0].header_values as Buffer[];
      // message-id is stored apart from the other headers.
      expect(names).toEqual(['traceparent']);
      expect(values[0]!.toString()).toBe(explicit);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });
});
