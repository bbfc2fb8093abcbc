import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import {
  type InboxBatchMessage,
  type InboxTransactionMessage,
  inboxBatchChannel,
  inboxTransactionChannel,
  isOnceflowError,
  type RelayLaneMessage,
  relayLaneChannel,
} from '@onceflow/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { onceflowMetricDefinitions, registerOnceflowMetrics } from './register';

const docs = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');

async function value(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const { values } = (await registry.getSingleMetric(name)!.get()) as {
    values: { labels: Record<string, unknown>; value: number }[];
  };
  return values
    .filter((v) => Object.entries(labels).every(([key, wanted]) => String(v.labels[key]) === wanted))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('registerOnceflowMetrics', () => {
  it('docs/metrics.md lists every metric with its type and labels, and no other', () => {
    for (const { name, type, labels } of onceflowMetricDefinitions) {
      const row = docs.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      expect(row, name).toBeDefined();
      expect(row).toContain(`| ${type} |`);
      for (const label of labels) expect(row, `${name} ${label}`).toContain(`\`${label}\``);
    }
    const documented = [...docs.matchAll(/^\| `(onceflow_\w+)` \|/gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual(onceflowMetricDefinitions.map((d) => d.name).sort());
  });

  it('names follow the Prometheus conventions: onceflow_ prefix, counters end in _total, units in the name', () => {
    for (const { name, type } of onceflowMetricDefinitions) {
      expect(name).toMatch(/^onceflow_[a-z_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$/);
    }
  });

  it('fills the metrics from the channels, and stop() unsubscribes and unregisters them', async () => {
    const registry = new Registry();
    const metrics = registerOnceflowMetrics({ registry });
    const labels = { consumer: 'c1', topic: 't1' };
    const tx: InboxTransactionMessage = {
      ...labels,
      partition: 0,
      outcome: 'committed',
      messages: 5,
      processed: 3,
      duplicates: 1,
      deadLettered: 1,
      durationMs: 12,
    };
    diagnosticsChannel.channel(inboxTransactionChannel).publish(tx);
    diagnosticsChannel.channel(inboxTransactionChannel).publish({ ...tx, outcome: 'rolled-back' });
    const batch: InboxBatchMessage = {
      ...labels,
      partition: 2,
      messages: 5,
      durationMs: 40,
      nextOffset: '10',
      highWatermark: '17',
      lag: 7,
    };
    diagnosticsChannel.channel(inboxBatchChannel).publish(batch);
    const lane: RelayLaneMessage = { schema: 's', relayId: 'r', lane: 3, change: 'acquired' };
    diagnosticsChannel.channel(relayLaneChannel).publish(lane);
    diagnosticsChannel.channel(relayLaneChannel).publish({ ...lane, lane: 4 });
    diagnosticsChannel.channel(relayLaneChannel).publish({ ...lane, change: 'lost' });

    expect(await value(registry, 'onceflow_inbox_messages_processed_total', labels)).toBe(3);
    expect(await value(registry, 'onceflow_inbox_duplicates_skipped_total', labels)).toBe(1);
    expect(await value(registry, 'onceflow_inbox_messages_received_total', labels)).toBe(5);
    expect(
      await value(registry, 'onceflow_inbox_partition_lag_messages', { ...labels, partition: '2' }),
    ).toBe(7);
    expect(await value(registry, 'onceflow_relay_lanes_owned', { schema: 's' })).toBe(1);
    expect(await registry.metrics()).toContain(
      'onceflow_inbox_transaction_duration_seconds_count{consumer="c1",topic="t1",outcome="rolled-back"} 1',
    );

    let error: unknown;
    try {
      registerOnceflowMetrics({ registry });
    } catch (caught) {
      error = caught;
    }
    expect(isOnceflowError(error, 'OF_ALREADY_STARTED')).toBe(true);

    metrics.stop();
    metrics.stop();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    expect(diagnosticsChannel.channel(inboxBatchChannel).hasSubscribers).toBe(false);
    using again = registerOnceflowMetrics({ registry });
    expect(again.registry).toBe(registry);
  });

  it('a message a metric cannot digest never becomes an uncaught exception in the engine that published it', async () => {
    using _metrics = registerOnceflowMetrics({ registry: new Registry() });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    try {
      // prom-client refuses to decrease a counter: it throws, and Node rethrows what a subscriber
      // throws as an uncaught exception on the next tick.
      diagnosticsChannel
        .channel(inboxBatchChannel)
        .publish({ consumer: 'c', topic: 't', partition: 0, messages: -1, durationMs: 1 });
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});
