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
  OnceflowError,
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
import { Counter, Gauge, register as globalRegistry, Histogram, type Registry } from 'prom-client';

/** Options of {@link registerOnceflowMetrics}. */
export interface OnceflowMetricsOptions {
  /** Where the metrics are registered. Default: prom-client's global registry (`register`). */
  registry?: Registry;
  /**
   * Upper bounds, in seconds, of the duration histograms' buckets (batch, transaction, publish,
   * end-to-end). Default: {@link defaultOnceflowMetricsOptions}`.durationBuckets`.
   */
  durationBuckets?: readonly number[];
}

/** Defaults of {@link OnceflowMetricsOptions}. */
export const defaultOnceflowMetricsOptions = Object.freeze({
  durationBuckets: Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]),
});

/** The onceflow metrics registered in a registry; `stop()` unsubscribes and unregisters them. */
export interface OnceflowMetrics {
  /** The registry the metrics live in. */
  readonly registry: Registry;
  /** Unsubscribes from the engines' channels and removes the metrics from the registry. Idempotent. */
  stop(): void;
  /** Same as `stop()`, for `using`. */
  [Symbol.dispose](): void;
}

/** Every metric {@link registerOnceflowMetrics} registers: name, type, labels and help. */
export const onceflowMetricDefinitions = Object.freeze([
  // Inbox consumers.
  {
    name: 'onceflow_inbox_messages_received_total',
    type: 'counter',
    labels: ['consumer', 'topic'],
    help: 'Records fetched by inbox consumers (redeliveries included).',
  },
  {
    name: 'onceflow_inbox_messages_processed_total',
    type: 'counter',
    labels: ['consumer', 'topic'],
    help: 'Messages whose handler effects committed (once per consumer and message id).',
  },
  {
    name: 'onceflow_inbox_duplicates_skipped_total',
    type: 'counter',
    labels: ['consumer', 'topic'],
    help: 'Messages skipped because the consumer had already processed their id.',
  },
  {
    name: 'onceflow_inbox_retries_total',
    type: 'counter',
    labels: ['consumer', 'topic', 'cause'],
    help: 'Failed inbox transactions that will be retried; cause "handler" counts an attempt, "database" (outage, lost race) does not.',
  },
  {
    name: 'onceflow_inbox_messages_dead_lettered_total',
    type: 'counter',
    labels: ['consumer', 'topic', 'reason'],
    help: 'Messages dead-lettered, by reason (handler-failed, invalid-id, too-old).',
  },
  {
    name: 'onceflow_inbox_position_ahead_total',
    type: 'counter',
    labels: ['consumer', 'topic', 'policy'],
    help: "Stored positions found beyond the partition's log end (topic recreated, database restored), by the policy applied.",
  },
  {
    name: 'onceflow_inbox_batch_duration_seconds',
    type: 'histogram',
    labels: ['consumer', 'topic'],
    help: 'Time to process one fetched batch of one partition, up to its broker offset commit.',
  },
  {
    name: 'onceflow_inbox_transaction_duration_seconds',
    type: 'histogram',
    labels: ['consumer', 'topic', 'outcome'],
    help: 'Time from begin to commit or rollback of an inbox transaction.',
  },
  {
    name: 'onceflow_inbox_partition_lag_messages',
    type: 'gauge',
    labels: ['consumer', 'topic', 'partition'],
    help: "Records between the consumer's position and the partition's high watermark, as of its last batch.",
  },
  // Outbox relays.
  {
    name: 'onceflow_relay_events_published_total',
    type: 'counter',
    labels: ['schema'],
    help: 'Outbox events published to Kafka and settled.',
  },
  {
    name: 'onceflow_relay_events_parked_total',
    type: 'counter',
    labels: ['schema', 'topic'],
    help: 'Outbox events parked because they can never be published.',
  },
  {
    name: 'onceflow_relay_publish_duration_seconds',
    type: 'histogram',
    labels: ['schema'],
    help: 'Time from handing a batch to the Kafka producer until the broker acknowledged it.',
  },
  {
    name: 'onceflow_relay_end_to_end_seconds',
    type: 'histogram',
    labels: ['schema'],
    help: "Largest time of a published batch from an event's insert (database clock) to its acknowledgement.",
  },
  {
    name: 'onceflow_relay_backlog_events',
    type: 'gauge',
    labels: ['schema'],
    help: 'Outbox events waiting to be published (parked ones excluded).',
  },
  {
    name: 'onceflow_relay_oldest_event_age_seconds',
    type: 'gauge',
    labels: ['schema'],
    help: 'Age of the oldest event waiting to be published; 0 when none waits.',
  },
  {
    name: 'onceflow_relay_parked_events',
    type: 'gauge',
    labels: ['schema'],
    help: 'Parked outbox events, waiting for an operator.',
  },
  {
    name: 'onceflow_relay_live_relays',
    type: 'gauge',
    labels: ['schema'],
    help: 'Relays alive on the outbox.',
  },
  {
    name: 'onceflow_relay_lanes_owned',
    type: 'gauge',
    labels: ['schema'],
    help: 'Lanes the relays of this process publish.',
  },
  {
    name: 'onceflow_relay_lane_changes_total',
    type: 'counter',
    labels: ['schema', 'change'],
    help: 'Lanes acquired, released or lost (taken over) by the relays of this process.',
  },
  // Every component.
  {
    name: 'onceflow_component_state',
    type: 'gauge',
    labels: ['component', 'name', 'state'],
    help: "1 for a component's current state (starting, running, waiting-for-database, waiting-for-broker, stopping, stopped), 0 for the others.",
  },
] as const);

