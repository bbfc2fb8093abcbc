import diagnosticsChannel from 'node:diagnostics_channel';
import {
  type InboxBatchMessage,
  type InboxDeadLetterMessage,
  type InboxPositionAheadMessage,
  type InboxRetryMessage,
  type InboxTransactionMessage,
  inboxBatchChannel,
  inboxDeadLetterChannel,
  inboxPositionAheadChannel,
  inboxRetryChannel,
  inboxTransactionChannel,
  invalidOptions,
  type RelayBacklogMessage,
  type RelayBatchMessage,
  type RelayLaneMessage,
  type RelayParkedMessage,
  relayBacklogChannel,
  relayBatchChannel,
  relayLaneChannel,
  relayParkedChannel,
  type StatusChangeMessage,
  statusChannel,
} from '@onceflow/core';
import { type Meter, metrics } from '@opentelemetry/api';

/** Options of {@link registerOnceflowOtelMetrics}. */
export interface OnceflowOtelMetricsOptions {
  /**
   * The meter the instruments are created on. Default: `metrics.getMeter('@onceflow/otel-metrics')` of
   * the global meter provider (a no-op until an OpenTelemetry SDK registers one).
   */
  meter?: Meter;
}

/** The instruments subscribed to onceflow's channels; `stop()` unsubscribes them. */
export interface OnceflowOtelMetrics {
  /** Unsubscribes from the engines' channels: the instruments stop changing. Idempotent. */
  stop(): void;
  /** Same as `stop()`, for `using`. */
  [Symbol.dispose](): void;
}

/** Every instrument {@link registerOnceflowOtelMetrics} creates: name, kind, unit and attributes. */
export const onceflowOtelInstruments = Object.freeze([
  {
    name: 'onceflow.inbox.messages.received',
    kind: 'counter',
    unit: '{message}',
    attributes: ['onceflow.consumer', 'messaging.destination.name'],
  },
  {
    name: 'onceflow.inbox.messages.processed',
    kind: 'counter',
    unit: '{message}',
    attributes: ['onceflow.consumer', 'messaging.destination.name'],
  },
  {
    name: 'onceflow.inbox.duplicates.skipped',
    kind: 'counter',
    unit: '{message}',
    attributes: ['onceflow.consumer', 'messaging.destination.name'],
  },
  {
    name: 'onceflow.inbox.retries',
    kind: 'counter',
    unit: '{retry}',
    attributes: ['onceflow.consumer', 'messaging.destination.name', 'onceflow.cause'],
  },
  {
    name: 'onceflow.inbox.messages.dead_lettered',
    kind: 'counter',
    unit: '{message}',
    attributes: ['onceflow.consumer', 'messaging.destination.name', 'onceflow.reason'],
  },
  {
    name: 'onceflow.inbox.position_ahead',
    kind: 'counter',
    unit: '{event}',
    attributes: ['onceflow.consumer', 'messaging.destination.name', 'onceflow.policy'],
  },
  {
    name: 'onceflow.inbox.batch.duration',
    kind: 'histogram',
    unit: 's',
    attributes: ['onceflow.consumer', 'messaging.destination.name'],
  },
  {
    name: 'onceflow.inbox.transaction.duration',
    kind: 'histogram',
    unit: 's',
    attributes: ['onceflow.consumer', 'messaging.destination.name', 'onceflow.outcome'],
  },
  {
    name: 'onceflow.inbox.partition.lag',
    kind: 'gauge',
    unit: '{message}',
    attributes: ['onceflow.consumer', 'messaging.destination.name', 'messaging.destination.partition.id'],
  },
  {
    name: 'onceflow.relay.events.published',
    kind: 'counter',
    unit: '{event}',
    attributes: ['onceflow.schema'],
  },
  {
    name: 'onceflow.relay.events.parked',
    kind: 'counter',
    unit: '{event}',
    attributes: ['onceflow.schema', 'messaging.destination.name'],
  },
  { name: 'onceflow.relay.publish.duration', kind: 'histogram', unit: 's', attributes: ['onceflow.schema'] },
  {
    name: 'onceflow.relay.end_to_end.duration',
    kind: 'histogram',
    unit: 's',
    attributes: ['onceflow.schema'],
  },
  { name: 'onceflow.relay.backlog', kind: 'gauge', unit: '{event}', attributes: ['onceflow.schema'] },
  { name: 'onceflow.relay.oldest_event.age', kind: 'gauge', unit: 's', attributes: ['onceflow.schema'] },
  { name: 'onceflow.relay.parked', kind: 'gauge', unit: '{event}', attributes: ['onceflow.schema'] },
  { name: 'onceflow.relay.live_relays', kind: 'gauge', unit: '{relay}', attributes: ['onceflow.schema'] },
  {
    name: 'onceflow.relay.lanes.owned',
    kind: 'updowncounter',
    unit: '{lane}',
    attributes: ['onceflow.schema'],
  },
  {
    name: 'onceflow.relay.lane.changes',
    kind: 'counter',
    unit: '{lane}',
    attributes: ['onceflow.schema', 'onceflow.change'],
  },
  {
    name: 'onceflow.component.state',
    kind: 'gauge',
    unit: '1',
    attributes: ['onceflow.component', 'onceflow.name', 'onceflow.state'],
  },
] as const);

