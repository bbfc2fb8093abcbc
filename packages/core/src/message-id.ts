import { cloudEventsIdHeader, type MessageHeaders, messageIdHeader } from './envelope';

/** Longest accepted message id in characters; longer ids are invalid rather than truncated. */
export const maxMessageIdLength = 200;

/** Why an id was refused, for dead-letter headers and logs. */
export type InvalidIdReason = 'missing' | 'empty' | 'too-long' | 'not-text';

/** The outcome of looking for a message's id. */
export type MessageIdResult =
  | { ok: true; id: string; source: 'header' | 'cloudevents' | 'custom' | 'position' }
  | { ok: false; reason: InvalidIdReason; detail: string };

/** The raw fields an id may be derived from. */
export interface IdSourceMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  headers: MessageHeaders;
}

/** User-supplied id extraction; return undefined to fall through to the missing-id policy. */
export type MessageIdExtractor = (message: IdSourceMessage) => string | undefined;

/**
 * What to do with a message that has no id: `derive-from-position` uses `topic/partition/offset`
 * (protects against redelivery only, not against a producer sending the same event twice);
 * `dead-letter` refuses it.
 */
export type MissingIdPolicy = 'derive-from-position' | 'dead-letter';

/** The policies {@link MissingIdPolicy} accepts, for option validation. */
export const missingIdPolicies: readonly MissingIdPolicy[] = ['derive-from-position', 'dead-letter'];

/** Options of {@link resolveMessageId}. */
export interface ResolveMessageIdOptions {
  /** Header holding the id. Default: `message-id`. */
  header?: string;
  /** Custom extractor tried before the headers. */
  extract?: MessageIdExtractor;
  /** Policy for messages without id. Default: `dead-letter`. */
  onMissing?: MissingIdPolicy;
}

// Printable text only: control characters and U+FFFD (what invalid UTF-8 decodes to) mark binary garbage.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to reject control characters.
const unprintable = /[\u0000-\u001f\u007f\ufffd]/;

function check(
  raw: string | Buffer | undefined,
  source: 'header' | 'cloudevents' | 'custom',
): MessageIdResult | undefined {
  if (raw === undefined) return undefined;
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.length === 0) return { ok: false, reason: 'empty', detail: `${source} id is empty` };
  if (text.length > maxMessageIdLength)
    return {
      ok: false,
      reason: 'too-long',
      detail: `${source} id has ${text.length} characters, limit ${maxMessageIdLength}`,
    };
  if (unprintable.test(text))
    return { ok: false, reason: 'not-text', detail: `${source} id is not printable UTF-8 text` };
  return { ok: true, id: text, source };
}

/**
 * Finds a message's dedup id: the custom extractor, then the `message-id` header (or the configured
 * one), then CloudEvents' `ce_id`; without any, the missing-id policy decides. An id that is present
 * but absurd (empty, too long, not text) is always invalid: guessing would break deduplication.
 */
export function resolveMessageId(
  message: IdSourceMessage,
  options: ResolveMessageIdOptions = {},
): MessageIdResult {
  const custom = options.extract?.(message);
  const found =
    check(custom, 'custom') ??
    check(message.headers[options.header ?? messageIdHeader], 'header') ??
    check(message.headers[cloudEventsIdHeader], 'cloudevents');
  if (found) return found;
  if ((options.onMissing ?? 'dead-letter') === 'derive-from-position')
    return { ok: true, id: `${message.topic}/${message.partition}/${message.offset}`, source: 'position' };
  return { ok: false, reason: 'missing', detail: 'message has no id header and the policy is dead-letter' };
}
