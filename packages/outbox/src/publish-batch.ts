import diagnosticsChannel from 'node:diagnostics_channel';
import {
  isOnceflowError,
  type LanePublisher,
  type OnceflowError,
  type PublishRecord,
  type RelaySendContext,
  relaySendChannel,
  traceCall,
} from '@onceflow/core';
import type { OutboxRow } from '@onceflow/postgres';

/** What became of a claimed batch. */
export interface BatchOutcome {
  /** Rows the broker acknowledged. */
  published: OutboxRow[];
  /** Rows that can never be published. */
  parked: { row: OutboxRow; error: string }[];
  /** Rows neither published nor parked because an earlier row of their key was parked. */
  heldBack: number;
  /** Rows left unpublished, to be tried again later, because the broker refused their topic. */
  deferred?: OutboxRow[];
}

/** What to do with the rows of a topic the broker refused (OF_TOPIC_MISSING). */
export type RefusedTopicAction = { action: 'defer' } | { action: 'park'; error: string };

/** Decides, per refusal, whether a refused topic's rows wait for another try or are parked. */
export type RefusedTopicPolicy = (topic: string, refusal: OnceflowError) => RefusedTopicAction;

/** Without a policy a refused topic's rows are parked at once. */
const parkAtOnce: RefusedTopicPolicy = (topic, refusal) => ({
  action: 'park',
  error: `topic "${topic}" was refused: ${describe(refusal)}`,
});

const sendTracing = diagnosticsChannel.tracingChannel<unknown, RelaySendContext>(relaySendChannel);

/** Publishes `records`, traced on the relay send channel while someone listens. */
function send(publisher: LanePublisher, records: PublishRecord[]): Promise<void> {
  if (!sendTracing.hasSubscribers) return publisher.publish(records);
  return traceCall(sendTracing, { records }, () => publisher.publish(records));
}

const toRecord = (row: OutboxRow): PublishRecord => ({
  topic: row.topic,
  key: row.key,
  value: row.value,
  headers: row.headers,
});

// Keyless events carry no order, so a parked keyless event holds back nothing but itself.
const orderKey = (row: OutboxRow): string | null =>
  row.key === null ? null : `${row.topic}\u0000${row.key.toString('base64')}`;

const isPermanent = (error: unknown): boolean =>
  isOnceflowError(error, 'OF_PUBLISH_FAILED') && !error.retriable;

function refusedTopicsOf(error: unknown): string[] | undefined {
  if (!isOnceflowError(error, 'OF_TOPIC_MISSING')) return undefined;
  const topics = error.details.refusedTopics;
  return Array.isArray(topics)
    ? topics.filter((topic): topic is string => typeof topic === 'string')
    : undefined;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 2000);
  const cause =
    error.cause instanceof Error && !error.message.includes(error.cause.message)
      ? `: ${error.cause.message}`
      : '';
  return `${error.message}${cause}`.slice(0, 2000);
}

/**
 * Publishes `rows` (in `seq` order) through `publisher`, isolating rows that can never be published:
 * when the whole batch is refused permanently it is split in halves, published in order, until the
 * refused rows are single; those are parked, and later rows of their key are held back so the key's
 * order survives. When the broker refuses a whole topic (OF_TOPIC_MISSING), that topic's rows are
 * deferred or parked as `onRefusedTopic` says and the other topics' rows are published without them
 * (keys never span topics, so no order is broken). Transient failures and fencing propagate, with
 * `outcome` holding what was published before them, so the caller can settle that part.
 */
export async function publishBatch(
  publisher: LanePublisher,
  rows: readonly OutboxRow[],
  outcome: BatchOutcome = { published: [], parked: [], heldBack: 0 },
  onRefusedTopic: RefusedTopicPolicy = parkAtOnce,
): Promise<BatchOutcome> {
  const blocked = new Set(outcome.parked.map(({ row }) => orderKey(row)).filter((key) => key !== null));
  const ready = rows.filter((row) => {
    const key = orderKey(row);
    return key === null || !blocked.has(key);
  });
  outcome.heldBack += rows.length - ready.length;
  if (ready.length === 0) return outcome;
  try {
    await send(publisher, ready.map(toRecord));
    for (const row of ready) outcome.published.push(row);
    return outcome;
  } catch (error) {
    const refusedTopics = refusedTopicsOf(error);
    if (refusedTopics !== undefined)
      return setAsideRefused(
        publisher,
        ready,
        outcome,
        onRefusedTopic,
        error as OnceflowError,
        refusedTopics,
      );
    if (!isPermanent(error)) throw error;
    if (ready.length === 1) {
      outcome.parked.push({ row: ready[0]!, error: describe(error) });
      return outcome;
    }
  }
  const middle = Math.ceil(ready.length / 2);
  await publishBatch(publisher, ready.slice(0, middle), outcome, onRefusedTopic);
  return publishBatch(publisher, ready.slice(middle), outcome, onRefusedTopic);
}

/** Handles a refusal of whole topics: sets their rows aside (deferred or parked) and publishes the rest. */
async function setAsideRefused(
  publisher: LanePublisher,
  ready: readonly OutboxRow[],
  outcome: BatchOutcome,
  onRefusedTopic: RefusedTopicPolicy,
  refusal: OnceflowError,
  refusedTopics: readonly string[],
): Promise<BatchOutcome> {
  const topics = [...new Set(ready.map((row) => row.topic))];
  const refused = new Set(refusedTopics.filter((topic) => topics.includes(topic)));
  if (refused.size === 0) throw refusal;
  if (refused.size === topics.length && topics.length > 1) {
    // The publisher could not tell which topic was refused: split the topics in halves until it can.
    const half = new Set(topics.slice(0, Math.ceil(topics.length / 2)));
    await publishBatch(
      publisher,
      ready.filter((row) => half.has(row.topic)),
      outcome,
      onRefusedTopic,
    );
    return publishBatch(
      publisher,
      ready.filter((row) => !half.has(row.topic)),
      outcome,
      onRefusedTopic,
    );
  }
  for (const topic of refused) {
    const decision = onRefusedTopic(topic, refusal);
    const rowsOfTopic = ready.filter((row) => row.topic === topic);
    if (decision.action === 'defer') {
      outcome.deferred ??= [];
      outcome.deferred.push(...rowsOfTopic);
      continue;
    }
    // The first row of each key is parked; the key's later rows wait behind it, as for any parked row.
    const keys = new Set<string>();
    for (const row of rowsOfTopic) {
      const key = orderKey(row);
      if (key !== null && keys.has(key)) outcome.heldBack++;
      else outcome.parked.push({ row, error: decision.error });
      if (key !== null) keys.add(key);
    }
  }
  return publishBatch(
    publisher,
    ready.filter((row) => !refused.has(row.topic)),
    outcome,
    onRefusedTopic,
  );
}
