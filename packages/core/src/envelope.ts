/** Kafka header values as clients deliver them. */
export type HeaderValue = Buffer | string | undefined;

/** Headers of a consumed message, by lower-case or original name as the producer sent them. */
export type MessageHeaders = Record<string, HeaderValue>;

/** A consumed Kafka message as onceflow hands it to a handler. */
export interface InboundMessage {
  /** The dedup id this message was recognised by (see `resolveMessageId`). */
  readonly id: string;
  /** Where the id came from. `position` ids protect against redelivery only, not republishing. */
  readonly idSource: 'header' | 'cloudevents' | 'custom' | 'position';
  readonly topic: string;
  readonly partition: number;
  /** Kafka offset as a decimal string (offsets exceed 2^53). */
  readonly offset: string;
  /** Broker or producer timestamp, milliseconds since the epoch. */
  readonly timestamp: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: MessageHeaders;
}

/** Header that carries the message id across every hop; the outbox relay always sets it. */
export const messageIdHeader = 'message-id';

/**
 * Header of a dead letter's redrive copy: the token of the redrive an operator requested. The inbox
 * runs the handler for a copy whose id it has seen only when the token matches a pending redrive of
 * that consumer's dead letter, once (see docs/operations.md).
 */
export const redriveHeader = 'onceflow-redrive';

/** CloudEvents' Kafka binding carries the event id in this header. */
export const cloudEventsIdHeader = 'ce_id';

/** Reads a header as UTF-8 text, or undefined when absent. */
export function headerText(headers: MessageHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** Parses a message value as JSON. Throws a SyntaxError for invalid JSON and returns null for no value. */
export function valueAsJson<T = unknown>(message: Pick<InboundMessage, 'value'>): T | null {
  return message.value === null ? null : (JSON.parse(message.value.toString('utf8')) as T);
}

/** An event to publish through the outbox. */
export interface OutboxEvent {
  /** Destination topic. */
  topic: string;
  /** Partitioning key; events with the same topic and key are published in commit order. */
  key?: string | Buffer | null;
  /** Plain objects and arrays become JSON; Buffer/Uint8Array are sent as is; strings as UTF-8. */
  value: unknown;
  /** Extra headers. `message-id` is set by onceflow and cannot be overridden here (use `id`). */
  headers?: Record<string, string | Buffer>;
  /** The event id (becomes the `message-id` header). Default: a new UUIDv7. */
  id?: string;
}

/** The outbox as seen from inside one transaction: enqueued events commit or roll back with it. */
export interface TransactionalOutbox {
  /** Writes one outbox row in the current transaction; nothing is sent yet. Resolves to the event id. */
  enqueue(event: OutboxEvent): Promise<string>;
}
