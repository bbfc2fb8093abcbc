import { isOnceflowError, type LanePublisher, type PublishRecord } from '@onceflow/core';
import type { OutboxRow } from '@onceflow/postgres';

/** What became of a claimed batch. */
export interface BatchOutcome {
  /** Rows the broker acknowledged. */
  published: OutboxRow[];
  /** Rows that can never be published. */
  parked: { row: OutboxRow; error: string }[];
  /** Rows neither published nor parked because an earlier row of their key was parked. */
  heldBack: number;
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
 * order survives. Transient failures and fencing propagate, with `outcome` holding what was published
 * before them, so the caller can settle that part.
 */
export async function publishBatch(
  publisher: LanePublisher,
  rows: readonly OutboxRow[],
  outcome: BatchOutcome = { published: [], parked: [], heldBack: 0 },
): Promise<BatchOutcome> {
  const blocked = new Set(outcome.parked.map(({ row }) => orderKey(row)).filter((key) => key !== null));
  const ready = rows.filter((row) => {
    const key = orderKey(row);
    return key === null || !blocked.has(key);
  });
  outcome.heldBack += rows.length - ready.length;
  if (ready.length === 0) return outcome;
  try {
    await publisher.publish(ready.map(toRecord));
    for (const row of ready) outcome.published.push(row);
    return outcome;
  } catch (error) {
    if (!isPermanent(error)) throw error;
    if (ready.length === 1) {
      outcome.parked.push({ row: ready[0]!, error: describe(error) });
      return outcome;
    }
  }
  const middle = Math.ceil(ready.length / 2);
  await publishBatch(publisher, ready.slice(0, middle), outcome);
  return publishBatch(publisher, ready.slice(middle), outcome);
}
