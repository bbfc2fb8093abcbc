import type { MessageHeaders } from './envelope';
import type { OnceflowError } from './errors';

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
 *
 * `isActive` and `commit` are required; the rest is optional, and the engine does without:
 * - without `seek`, the records below the stored position are redelivered and skipped (it costs
 *   time, never correctness);
 * - without `heartbeat`, the client must keep its group session alive on its own, and the engine
 *   notices a rebalance between the transactions of a batch only at its next `isActive()` check;
 * - without `pause` and `logOffsets` (or without `TransportBatch.highWatermark`), a stored position
 *   beyond the log end (topic recreated, database restored) cannot be detected: the engine then
 *   seeks to the stored position as when the database is ahead of the broker.
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
  /**
   * Keeps the group membership alive during long work; rejects when the group is rebalancing. Cheap
   * to call often: the transport sends a heartbeat only when one is due. Optional.
   */
  heartbeat?(): Promise<void>;
  /**
   * Stops fetching the partition on this instance until the consumer restarts; the rest of the
   * assignment keeps flowing. Used when the partition cannot be processed safely without an operator.
   * Optional, with `logOffsets`: see below.
   */
  pause?(): void;
  /** The partition's current log start and end, asked from the broker now (not from the batch). Optional. */
  logOffsets?(): Promise<LogOffsets>;
}

/** A topic that must exist before consuming, and the topics whose partition count it should have. */
export interface RequiredTopic {
  readonly topic: string;
  /** Source topics; a created topic gets as many partitions as the largest of them. */
  readonly like: readonly string[];
}

/** A required topic that did not exist, as {@link ConsumerTransport.ensureTopics} found it. */
export interface MissingTopic {
  readonly topic: string;
  /** The partitions it should have (the most of its `like` topics); -1 when they are unknown. */
  readonly partitions: number;
}

/** How a transport tells the engine about trouble it handles itself. */
export interface TransportReporter {
  /**
   * Reports an error the transport recovers from on its own (for example a Kafka consumer it
   * restarted after a crash), as an {@link OnceflowError} saying what happens next. Never throws.
   */
  onError(error: OnceflowError): void;
  /**
   * Tells that the consumer (re)joined its group and fetches again, after a start or after a crash it
   * reported through `onError`. Optional: without it the engine learns of the recovery at its next
   * batch. Never throws.
   */
  onJoined?(): void;
}

/** Called for every fetched batch. Batches of one partition never overlap; a batch left unfinished is fetched again. */
export type BatchListener = (batch: TransportBatch, control: BatchControl) => Promise<void>;

/**
 * The consumer side of a Kafka client as the inbox engine sees it. `@onceflow/kafkajs` implements
 * it; any other client (for example @platformatic/kafka) can, without touching the engine.
 * Implementations must not commit offsets on their own and must redeliver unfinished batches.
 * `run` and `stop` are required; `topics` with `ensureTopics` is optional (without it the engine
 * cannot check the dead-letter topics at start), and so are parts of {@link BatchControl}.
 */
export interface ConsumerTransport {
  /** The topics this transport subscribes to. Optional, with `ensureTopics`. */
  readonly topics?: readonly string[];
  /**
   * Finds which of `required` do not exist (or are not visible to this client) and, with `create`,
   * creates them; resolves to those that were missing. Called before `run`. Optional.
   */
  ensureTopics?(required: readonly RequiredTopic[], options: { create: boolean }): Promise<MissingTopic[]>;
  /**
   * Joins the consumer group, subscribes, and starts calling `listener`. Resolves once consuming
   * started. Called once; a second call rejects with OF_ALREADY_STARTED.
   */
  run(listener: BatchListener, reporter?: TransportReporter): Promise<void>;
  /** Stops fetching, waits for running listener calls to return, leaves the group. Idempotent. */
  stop(): Promise<void>;
}
