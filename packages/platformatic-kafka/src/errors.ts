import { OnceflowError } from '@onceflow/core';

interface PlatformaticErrorLike {
  apiCode?: unknown;
  apiId?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** Kafka protocol error codes found anywhere in a @platformatic/kafka error (retries and responses nest them). */
export function protocolCodes(error: unknown, found = new Set<number>(), depth = 0): Set<number> {
  if (depth > 8 || error === null || typeof error !== 'object') return found;
  const e = error as PlatformaticErrorLike;
  if (typeof e.apiCode === 'number') found.add(e.apiCode);
  protocolCodes(e.cause, found, depth + 1);
  if (Array.isArray(e.errors)) for (const inner of e.errors) protocolCodes(inner, found, depth + 1);
  return found;
}

/**
 * Topics the client itself reported unknown: @platformatic/kafka checks the metadata before sending and
 * fails with a UserError "Unknown topic <name>." rather than asking the broker.
 */
export function unknownTopics(error: unknown, found = new Set<string>(), depth = 0): Set<string> {
  if (depth > 8 || error === null || typeof error !== 'object') return found;
  const message = (error as { message?: unknown }).message;
  const match = typeof message === 'string' ? /^Unknown topic (.+)\.$/.exec(message) : null;
  if (match?.[1] !== undefined) found.add(match[1]);
  const e = error as PlatformaticErrorLike;
  unknownTopics(e.cause, found, depth + 1);
  if (Array.isArray(e.errors)) for (const inner of e.errors) unknownTopics(inner, found, depth + 1);
  return found;
}

/** The messages of an error and of the errors it wraps, joined: @platformatic/kafka nests the broker's answer. */
export function describeError(error: unknown, depth = 0): string {
  if (!(error instanceof Error)) return String(error);
  const inner = (error as PlatformaticErrorLike).errors;
  const nested =
    depth < 3 && Array.isArray(inner) && inner.length > 0
      ? ` (${[...new Set(inner.map((e) => describeError(e, depth + 1)))].join('; ')})`
      : '';
  return `${error.message}${nested}`;
}

// Errors that mean a newer producer with our transactional id exists: we were fenced.
const fencedCodes = new Set([47 /* INVALID_PRODUCER_EPOCH */, 90 /* PRODUCER_FENCED */]);
// Errors that will recur for these records however often they are retried.
const permanentCodes = new Set([
  10 /* MESSAGE_TOO_LARGE */, 18 /* RECORD_LIST_TOO_LARGE */, 87 /* INVALID_RECORD */,
]);
// Refusals of a whole topic: the other topics of the call may well succeed.
const topicRefusals = new Map<number, { means: string; retriable: boolean }>([
  [3 /* UNKNOWN_TOPIC_OR_PARTITION */, { means: 'does not exist', retriable: true }],
  [29 /* TOPIC_AUTHORIZATION_FAILED */, { means: 'may not be written by this client', retriable: true }],
  [17 /* INVALID_TOPIC_EXCEPTION */, { means: 'is not a valid topic name', retriable: false }],
]);

/** A topic refusal naming `topics`. */
export function topicRefused(
  error: unknown,
  fencingId: string,
  codes: number[],
  topics: readonly string[],
  refusal: { means: string; retriable: boolean },
): OnceflowError {
  const names = topics.map((topic) => `"${topic}"`).join(', ');
  const message = describeError(error);
  return new OnceflowError(
    'OF_TOPIC_MISSING',
    topics.length === 1
      ? `topic ${names} ${refusal.means} (broker: ${message})`
      : `one of the topics ${names} ${refusal.means} (broker: ${message})`,
    { cause: error, retriable: refusal.retriable, details: { fencingId, codes, refusedTopics: [...topics] } },
  );
}

/**
 * Maps a @platformatic/kafka failure to the relay's error contract (see core's `LanePublisher`).
 * `topics` are the topics of the failed call: a topic refusal names them all in
 * `details.refusedTopics`, since the broker's answer does not say which one it refused.
 */
export function classifyPublishError(
  error: unknown,
  fencingId: string,
  topics: readonly string[] = [],
): OnceflowError {
  const codes = [...protocolCodes(error)];
  const message = describeError(error);
  if (codes.some((code) => fencedCodes.has(code)))
    return new OnceflowError(
      'OF_LEASE_LOST',
      `publisher ${fencingId} was fenced by a newer one: ${message}`,
      {
        cause: error,
        details: { fencingId },
      },
    );
  const unknown = [...unknownTopics(error)].filter((topic) => topics.length === 0 || topics.includes(topic));
  if (unknown.length > 0)
    return topicRefused(error, fencingId, [3, ...codes], unknown, {
      means: 'does not exist',
      retriable: true,
    });
  const refusal = codes.map((code) => topicRefusals.get(code)).find((found) => found !== undefined);
  if (refusal !== undefined && topics.length > 0)
    return topicRefused(error, fencingId, codes, topics, refusal);
  if (codes.some((code) => permanentCodes.has(code)))
    return new OnceflowError('OF_PUBLISH_FAILED', `broker refused the records: ${message}`, {
      cause: error,
      retriable: false,
      details: { fencingId, codes },
    });
  return new OnceflowError('OF_PUBLISH_FAILED', `publish failed, will retry: ${message}`, {
    cause: error,
    retriable: true,
    details: { fencingId, codes },
  });
}
