import type { MessageHeaders } from './envelope';

/** One record as a consumer transport delivers it, before onceflow resolves its id. */
export interface TransportMessage {
  /** Kafka offset as a decimal string (offsets exceed 2^53). */
  readonly offset: string;
  /** Broker or producer timestamp, milliseconds since the epoch. */
  readonly timestamp: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Headers; a header sent several times is delivered with its first value. */
  readonly headers: MessageHeaders;
}

/** Consecutive records of one topic partition, in offset order. */
export interface TransportBatch {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly TransportMessage[];
  /**
   * The partition's high watermark as the fetch saw it (decimal string): no consumer can have read
   * past it. A stored position above it means the log is not the one the position was taken on (topic
   * recreated, database restored). Optional: without it the engine cannot detect that case.
   */
  readonly highWatermark?: string;
}

/** Offsets of a partition's log, asked from the broker. */
export interface LogOffsets {
  /** First offset still in the log (decimal string). */
  readonly start: string;
  /** Offset after the last record consumers may read (decimal string). */
  readonly end: string;
}

/**
 * What the engine may do with the batch it is processing. The database is the source of truth for
 * positions; the broker's committed offset is kept behind it for lag tooling and fast restarts.
 */
export interface BatchControl {
  /**
   * False once this instance no longer owns the partition, the batch went stale (after a seek) or the
   * transport is stopping: the engine then finishes the transaction in flight and starts no other.
   */
  isActive(): boolean;
  /**
   * Marks everything before `nextOffset` as done (already committed in the database) and commits it
   * to the broker if this instance still owns the partition. Never rejects: a lost broker commit
   * only means a redelivery that the database positions skip.
   */
  commit(nextOffset: string): Promise<void>;
  /** Moves the partition's fetch position to `nextOffset`, used when the database is ahead of the broker. */
  seek(nextOffset: string): void;
  /**
   * Keeps the group membership alive during long work; rejects when the group is rebalancing. Cheap
   * to call often: the transport sends a heartbeat only when one is due.
   */
  heartbeat(): Promise<void>;
  /**
   * Stops fetching the partition on this instance until the consumer restarts; the rest of the
   * assignment keeps flowing. Used when the partition cannot be processed safely without an operator.
   */
  pause(): void;
  /** The partition's current log start and end, asked from the broker now (not from the batch). */
  logOffsets(): Promise<LogOffsets>;
}

/** Called for every fetched batch. Batches of one partition never overlap; a batch left unfinished is fetched again. */
export type BatchListener = (batch: TransportBatch, control: BatchControl) => Promise<void>;

/**
 * The consumer side of a Kafka client as the inbox engine sees it. `@onceflow/kafkajs` implements
 * it; any other client (for example @platformatic/kafka) can, without touching the engine.
 * Implementations must not commit offsets on their own and must redeliver unfinished batches.
 */
export interface ConsumerTransport {
  /** Joins the consumer group, subscribes, and starts calling `listener`. Resolves once consuming started. */
  run(listener: BatchListener): Promise<void>;
  /** Stops fetching, waits for running listener calls to return, leaves the group. Idempotent. */
  stop(): Promise<void>;
}
