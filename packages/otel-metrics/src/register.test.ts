import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { type InboxTransactionMessage, inboxBatchChannel, inboxTransactionChannel } from '@onceflow/core';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { onceflowOtelInstruments, registerOnceflowOtelMetrics } from './register';

class TestReader extends MetricReader {
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

/** The summed data points of `name` whose attributes include `attributes`. */
async function sum(reader: TestReader, name: string, attributes: Record<string, string>): Promise<number> {
  const { resourceMetrics } = await reader.collect();
  let total = 0;
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const point of metric.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
        if (Object.entries(attributes).every(([key, wanted]) => String(point.attributes[key]) === wanted))
          total += typeof point.value === 'number' ? point.value : (point.value as { count: number }).count;
    }
  return total;
}

const docs = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');

describe('registerOnceflowOtelMetrics', () => {
  it('docs/metrics.md lists every instrument with its kind, unit and attributes', () => {
    for (const { name, kind, unit, attributes } of onceflowOtelInstruments) {
      const row = docs.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      expect(row, name).toBeDefined();
      expect(row).toContain(`| ${kind} | \`${unit}\` |`);
      for (const attribute of attributes) expect(row, `${name} ${attribute}`).toContain(`\`${attribute}\``);
    }
    const documented = [...docs.matchAll(/^\| `(onceflow\.[\w.]+)` \|/gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual(onceflowOtelInstruments.map((i) => i.name).sort());
  });

  it('records the channels into OpenTelemetry instruments with units, and stop() unsubscribes', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    const otel = registerOnceflowOtelMetrics({ meter: provider.getMeter('test') });
    const tx: InboxTransactionMessage = {
      consumer: 'c1',
      topic: 't1',
      partition: 0,
      outcome: 'committed',
      messages: 5,
      processed: 3,
      duplicates: 2,
      deadLettered: 0,
      durationMs: 12,
    };
    diagnosticsChannel.channel(inboxTransactionChannel).publish(tx);
    diagnosticsChannel.channel(inboxTransactionChannel).publish(tx);
    diagnosticsChannel.channel(inboxBatchChannel).publish({
      consumer: 'c1',
      topic: 't1',
      partition: 4,
      messages: 10,
      durationMs: 30,
      nextOffset: '10',
      highWatermark: '13',
      lag: 3,
    });
    const attributes = { 'onceflow.consumer': 'c1', 'messaging.destination.name': 't1' };
    expect(await sum(reader, 'onceflow.inbox.messages.processed', attributes)).toBe(6);
    expect(await sum(reader, 'onceflow.inbox.duplicates.skipped', attributes)).toBe(4);
    expect(await sum(reader, 'onceflow.inbox.messages.received', attributes)).toBe(10);
    expect(
      await sum(reader, 'onceflow.inbox.partition.lag', {
        ...attributes,
        'messaging.destination.partition.id': '4',
      }),
    ).toBe(3);
    // Histograms: two transactions recorded.
    expect(
      await sum(reader, 'onceflow.inbox.transaction.duration', { 'onceflow.outcome': 'committed' }),
    ).toBe(2);
    const { resourceMetrics } = await reader.collect();
    const units = new Map(
      resourceMetrics.scopeMetrics.flatMap((s) =>
        s.metrics.map((m) => [m.descriptor.name, m.descriptor.unit]),
      ),
    );
    expect(units.get('onceflow.inbox.transaction.duration')).toBe('s');

    otel.stop();
    otel.stop();
    diagnosticsChannel.channel(inboxTransactionChannel).publish(tx);
    expect(await sum(reader, 'onceflow.inbox.messages.processed', attributes)).toBe(6);
    expect(diagnosticsChannel.channel(inboxTransactionChannel).hasSubscribers).toBe(false);
    await provider.shutdown();
  });

  it('names every instrument onceflow.* with a unit, and works without an SDK (no-op meter)', () => {
    for (const { name, unit } of onceflowOtelInstruments) {
      expect(name).toMatch(/^onceflow\.[a-z_.]+$/);
      expect(unit).not.toBe('');
    }
    using _otel = registerOnceflowOtelMetrics();
    expect(() =>
      diagnosticsChannel.channel(inboxBatchChannel).publish({ consumer: 'c', topic: 't' }),
    ).not.toThrow();
  });
});
