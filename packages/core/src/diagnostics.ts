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
