import { createHash } from 'node:crypto';
import type { InboundMessage, OutboxEvent } from '@onceflow/core';
import { messageIdHeader } from '@onceflow/core';
import type { DeadLetterReason } from './options';

/**
 * Headers onceflow adds to a dead-lettered record. The original key, value and headers are kept
 * (the original `message-id` moves to `onceflow-dlq-message-id`; the record gets its own id).
 */
export const deadLetterHeaders = Object.freeze({
  /** Why: `handler-failed`, `invalid-id` or `too-old`. */
  reason: 'onceflow-dlq-reason',
  /** The last error message (handler error, or what is wrong with the id), at most 1000 characters. */
  error: 'onceflow-dlq-error',
  /** Handler attempts made, as a decimal string (`0` when the handler never ran). */
  attempts: 'onceflow-dlq-attempts',
  /** Topic the message was consumed from. */
  originTopic: 'onceflow-dlq-origin-topic',
  /** Partition it was consumed from, decimal. */
  originPartition: 'onceflow-dlq-origin-partition',
  /** Its offset there, decimal. */
  originOffset: 'onceflow-dlq-origin-offset',
  /** The consumer name that gave up. */
  consumer: 'onceflow-dlq-consumer',
  /** The id the inbox recorded it under (for `invalid-id`, `topic/partition/offset`). */
  messageId: 'onceflow-dlq-message-id',
});

/** Longest error text put into a header. */
const maxErrorLength = 1000;

function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > maxErrorLength ? `${text.slice(0, maxErrorLength - 1)}…` : text;
}

/**
 * The outbox event that dead-letters `message`. Its id is derived from consumer and message id, so a
 * dead letter written twice by mistake would still be recognised downstream.
 */
export function deadLetterEvent(
  message: InboundMessage,
  details: { consumer: string; topic: string; reason: DeadLetterReason; error: unknown; attempts: number },
): OutboxEvent {
  const headers: Record<string, string | Buffer> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (value !== undefined && name !== messageIdHeader) headers[name] = value;
  }
  headers[deadLetterHeaders.reason] = details.reason;
  headers[deadLetterHeaders.error] = errorText(details.error);
  headers[deadLetterHeaders.attempts] = String(details.attempts);
  headers[deadLetterHeaders.originTopic] = message.topic;
  headers[deadLetterHeaders.originPartition] = String(message.partition);
  headers[deadLetterHeaders.originOffset] = message.offset;
  headers[deadLetterHeaders.consumer] = details.consumer;
  headers[deadLetterHeaders.messageId] = message.id;
  const id = `dlq-${createHash('sha256').update(details.consumer).update('\u0000').update(message.id).digest('hex').slice(0, 32)}`;
  return { topic: details.topic, key: message.key, value: message.value, headers, id };
}
