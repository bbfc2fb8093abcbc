/** One record the outbox relay hands to a publisher. */
export interface PublishRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Always contains `message-id`. */
  headers: Record<string, Buffer>;
}

/**
 * The publisher of one outbox lane. A publish is all-or-nothing for consumers reading committed
 * data: either every record of the call becomes visible, in order, or none does.
 *
 * Errors are {@link OnceflowError}s the relay branches on:
 * - `OF_LEASE_LOST`: a newer publisher with the same fencing id fenced this one; it must be closed,
 *   and after reopening only lanes whose lease is confirmed again may be published.
 * - `OF_PUBLISH_FAILED` with `retriable: true`: transient (broker unreachable, leader moving);
 *   publish the same records again later.
 * - `OF_PUBLISH_FAILED` with `retriable: false`: at least one record can never be published (too
 *   large, rejected as invalid); the relay narrows down which and parks it.
 * - `OF_TOPIC_MISSING` with `details.refusedTopics` (string[]): the broker refused a whole topic (it
 *   does not exist, this client may not write to it, its name is invalid) and the records of the other
 *   topics may succeed. `refusedTopics` names the refused topics, or every topic of the call when the
 *   publisher cannot tell which (the relay then splits the call by topic). `retriable: false` when the
 *   refusal can never change (an invalid name).
 *
 * After any failed publish the relay publishes nothing more through the same publisher: part of
 * the failed call may have reached the broker, so it reopens one (and confirms its leases) first.
 */
export interface LanePublisher {
  /** Publishes `records` in order; resolves once the broker acknowledged all of them from all in-sync replicas. */
  publish(records: readonly PublishRecord[]): Promise<void>;
  /** Releases the lane's connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * What the relay engine needs from a Kafka client. Implemented for kafkajs in `@onceflow/kafkajs`;
 * another client can implement it without the engine changing.
 */
export interface PublisherTransport {
  /**
   * Opens a publisher under `fencingId` (a relay's id, recorded on the lanes it holds); opening a
   * publisher with it must fence every earlier publisher opened with the same id. A relay taking a
   * lane over opens (and closes) one with the previous holder's id, so that a relay which lost the
   * lane cannot publish behind the new owner's back.
   */
  openLane(fencingId: string): Promise<LanePublisher>;
  /** Releases whatever the transport shares between lanes. Safe to call twice. */
  close(): Promise<void>;
}
