import type { OutboxEvent } from './envelope';

/**
 * The `node:diagnostics_channel` channel `enqueue` publishes to, synchronously, before it writes an
 * event: the seam through which a tracing package adds trace context (W3C `traceparent`) to outgoing
 * events without an option on any engine. Nothing is built when nobody subscribes.
 */
export const outboxEnqueueChannel = 'onceflow:outbox:enqueue';

/** What {@link outboxEnqueueChannel} carries. */
export interface OutboxEnqueueMessage {
  /** The event as the caller gave it. */
  readonly event: Readonly<OutboxEvent>;
  /** The event's id: the caller's `id`, or the one onceflow gave it (its `message-id` header). */
  readonly id: string;
  /** Schema of the outbox written to. */
  readonly schema: string;
  /**
   * A copy of the event's headers; entries a subscriber sets here are written with the event and
   * reach Kafka. `message-id` is onceflow's and cannot be set this way.
   */
  readonly headers: Record<string, string | Buffer>;
}

/*
 * Metrics channels. The engines publish to these `node:diagnostics_channel` channels after the fact,
 * only when somebody subscribes (`hasSubscribers`), so they cost nothing otherwise. Metrics adapters
 * (@onceflow/prometheus) only subscribe: the engines have no option for them. A subscriber that
 * throws is reported by Node as an uncaught exception on the next tick, never to the engine, so keep
 * subscribers small and catching.
 */

/** Every fetched batch of one partition, once the inbox engine finished with it: {@link InboxBatchMessage}. */
export const inboxBatchChannel = 'onceflow:inbox:batch';
/** Every inbox transaction, committed or rolled back: {@link InboxTransactionMessage}. */
export const inboxTransactionChannel = 'onceflow:inbox:transaction';
/** Every inbox failure that will be retried: {@link InboxRetryMessage}. */
export const inboxRetryChannel = 'onceflow:inbox:retry';
/** Every dead letter the inbox wrote, once its transaction committed: {@link InboxDeadLetterMessage}. */
export const inboxDeadLetterChannel = 'onceflow:inbox:dead-letter';
/** A stored position found beyond the partition's log end: {@link InboxPositionAheadMessage}. */
export const inboxPositionAheadChannel = 'onceflow:inbox:position-ahead';
/** Every batch the relay published and settled, per lane: {@link RelayBatchMessage}. */
export const relayBatchChannel = 'onceflow:relay:batch';
/** The outbox backlog as the relay read it, every `metricsIntervalMs`: {@link RelayBacklogMessage}. */
export const relayBacklogChannel = 'onceflow:relay:backlog';
/** Every event the relay parked: {@link RelayParkedMessage}. */
export const relayParkedChannel = 'onceflow:relay:parked';
/** A lane the relay started or stopped publishing: {@link RelayLaneMessage}. */
export const relayLaneChannel = 'onceflow:relay:lane';
/** Every change of a component's state (see `ComponentStatus`): {@link StatusChangeMessage}. */
export const statusChannel = 'onceflow:status';

/** Where an inbox event happened. */
export interface InboxPartitionRef {
  readonly consumer: string;
  readonly topic: string;
  readonly partition: number;
}

/** What {@link inboxBatchChannel} carries. */
export interface InboxBatchMessage extends InboxPartitionRef {
  /** Records in the fetched batch (received). */
  readonly messages: number;
  /** Milliseconds from the start of processing to the broker offset commit. */
  readonly durationMs: number;
  /** The partition position after the batch (next offset to read), when the batch advanced it. */
  readonly nextOffset: string | undefined;
  /** The partition's high watermark as the fetch saw it (decimal string), when the transport knows it. */
  readonly highWatermark: string | undefined;
  /** Records between `nextOffset` and the high watermark (consumer lag), when both are known. */
  readonly lag: number | undefined;
}

/** What {@link inboxTransactionChannel} carries. */
export interface InboxTransactionMessage extends InboxPartitionRef {
  /** `committed`, or `rolled-back` (a handler threw, the database failed, or the consumer stopped). */
  readonly outcome: 'committed' | 'rolled-back';
  /** Messages the transaction covered. */
  readonly messages: number;
  /** Messages handled for the first time (committed transactions only; dead letters excluded). */
  readonly processed: number;
  /** Messages skipped as already seen by this consumer (committed transactions only). */
  readonly duplicates: number;
  /** Messages dead-lettered (committed transactions only). */
  readonly deadLettered: number;
  /** Milliseconds from `begin` to the commit or rollback. */
  readonly durationMs: number;
}

/** What {@link inboxRetryChannel} carries. */
export interface InboxRetryMessage extends InboxPartitionRef {
  /** Offset of the first message of the transaction retried. */
  readonly offset: string;
  /** `handler`: a handler attempt failed (it counts); `database`: an outage or lost race (it does not). */
  readonly cause: 'handler' | 'database';
  /** Handler attempts so far; 0 for `database`. */
  readonly attempts: number;
  /** The code of the error reported. */
  readonly code: string;
}

/** What {@link inboxDeadLetterChannel} carries. */
export interface InboxDeadLetterMessage extends InboxPartitionRef {
  readonly offset: string;
  readonly messageId: string;
  /** `handler-failed`, `invalid-id` or `too-old`. */
  readonly reason: string;
  /** Handler attempts made; 0 when the handler never ran. */
  readonly attempts: number;
}

/** What {@link inboxPositionAheadChannel} carries. */
export interface InboxPositionAheadMessage extends InboxPartitionRef {
  readonly storedPosition: string;
  readonly logStart: string;
  readonly logEnd: string;
  /** The `onPositionAhead` policy that was applied. */
  readonly policy: string;
}

/** Which relay an event is about. */
export interface RelayRef {
  /** The outbox's name (the schema of the Postgres store). */
  readonly schema: string;
  readonly relayId: string;
}

/** What {@link relayBatchChannel} carries. */
export interface RelayBatchMessage extends RelayRef {
  readonly lane: number;
  /** Events published and settled. */
  readonly count: number;
  /** Milliseconds from handing the batch to the publisher until the broker acknowledged it. */
  readonly publishLatencyMs: number;
  /** Largest time in milliseconds from an event's insert (database clock) to its acknowledgement. */
  readonly maxEndToEndMs: number;
}

/** What {@link relayBacklogChannel} carries. */
export interface RelayBacklogMessage extends RelayRef {
  /** Events waiting to be published (parked ones excluded). */
  readonly backlog: number;
  /** Age in milliseconds of the oldest waiting event; null when none waits. */
  readonly oldestAgeMs: number | null;
  /** Parked events. */
  readonly parked: number;
  /** Relays alive on this outbox. */
  readonly liveRelays: number;
  /** Lanes this relay holds. */
  readonly ownedLanes: number;
}

/** What {@link relayParkedChannel} carries. */
export interface RelayParkedMessage extends RelayRef {
  readonly lane: number;
  readonly eventId: string;
  readonly topic: string;
  readonly error: string;
}

/** What {@link relayLaneChannel} carries. */
export interface RelayLaneMessage extends RelayRef {
  readonly lane: number;
  /** `acquired`, `released` (rebalance, stop) or `lost` (taken over or fenced). */
  readonly change: 'acquired' | 'released' | 'lost';
}

/** What {@link statusChannel} carries. */
export interface StatusChangeMessage {
  /** `inbox consumer` or `outbox relay`. */
  readonly component: string;
  /** The consumer name or the relay id. */
  readonly name: string;
  readonly state: string;
  readonly previous: string;
}