const states = ['starting', 'running', 'waiting-for-database', 'waiting-for-broker', 'stopping', 'stopped'];

/** Calls `handle` for every message of `channel`; what it throws never reaches the engine. */
function subscribe<T>(channel: string, handle: (message: T) => void): () => void {
  const listener = (message: unknown): void => {
    try {
      handle(message as T);
    } catch {
      // A broken instrument must not become an uncaught exception in the engine's process.
    }
  };
  diagnosticsChannel.subscribe(channel, listener);
  return () => diagnosticsChannel.unsubscribe(channel, listener);
}

/**
 * Creates onceflow's OpenTelemetry instruments (see {@link onceflowOtelInstruments}) on `meter` and
 * records into them from the `onceflow:*` diagnostics channels of every inbox consumer and outbox
 * relay of this process. Nothing is passed to the engines; without an OpenTelemetry SDK the default
 * meter records nothing.
 */
export function registerOnceflowOtelMetrics(options: OnceflowOtelMetricsOptions = {}): OnceflowOtelMetrics {
  if (options === null || typeof options !== 'object')
    invalidOptions('registerOnceflowOtelMetrics', 'options must be an object');
  const meter = options.meter ?? metrics.getMeter('@onceflow/otel-metrics');
  if (typeof meter?.createCounter !== 'function' || typeof meter.createGauge !== 'function')
    invalidOptions(
      'registerOnceflowOtelMetrics',
      'meter must be an OpenTelemetry Meter (@opentelemetry/api 1.9 or later)',
    );
  const describe = (name: string) => {
    const instrument = onceflowOtelInstruments.find((i) => i.name === name)!;
    return { unit: instrument.unit };
  };
  const counter = (name: string) => meter.createCounter(name, describe(name));
  const histogram = (name: string) => meter.createHistogram(name, describe(name));
  const gauge = (name: string) => meter.createGauge(name, describe(name));

  const received = counter('onceflow.inbox.messages.received');
  const processed = counter('onceflow.inbox.messages.processed');
  const duplicates = counter('onceflow.inbox.duplicates.skipped');
  const retries = counter('onceflow.inbox.retries');
  const deadLettered = counter('onceflow.inbox.messages.dead_lettered');
  const positionAhead = counter('onceflow.inbox.position_ahead');
  const batchDuration = histogram('onceflow.inbox.batch.duration');
  const transactionDuration = histogram('onceflow.inbox.transaction.duration');
  const lag = gauge('onceflow.inbox.partition.lag');
  const published = counter('onceflow.relay.events.published');
  const parkedTotal = counter('onceflow.relay.events.parked');
  const publishDuration = histogram('onceflow.relay.publish.duration');
  const endToEnd = histogram('onceflow.relay.end_to_end.duration');
  const backlog = gauge('onceflow.relay.backlog');
  const oldestAge = gauge('onceflow.relay.oldest_event.age');
  const parked = gauge('onceflow.relay.parked');
  const liveRelays = gauge('onceflow.relay.live_relays');
  const lanesOwned = meter.createUpDownCounter(
    'onceflow.relay.lanes.owned',
    describe('onceflow.relay.lanes.owned'),
  );
  const laneChanges = counter('onceflow.relay.lane.changes');
  const componentState = gauge('onceflow.component.state');

  const inbox = (m: { consumer: string; topic: string }) => ({
    'onceflow.consumer': m.consumer,
    'messaging.destination.name': m.topic,
  });
  const unsubscribers = [
    subscribe<InboxBatchMessage>(inboxBatchChannel, (m) => {
      received.add(m.messages, inbox(m));
      batchDuration.record(m.durationMs / 1000, inbox(m));
      if (m.lag !== undefined)
        lag.record(m.lag, { ...inbox(m), 'messaging.destination.partition.id': String(m.partition) });
    }),
    subscribe<InboxTransactionMessage>(inboxTransactionChannel, (m) => {
      transactionDuration.record(m.durationMs / 1000, { ...inbox(m), 'onceflow.outcome': m.outcome });
      if (m.outcome !== 'committed') return;
      if (m.processed > 0) processed.add(m.processed, inbox(m));
      if (m.duplicates > 0) duplicates.add(m.duplicates, inbox(m));
    }),
    subscribe<InboxRetryMessage>(inboxRetryChannel, (m) =>
      retries.add(1, { ...inbox(m), 'onceflow.cause': m.cause }),
    ),
    subscribe<InboxDeadLetterMessage>(inboxDeadLetterChannel, (m) =>
      deadLettered.add(1, { ...inbox(m), 'onceflow.reason': m.reason }),
    ),
    subscribe<InboxPositionAheadMessage>(inboxPositionAheadChannel, (m) =>
      positionAhead.add(1, { ...inbox(m), 'onceflow.policy': m.policy }),
    ),
    subscribe<RelayBatchMessage>(relayBatchChannel, (m) => {
      const attributes = { 'onceflow.schema': m.schema };
      published.add(m.count, attributes);
      publishDuration.record(m.publishLatencyMs / 1000, attributes);
      endToEnd.record(m.maxEndToEndMs / 1000, attributes);
    }),
    subscribe<RelayParkedMessage>(relayParkedChannel, (m) =>
      parkedTotal.add(1, { 'onceflow.schema': m.schema, 'messaging.destination.name': m.topic }),
    ),
    subscribe<RelayBacklogMessage>(relayBacklogChannel, (m) => {
      const attributes = { 'onceflow.schema': m.schema };
      backlog.record(m.backlog, attributes);
      oldestAge.record((m.oldestAgeMs ?? 0) / 1000, attributes);
      parked.record(m.parked, attributes);
      liveRelays.record(m.liveRelays, attributes);
    }),
    subscribe<RelayLaneMessage>(relayLaneChannel, (m) => {
      laneChanges.add(1, { 'onceflow.schema': m.schema, 'onceflow.change': m.change });
      lanesOwned.add(m.change === 'acquired' ? 1 : -1, { 'onceflow.schema': m.schema });
    }),
    subscribe<StatusChangeMessage>(statusChannel, (m) => {
      for (const state of states)
        componentState.record(state === m.state ? 1 : 0, {
          'onceflow.component': m.component,
          'onceflow.name': m.name,
          'onceflow.state': state,
        });
    }),
  ];

  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const unsubscribe of unsubscribers) unsubscribe();
  };
  return { stop, [Symbol.dispose]: stop };
}
