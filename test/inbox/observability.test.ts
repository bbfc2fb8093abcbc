// What an operator sees of a running consumer and relay: the Prometheus metrics after a known
// workload, the status() of each handle through its life, and the structured entries of the logger.
import diagnosticsChannel from 'node:diagnostics_channel';
import {
  type ComponentState,
  type Logger,
  OnceflowError,
  type StatusChangeMessage,
  statusChannel,
} from '@onceflow/core';
import { createInboxConsumer, createKafkajsLogCreator } from '@onceflow/kafkajs';
import { registerOnceflowOtelMetrics } from '@onceflow/otel-metrics';
import { registerOnceflowMetrics } from '@onceflow/prometheus';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { Kafka } from 'kafkajs';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy } from '../faults/support/tcp-proxy';
import { startRelay } from '../outbox/helpers';
import {
  brokers,
  createTopic,
  databaseUrl,
  produceRaw,
  type TestDatabase,
  testKafka,
  uniqueName,
} from '../support';
import { createInboxDatabase, positionTotal, startConsumer, waitFor } from './helpers';

let db: TestDatabase;
beforeAll(async () => {
  db = await createInboxDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** The value of `name` for the series whose labels include `labels`; 0 when there is none. */
async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
  suffix = '',
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = (await metric.get()) as {
    values: { labels: Record<string, unknown>; value: number; metricName?: string }[];
  };
  return values
    .filter((value) => (suffix === '' ? true : value.metricName === `${name}${suffix}`))
    .filter((value) => Object.entries(labels).every(([key, wanted]) => String(value.labels[key]) === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

/** An OpenTelemetry reader the test collects from. */
class CollectingReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The summed value of the OpenTelemetry counter `name` over the points whose attributes include `attributes`. */
async function otelSum(
  reader: CollectingReader,
  name: string,
  attributes: Record<string, string>,
): Promise<number> {
  const { resourceMetrics } = await reader.collect();
  let total = 0;
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics)
      if (metric.descriptor.name === name)
        for (const point of metric.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
          if (Object.entries(attributes).every(([key, wanted]) => String(point.attributes[key]) === wanted))
            total += Number(point.value);
  return total;
}

interface Entry {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

/** A pino-shaped logger that keeps every entry with its bindings merged in. */
function capturingLogger(entries: Entry[], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (first: object | string, message?: string): void => {
      entries.push({
        level,
        message: typeof first === 'string' ? first : (message ?? ''),
        fields: { ...bindings, ...(typeof first === 'string' ? {} : first) },
      });
    };
  return {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    child: (more) => capturingLogger(entries, { ...bindings, ...more }),
  };
}

describe('observing the inbox consumer and the relay', () => {
  it('after 100 messages, 20 duplicates, 2 poison messages and 1 without an id, the Prometheus and OpenTelemetry counters say exactly so, and the relay counts the dead letters it published', async () => {
    const registry = new Registry();
    using _metrics = registerOnceflowMetrics({ registry });
    const reader = new CollectingReader();
    const provider = new MeterProvider({ readers: [reader] });
    using _otel = registerOnceflowOtelMetrics({ meter: provider.getMeter('observability-test') });
    const topic = uniqueName('obs_metrics');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    const fresh = Array.from({ length: 100 }, (_, i) => ({
      value: `m${i}`,
      headers: { 'message-id': `m${i}` },
    }));
    const duplicates = fresh.slice(0, 20);
    const poison = ['p0', 'p1'].map((id) => ({ value: 'poison', headers: { 'message-id': id } }));
    await produceRaw(topic, [...fresh, ...poison, { value: 'no id' }, ...duplicates]);
    const total = 123;
    const maxAttempts = 3;
    await using _consumer = await startConsumer(db, {
      consumer,
      topics: [topic],
      onMissingId: 'dead-letter',
      retry: { maxAttempts, initialDelayMs: 10, maxDelayMs: 20, jitter: 0 },
      handler: async (message, { client }) => {
        if (message.value?.toString() === 'poison') throw new Error('poison message');
        await client.query(`INSERT INTO "${db.schema}".effects (message_id) VALUES ($1)`, [
          `${consumer}:${message.id}`,
        ]);
      },
    });
    await waitFor(
      'the consumer to reach the end',
      async () => (await positionTotal(db.pool, db.schema, consumer)) === total,
    );
    await using _relay = await startRelay(db, { metricsIntervalMs: 200 });

    const labels = { consumer, topic };
    await waitFor(
      'the last batch to be counted',
      async () =>
        (await metricValue(registry, 'onceflow_inbox_batch_duration_seconds', labels, '_count')) > 0 &&
        (await metricValue(registry, 'onceflow_inbox_messages_received_total', labels)) >= total,
    );
    expect(await metricValue(registry, 'onceflow_inbox_messages_processed_total', labels)).toBe(100);
    expect(await metricValue(registry, 'onceflow_inbox_duplicates_skipped_total', labels)).toBe(20);
    expect(
      await metricValue(registry, 'onceflow_inbox_messages_dead_lettered_total', {
        ...labels,
        reason: 'handler-failed',
      }),
    ).toBe(2);
    expect(
      await metricValue(registry, 'onceflow_inbox_messages_dead_lettered_total', {
        ...labels,
        reason: 'invalid-id',
      }),
    ).toBe(1);
    // Each poison message fails maxAttempts times before it is dead-lettered; no outage happened.
    expect(await metricValue(registry, 'onceflow_inbox_retries_total', { ...labels, cause: 'handler' })).toBe(
      2 * maxAttempts,
    );
    expect(
      await metricValue(registry, 'onceflow_inbox_retries_total', { ...labels, cause: 'database' }),
    ).toBe(0);
    // One consumer, no rebalance: every record was received once.
    expect(await metricValue(registry, 'onceflow_inbox_messages_received_total', labels)).toBe(total);
    expect(
      await metricValue(registry, 'onceflow_inbox_partition_lag_messages', { ...labels, partition: '0' }),
    ).toBe(0);
    expect(
      await metricValue(
        registry,
        'onceflow_inbox_transaction_duration_seconds',
        { ...labels, outcome: 'committed' },
        '_count',
      ),
    ).toBeGreaterThan(0);
    // The poison messages' failed attempts rolled back.
    expect(
      await metricValue(
        registry,
        'onceflow_inbox_transaction_duration_seconds',
        { ...labels, outcome: 'rolled-back' },
        '_count',
      ),
    ).toBe(2 * maxAttempts);

    // The relay publishes the three dead letters the consumer wrote to the outbox.
    const schema = { schema: db.schema };
    await waitFor(
      'the relay to publish the dead letters',
      async () => (await metricValue(registry, 'onceflow_relay_events_published_total', schema)) === 3,
    );
    await waitFor(
      'the backlog gauge to reach 0',
      async () =>
        (await metricValue(registry, 'onceflow_relay_backlog_events', schema)) === 0 &&
        (await metricValue(registry, 'onceflow_relay_lanes_owned', schema)) > 0,
    );
    expect(
      await metricValue(registry, 'onceflow_relay_publish_duration_seconds', schema, '_count'),
    ).toBeGreaterThan(0);
    const text = await registry.metrics();
    expect(text).toContain(
      `onceflow_inbox_messages_processed_total{consumer="${consumer}",topic="${topic}"} 100`,
    );
    expect(text).toContain(
      `onceflow_inbox_duplicates_skipped_total{consumer="${consumer}",topic="${topic}"} 20`,
    );
    // The OpenTelemetry adapter, subscribed to the same channels, says the same.
    const attributes = { 'onceflow.consumer': consumer, 'messaging.destination.name': topic };
    expect(await otelSum(reader, 'onceflow.inbox.messages.processed', attributes)).toBe(100);
    expect(await otelSum(reader, 'onceflow.inbox.duplicates.skipped', attributes)).toBe(20);
    expect(await otelSum(reader, 'onceflow.relay.events.published', { 'onceflow.schema': db.schema })).toBe(
      3,
    );
    await provider.shutdown();
  });

  it('status() follows the consumer from waiting for its database through running to stopped, and tells the diagnostics channel', async () => {
    const url = new URL(databaseUrl());
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    proxy.refuse();
    url.port = String(proxy.port);
    const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    pool.on('error', () => undefined);
    const consumer = uniqueName('c');
    const topic = uniqueName('obs_status');
    await createTopic(topic, 1);
    const changes: ComponentState[] = [];
    const listener = (message: unknown): void => {
      const change = message as StatusChangeMessage;
      if (change.name === consumer) changes.push(change.state as ComponentState);
    };
    diagnosticsChannel.subscribe(statusChannel, listener);
    try {
      const inbox = createInboxConsumer({
        kafka: testKafka(),
        pool,
        schema: db.schema,
        consumer,
        topics: [topic],
        onMissingDeadLetterTopic: 'create',
        retry: { initialDelayMs: 50, maxDelayMs: 200 },
        pruneIntervalMs: 0,
        handler: async () => undefined,
      });
      expect(inbox.status().state).toBe('starting');
      const starting = inbox.start();
      await waitFor(
        'the consumer to wait for its database',
        async () => inbox.status().state === 'waiting-for-database',
      );
      expect(inbox.status().lastError).toBeInstanceOf(OnceflowError);
      expect(inbox.status().lastError?.code).toBe('OF_UNAVAILABLE');
      proxy.heal();
      const handle = await starting;
      expect(handle.status().state).toBe('running');
      expect(inbox.status().state).toBe('running');
      await handle.stop();
      expect(handle.status().state).toBe('stopped');
      expect(changes).toEqual(['waiting-for-database', 'starting', 'running', 'stopping', 'stopped']);
    } finally {
      diagnosticsChannel.unsubscribe(statusChannel, listener);
      await pool.end();
      await proxy.close();
    }
  });

  it('the logger receives structured entries from a real consumer, the relay and kafkajs', async () => {
    const entries: Entry[] = [];
    const logger = capturingLogger(entries);
    const topic = uniqueName('obs_log');
    const consumer = uniqueName('c');
    await createTopic(topic, 1);
    await produceRaw(topic, [
      { value: 'ok', headers: { 'message-id': 'ok-1' } },
      { value: 'poison', headers: { 'message-id': 'bad-1' } },
    ]);
    const kafka = new Kafka({
      brokers: brokers(),
      clientId: 'obs-log',
      logCreator: createKafkajsLogCreator(logger),
    });
    {
      await using _consumer = await startConsumer(db, {
        consumer,
        topics: [topic],
        kafka,
        logger,
        retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 20, jitter: 0 },
        handler: async (message) => {
          if (message.value?.toString() === 'poison') throw new Error('poison message');
        },
      } as Parameters<typeof startConsumer>[1]);
      await waitFor(
        'the consumer to reach the end',
        async () => (await positionTotal(db.pool, db.schema, consumer)) === 2,
      );
      await using _relay = await startRelay(db, { logger });
      await waitFor('the relay to start', async () =>
        entries.some((e) => e.message === 'outbox relay started'),
      );
    }
    const mine = entries.filter((entry) => entry.fields.consumer === consumer);
    expect(mine.find((e) => e.message === 'inbox consumer started')).toMatchObject({
      level: 'info',
      fields: { component: 'inbox consumer', consumer },
    });
    expect(mine.find((e) => e.fields.code === 'OF_HANDLER_FAILED' && e.level === 'warn')).toMatchObject({
      fields: { consumer, topic, partition: 0, offset: '1', messageId: 'bad-1', attempts: 1 },
    });
    expect(mine.find((e) => e.level === 'error')).toMatchObject({
      fields: {
        code: 'OF_HANDLER_FAILED',
        topic,
        offset: '1',
        messageId: 'bad-1',
        attempts: 2,
        reason: 'handler-failed',
      },
    });
    expect(mine.find((e) => e.message === 'inbox consumer stopped')).toBeDefined();
    expect(entries.find((e) => e.message === 'outbox relay started')).toMatchObject({
      fields: { component: 'outbox relay', schema: db.schema },
    });
    expect(
      entries.find((e) => e.fields.component === 'outbox relay' && e.fields.lane !== undefined),
    ).toBeDefined();
    // kafkajs's own lines, through its log creator, on the same logger.
    expect(
      entries.find((e) => e.fields.component === 'kafkajs' && typeof e.fields.namespace === 'string'),
    ).toBeDefined();
  });
});
