import { createHash } from 'node:crypto';
import type { InboundMessage, OutboxEvent } from '@onceflow/core';
import { headerText, messageIdHeader, redriveHeader } from '@onceflow/core';
import type { InboxClaim, InboxTransaction } from '@onceflow/postgres';
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
    // A redrive copy's token means nothing on the dead-letter topic.
    if (value !== undefined && name !== messageIdHeader && name !== redriveHeader) headers[name] = value;
  }
  headers[deadLetterHeaders.reason] = details.reason;
  headers[deadLetterHeaders.error] = errorText(details.error);
  headers[deadLetterHeaders.attempts] = String(details.attempts);
  headers[deadLetterHeaders.originTopic] = message.topic;
  headers[deadLetterHeaders.originPartition] = String(message.partition);
  headers[deadLetterHeaders.originOffset] = message.offset;
  headers[deadLetterHeaders.consumer] = details.consumer;
  headers[deadLetterHeaders.messageId] = message.id;
  const hash = createHash('sha256').update(details.consumer).update('\u0000').update(message.id);
  // A redrive copy dead-lettered again is a new dead letter: its record gets an id of its own.
  const token = redriveToken(message);
  if (token !== undefined) hash.update('\u0000').update(token);
  const id = `dlq-${hash.digest('hex').slice(0, 32)}`;
  return { topic: details.topic, key: message.key, value: message.value, headers, id };
}

/** Errors as the dead-letter table keeps them: the same text as the dead-letter header. */
export const deadLetterErrorText = errorText;

const tokenPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The redrive token a message carries (see `redriveHeader`), or undefined. */
function redriveToken(message: InboundMessage): string | undefined {
  if (message.headers[redriveHeader] === undefined) return undefined;
  const token = headerText(message.headers, redriveHeader);
  return token !== undefined && tokenPattern.test(token) ? token : undefined;
}

/**
 * The offsets of `entries` to handle in this transaction: the claim's fresh ones, adjusted for
 * redrive copies. A copy of a dead letter carries the id the inbox already recorded, so the claim
 * calls it a duplicate; when it also carries the token of a pending redrive of this consumer's dead
 * letter, the store marks that redrive done in this same transaction and the copy is handled. Every
 * other copy of that redrive is then a duplicate, whether the id's inbox row still exists or not.
 * Only the first entry of an id, at or beyond the stored position, is considered, as in the claim.
 */
export async function acceptRedrives(
  tx: Pick<InboxTransaction<unknown>, 'claimRedrives'>,
  consumer: string,
  entries: readonly { message: InboundMessage; invalid: string | undefined }[],
  claim: InboxClaim,
): Promise<ReadonlySet<string>> {
  if (tx.claimRedrives === undefined) return claim.fresh;
  if (!entries.some((entry) => entry.message.headers[redriveHeader] !== undefined)) return claim.fresh;
  const prior = BigInt(claim.priorNextOffset);
  const seen = new Set<string>();
  const asked = new Map<string, { offset: string; token: string }>();
  for (const { message, invalid } of entries) {
    if (seen.has(message.id)) continue;
    seen.add(message.id);
    const token = invalid === undefined ? redriveToken(message) : undefined;
    if (token !== undefined && BigInt(message.offset) >= prior)
      asked.set(message.id, { offset: message.offset, token });
  }
  if (asked.size === 0) return claim.fresh;
  const outcomes = await tx.claimRedrives({
    consumer,
    redrives: [...asked].map(([id, { token }]) => ({ id, token })),
  });
  const fresh = new Set(claim.fresh);
  for (const [id, { offset }] of asked) {
    const outcome = outcomes.get(id);
    if (outcome === 'redrive') fresh.add(offset);
    else if (outcome === 'done') fresh.delete(offset);
  }
  return fresh;
}