/** The name of a metric onceflow registers. */
export type OnceflowMetricName = (typeof onceflowMetricDefinitions)[number]['name'];

const states = ['starting', 'running', 'waiting-for-database', 'waiting-for-broker', 'stopping', 'stopped'];

/** Calls `handle` for every message of `channel`, never letting it throw into the engine's tick. */
function subscribe<T>(channel: string, handle: (message: T) => void): () => void {
  const listener = (message: unknown): void => {
    try {
      handle(message as T);
    } catch {
      // A broken metric must not become an uncaught exception in the engine's process.
    }
  };
  diagnosticsChannel.subscribe(channel, listener);
  return () => diagnosticsChannel.unsubscribe(channel, listener);
}

/**
 * Registers onceflow's Prometheus metrics (see {@link onceflowMetricDefinitions}) and fills them from
 * the `onceflow:*` diagnostics channels of every inbox consumer and outbox relay in this process.
 * Nothing is passed to the engines: they publish only while someone subscribes. Throws
 * OF_ALREADY_STARTED when the registry already holds them (stop the other handle first).
 */
export function registerOnceflowMetrics(options: OnceflowMetricsOptions = {}): OnceflowMetrics {
  if (options === null || typeof options !== 'object')
    invalidOptions('registerOnceflowMetrics', 'options must be an object');
  const registry = options.registry ?? globalRegistry;
  if (typeof registry?.registerMetric !== 'function')
    invalidOptions('registerOnceflowMetrics', 'registry must be a prom-client Registry');
  const buckets = [...(options.durationBuckets ?? defaultOnceflowMetricsOptions.durationBuckets)];
  if (buckets.length === 0 || buckets.some((bound) => !(bound > 0)))
    invalidOptions('registerOnceflowMetrics', 'durationBuckets must be positive numbers of seconds');
  const taken = onceflowMetricDefinitions.filter((d) => registry.getSingleMetric(d.name) !== undefined);
  if (taken.length > 0)
    throw new OnceflowError(
      'OF_ALREADY_STARTED',
      `registerOnceflowMetrics: the registry already holds ${taken[0]!.name}; stop() the metrics registered before, or give another registry`,
    );

  const created = new Map<string, Counter | Gauge | Histogram>();
  for (const definition of onceflowMetricDefinitions) {
    const config = {
      name: definition.name,
      help: definition.help,
      labelNames: [...definition.labels],
      registers: [registry],
    };
    created.set(
      definition.name,
      definition.type === 'counter'
        ? new Counter(config)
        : definition.type === 'gauge'
          ? new Gauge(config)
          : new Histogram({ ...config, buckets }),
    );
  }
  const counter = (name: OnceflowMetricName) => created.get(name) as Counter;
  const gauge = (name: OnceflowMetricName) => created.get(name) as Gauge;
  const histogram = (name: OnceflowMetricName) => created.get(name) as Histogram;

  const received = counter('onceflow_inbox_messages_received_total');
  const processed = counter('onceflow_inbox_messages_processed_total');
  const duplicates = counter('onceflow_inbox_duplicates_skipped_total');
  const retries = counter('onceflow_inbox_retries_total');
  const deadLettered = counter('onceflow_inbox_messages_dead_lettered_total');
  const positionAhead = counter('onceflow_inbox_position_ahead_total');
  const batchDuration = histogram('onceflow_inbox_batch_duration_seconds');
  const transactionDuration = histogram('onceflow_inbox_transaction_duration_seconds');
  const lag = gauge('onceflow_inbox_partition_lag_messages');
  const published = counter('onceflow_relay_events_published_total');
  const parkedTotal = counter('onceflow_relay_events_parked_total');
  const publishDuration = histogram('onceflow_relay_publish_duration_seconds');
  const endToEnd = histogram('onceflow_relay_end_to_end_seconds');
  const backlog = gauge('onceflow_relay_backlog_events');
  const oldestAge = gauge('onceflow_relay_oldest_event_age_seconds');
  const parked = gauge('onceflow_relay_parked_events');
  const liveRelays = gauge('onceflow_relay_live_relays');
  const lanesOwned = gauge('onceflow_relay_lanes_owned');
  const laneChanges = counter('onceflow_relay_lane_changes_total');
  const componentState = gauge('onceflow_component_state');

  const unsubscribers = [
    subscribe<InboxBatchMessage>(inboxBatchChannel, (m) => {
      const labels = { consumer: m.consumer, topic: m.topic };
      received.inc(labels, m.messages);
      batchDuration.observe(labels, m.durationMs / 1000);
      if (m.lag !== undefined) lag.set({ ...labels, partition: String(m.partition) }, m.lag);
    }),
    subscribe<InboxTransactionMessage>(inboxTransactionChannel, (m) => {
      const labels = { consumer: m.consumer, topic: m.topic };
      transactionDuration.observe({ ...labels, outcome: m.outcome }, m.durationMs / 1000);
      if (m.outcome !== 'committed') return;
      if (m.processed > 0) processed.inc(labels, m.processed);
      if (m.duplicates > 0) duplicates.inc(labels, m.duplicates);
    }),
    subscribe<InboxRetryMessage>(inboxRetryChannel, (m) =>
      retries.inc({ consumer: m.consumer, topic: m.topic, cause: m.cause }),
    ),
    subscribe<InboxDeadLetterMessage>(inboxDeadLetterChannel, (m) =>
      deadLettered.inc({ consumer: m.consumer, topic: m.topic, reason: m.reason }),
    ),
    subscribe<InboxPositionAheadMessage>(inboxPositionAheadChannel, (m) =>
      positionAhead.inc({ consumer: m.consumer, topic: m.topic, policy: m.policy }),
    ),
    subscribe<RelayBatchMessage>(relayBatchChannel, (m) => {
      const labels = { schema: m.schema };
      published.inc(labels, m.count);
      publishDuration.observe(labels, m.publishLatencyMs / 1000);
      endToEnd.observe(labels, m.maxEndToEndMs / 1000);
    }),
    subscribe<RelayParkedMessage>(relayParkedChannel, (m) =>
      parkedTotal.inc({ schema: m.schema, topic: m.topic }),
    ),
    subscribe<RelayBacklogMessage>(relayBacklogChannel, (m) => {
      const labels = { schema: m.schema };
      backlog.set(labels, m.backlog);
      oldestAge.set(labels, (m.oldestAgeMs ?? 0) / 1000);
      parked.set(labels, m.parked);
      liveRelays.set(labels, m.liveRelays);
    }),
    subscribe<RelayLaneMessage>(relayLaneChannel, (m) => {
      laneChanges.inc({ schema: m.schema, change: m.change });
      if (m.change === 'acquired') lanesOwned.inc({ schema: m.schema });
      else lanesOwned.dec({ schema: m.schema });
    }),
    subscribe<StatusChangeMessage>(statusChannel, (m) => {
      for (const state of states)
        componentState.set({ component: m.component, name: m.name, state }, state === m.state ? 1 : 0);
    }),
  ];

  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const unsubscribe of unsubscribers) unsubscribe();
    for (const name of created.keys()) registry.removeSingleMetric(name);
  };
  return { registry, stop, [Symbol.dispose]: stop };
}
