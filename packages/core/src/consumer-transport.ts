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
}

/**
 * What the engine may do with the batch it is processing. The database is the source of truth for
 * positions; the broker's committed offset is kept behind it for lag tooling and fast restarts.
 *
 * `isActive` and `commit` are required. `seek` and `heartbeat` are optional: a client that cannot
 * seek has the records below the stored position redelivered, which the engine skips (it costs
 * time, never correctness); a client that keeps its group session alive on its own needs no
 * heartbeat, and without one the engine cannot notice a rebalance between transactions of a batch
 * before its next `isActive()` check.
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
  /** Moves the partition's fetch position to `nextOffset`, used when the database is ahead of the broker. Optional. */
  seek?(nextOffset: string): void;
  /** Keeps the group membership alive during long work; rejects when the group is rebalancing. Optional. */
  heartbeat?(): Promise<void>;
}

/** Called for every fetched batch. Batches of one partition never overlap; a batch left unfinished is fetched again. */
export type BatchListener = (batch: TransportBatch, control: BatchControl) => Promise<void>;

/**
 * The consumer side of a Kafka client as the inbox engine sees it. `@onceflow/kafkajs` implements
 * it; any other client (for example @platformatic/kafka) can, without touching the engine.
 * Implementations must not commit offsets on their own and must redeliver unfinished batches. Both
 * methods are required; of {@link BatchControl}, `seek` and `heartbeat` are optional.
 */
export interface ConsumerTransport {
  /**
   * Joins the consumer group, subscribes, and starts calling `listener`. Resolves once consuming
   * started. Called once; a second call rejects with OF_ALREADY_STARTED.
   */
  run(listener: BatchListener): Promise<void>;
  /** Stops fetching, waits for running listener calls to return, leaves the group. Idempotent. */
  stop(): Promise<void>;
}
