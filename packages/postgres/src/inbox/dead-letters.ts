import { messageIdHeader, OnceflowError, type OutboxEvent, redriveHeader } from '@onceflow/core';
import type { Pool } from 'pg';
import { holdConnection } from '../connection';
import { quoteIdentifier } from '../identifier';
import { enqueue } from '../outbox/enqueue';
import type { PgQueryable } from '../queryable';

/** Where a dead letter stands: dead, a redrive requested (its copy on the way), or redriven. */
export type DeadLetterState = 'dead' | 'redrive_requested' | 'redriven';

/** Why a message was dead-lettered (the inbox's `DeadLetterReason`). */
export type DeadLetterReasonName = 'handler-failed' | 'invalid-id' | 'too-old';

/** What the inbox records about a message it dead-letters, in the message's own transaction. */
export interface DeadLetterRecord {
  readonly consumer: string;
  /** The id the inbox recorded the message under. */
  readonly messageId: string;
  readonly topic: string;
  readonly partition: number;
  /** Kafka offset, a decimal string. */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The message's headers as consumed (a redrive token header is not kept). */
  readonly headers: Readonly<Record<string, string | Buffer | undefined>>;
  readonly reason: DeadLetterReasonName;
  /** The onceflow error code it was reported with. */
  readonly errorCode: string;
  readonly errorMessage: string;
  /** Handler attempts made (0 when the handler never ran). */
  readonly attempts: number;
}

/** A dead letter as operators list it: everything but the payload. */
export interface DeadLetter {
  consumer: string;
  messageId: string;
  topic: string;
  partition: number;
  /** Kafka offset, a decimal string. */
  offset: string;
  /** The message key, decoded as UTF-8; null when the message had none. */
  key: string | null;
  reason: DeadLetterReasonName;
  errorCode: string;
  errorMessage: string;
  attempts: number;
  deadLetteredAt: Date;
  state: DeadLetterState;
  /** Redrives requested so far. */
  redrives: number;
  redriveRequestedAt: Date | null;
  redrivenAt: Date | null;
  /** Size of the payload in bytes; null when the message had no value. */
  payloadBytes: number | null;
}

/** A dead letter with its payload and headers, for `getDeadLetter`. */
export interface DeadLetterDetail extends DeadLetter {
  /** The raw key. */
  keyBytes: Buffer | null;
  /** The message value as consumed. */
  payload: Buffer | null;
  /** The headers as consumed. */
  headers: Record<string, Buffer>;
  /** The token of the latest redrive; null before the first. */
  redriveToken: string | null;
}

/** Which dead letters a listing or a redrive selects; every field narrows it. */
export interface DeadLetterFilter {
  /** Only this consumer's. */
  consumer?: string;
  /** Only those consumed from this topic. */
  topic?: string;
  /** Only those dead-lettered for this reason. */
  reason?: DeadLetterReasonName;
  /** Only those in this state. */
  state?: DeadLetterState;
}

/** What a redrive of one dead letter found, for a request naming messages. */
export interface RedriveSkipped {
  messageId: string;
  /** Why it was not redriven: its state, or `missing`. */
  state: DeadLetterState | 'missing';
}

/** The outcome of {@link requestRedrive}. */
export interface RedriveResult {
  /** True when nothing was changed (a dry run). */
  dryRun: boolean;
  /** The dead letters redriven (or, in a dry run, that would be). */
  redriven: DeadLetter[];
  /** Named message ids that were not redriven, and why. Empty when selecting by filter. */
  skipped: RedriveSkipped[];
}

/** How the inbox treats a copy carrying a redrive token, decided in its transaction. */
export type RedriveOutcome = 'redrive' | 'done' | 'unknown';

const columns = `consumer, message_id, topic, kafka_partition, kafka_offset::text, key, reason, error_code,
  error_message, attempts, dead_lettered_at, state, redrives, redrive_requested_at, redriven_at,
  octet_length(payload) AS payload_bytes`;

type Row = {
  consumer: string;
  message_id: string;
  topic: string;
  kafka_partition: number;
  kafka_offset: string;
  key: Buffer | null;
  reason: DeadLetterReasonName;
  error_code: string;
  error_message: string;
  attempts: number;
  dead_lettered_at: Date;
  state: DeadLetterState;
  redrives: number;
  redrive_requested_at: Date | null;
  redriven_at: Date | null;
  payload_bytes: number | null;
};

function fromRow(row: Row): DeadLetter {
  return {
    consumer: row.consumer,
    messageId: row.message_id,
    topic: row.topic,
    partition: row.kafka_partition,
    offset: row.kafka_offset,
    key: row.key === null ? null : row.key.toString('utf8'),
    reason: row.reason,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    attempts: row.attempts,
    deadLetteredAt: row.dead_lettered_at,
    state: row.state,
    redrives: row.redrives,
    redriveRequestedAt: row.redrive_requested_at,
    redrivenAt: row.redriven_at,
    payloadBytes: row.payload_bytes,
  };
}

const states: readonly DeadLetterState[] = ['dead', 'redrive_requested', 'redriven'];
const reasons: readonly DeadLetterReasonName[] = ['handler-failed', 'invalid-id', 'too-old'];

function checkFilter(verb: string, filter: DeadLetterFilter): void {
  if (filter.state !== undefined && !states.includes(filter.state))
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      `onceflow admin ${verb}: state must be one of ${states.join(', ')} (got ${String(filter.state)})`,
    );
  if (filter.reason !== undefined && !reasons.includes(filter.reason))
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      `onceflow admin ${verb}: reason must be one of ${reasons.join(', ')} (got ${String(filter.reason)})`,
    );
}

/** Records a dead letter in the open transaction of `queryable` (the one writing its inbox row). */
export async function recordDeadLetter(
  queryable: PgQueryable,
  schema: string,
  letter: DeadLetterRecord,
): Promise<void> {
  const names: string[] = [];
  const values: Buffer[] = [];
  for (const [name, value] of Object.entries(letter.headers)) {
    if (value === undefined || name === redriveHeader) continue;
    names.push(name);
    values.push(typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
  }
  await queryable.query(
    `INSERT INTO ${quoteIdentifier(schema)}.dead_letter AS d
       (consumer, message_id, topic, kafka_partition, kafka_offset, key, payload, header_names, header_values,
        reason, error_code, error_message, attempts)
     VALUES ($1, $2, $3, $4, $5::bigint, $6, $7, $8::text[], $9::bytea[], $10, $11, $12, $13)
     ON CONFLICT (consumer, message_id) DO UPDATE SET
       topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition, kafka_offset = EXCLUDED.kafka_offset,
       key = EXCLUDED.key, payload = EXCLUDED.payload, header_names = EXCLUDED.header_names,
       header_values = EXCLUDED.header_values, reason = EXCLUDED.reason, error_code = EXCLUDED.error_code,
       error_message = EXCLUDED.error_message, attempts = EXCLUDED.attempts, dead_lettered_at = now(),
       state = 'dead', redriven_at = NULL`,
    [
      letter.consumer,
      letter.messageId,
      letter.topic,
      letter.partition,
      letter.offset,
      letter.key,
      letter.value,
      names,
      values,
      letter.reason,
      letter.errorCode,
      letter.errorMessage,
      letter.attempts,
    ],
  );
}

/**
 * Decides, in the open transaction of the inbox, what to do with consumed copies carrying a redrive
 * token: `redrive` when the token is that of a pending redrive of this consumer's dead letter (which
 * is flipped to `redriven` here, so the flip commits or rolls back with the handler's effects);
 * `done` when the token is known but its redrive is no longer pending (a second copy: a duplicate);
 * `unknown` when this consumer has no dead letter with that token (the copy is an ordinary message to
 * it, e.g. for another consumer group of the topic).
 */
export async function claimRedrives(
  queryable: PgQueryable,
  schema: string,
  input: { consumer: string; redrives: readonly { id: string; token: string }[] },
): Promise<Map<string, RedriveOutcome>> {
  const table = `${quoteIdentifier(schema)}.dead_letter`;
  const { rows } = await queryable.query<{ message_id: string; outcome: RedriveOutcome }>(
    `WITH asked AS (SELECT * FROM unnest($2::text[], $3::text[]) AS a(message_id, token)),
     flipped AS (
       UPDATE ${table} d SET state = 'redriven', redriven_at = now()
         FROM asked a
        WHERE d.consumer = $1 AND d.message_id = a.message_id AND d.redrive_token = a.token
          AND d.state = 'redrive_requested'
       RETURNING d.message_id)
     SELECT a.message_id,
            CASE WHEN f.message_id IS NOT NULL THEN 'redrive'
                 WHEN d.message_id IS NOT NULL THEN 'done'
                 ELSE 'unknown' END AS outcome
       FROM asked a
       LEFT JOIN flipped f ON f.message_id = a.message_id
       LEFT JOIN ${table} d ON d.consumer = $1 AND d.message_id = a.message_id AND d.redrive_token = a.token`,
    [input.consumer, input.redrives.map((r) => r.id), input.redrives.map((r) => r.token)],
  );
  return new Map(rows.map((row) => [row.message_id, row.outcome]));
}

/** Dead letters matching `filter`, oldest first, at most `limit`. */
export async function listDeadLetters(
  queryable: PgQueryable,
  options: DeadLetterFilter & { schema: string; limit: number },
): Promise<DeadLetter[]> {
  checkFilter('listDeadLetters', options);
  const { rows } = await queryable.query<Row>(
    `SELECT ${columns} FROM ${quoteIdentifier(options.schema)}.dead_letter
      WHERE ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR topic = $2)
        AND ($3::text IS NULL OR reason = $3) AND ($4::text IS NULL OR state = $4)
      ORDER BY dead_lettered_at, consumer, message_id LIMIT $5`,
    [
      options.consumer ?? null,
      options.topic ?? null,
      options.reason ?? null,
      options.state ?? null,
      options.limit,
    ],
  );
  return rows.map(fromRow);
}

/** One dead letter with its payload and headers, or undefined when there is none. */
export async function getDeadLetter(
  queryable: PgQueryable,
  options: { schema: string; consumer: string; messageId: string },
): Promise<DeadLetterDetail | undefined> {
  const { rows } = await queryable.query<FullRow>(
    `SELECT ${columns}, payload, header_names, header_values, redrive_token
       FROM ${quoteIdentifier(options.schema)}.dead_letter WHERE consumer = $1 AND message_id = $2`,
    [options.consumer, options.messageId],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  const headers: Record<string, Buffer> = {};
  row.header_names.forEach((name, index) => {
    headers[name] = row.header_values[index]!;
  });
  return {
    ...fromRow(row),
    keyBytes: row.key,
    payload: row.payload,
    headers,
    redriveToken: row.redrive_token,
  };
}

/** Options of {@link requestRedrive}: one consumer's dead letters, by id or by filter. */
export interface RedriveOptions {
  /** The consumer whose dead letters to redrive. Required. */
  consumer: string;
  /** Only these messages (by the id the inbox recorded). Default: every dead letter the filter selects. */
  messageIds?: readonly string[];
  /** Only those consumed from this topic. */
  topic?: string;
  /** Only those dead-lettered for this reason. */
  reason?: DeadLetterReasonName;
  /** Most dead letters redriven in one call, oldest first. Default: 100. */
  limit?: number;
  /** List what would be redriven and change nothing. Required: a redrive is a decision. */
  dryRun: boolean;
}

/** A dead letter row with everything needed to re-produce it. */
type FullRow = Row & {
  payload: Buffer | null;
  header_names: string[];
  header_values: Buffer[];
  redrive_token: string | null;
};

/** The outbox event that re-produces a dead letter for its redrive. */
function redriveCopy(letter: FullRow): OutboxEvent {
  const headers: Record<string, Buffer | string> = {};
  letter.header_names.forEach((name, index) => {
    if (name !== messageIdHeader && name !== redriveHeader) headers[name] = letter.header_values[index]!;
  });
  headers[redriveHeader] = letter.redrive_token!;
  // The relay sends the event id as `message-id`: the copy carries the id the inbox recorded.
  return { topic: letter.topic, key: letter.key, value: letter.payload, headers, id: letter.message_id };
}

/**
 * Redrives dead letters in state `dead`: in one transaction each is moved to `redrive_requested`
 * with a new token and a copy of its message is enqueued into the outbox (original topic, key, value
 * and headers, `message-id` the original id, `onceflow-redrive` the token), which the relay publishes.
 * The inbox then runs the handler for that copy exactly once (see claimRedrives). With `dryRun`,
 * only lists them.
 */
export async function requestRedrive(
  pool: Pool,
  options: Omit<RedriveOptions, 'limit'> & { schema: string; limit: number },
): Promise<RedriveResult> {
  checkFilter('redriveDeadLetters', options);
  if (typeof options.consumer !== 'string' || options.consumer === '')
    throw new OnceflowError('OF_INVALID_ARGUMENT', 'onceflow admin redriveDeadLetters: consumer is required');
  if (typeof options.dryRun !== 'boolean')
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      'onceflow admin redriveDeadLetters: dryRun is required (true lists what would be redriven, false redrives)',
    );
  const table = `${quoteIdentifier(options.schema)}.dead_letter`;
  const ids = options.messageIds === undefined ? null : [...options.messageIds];
  const selected = `SELECT consumer, message_id FROM ${table}
     WHERE consumer = $1 AND state = 'dead' AND ($2::text[] IS NULL OR message_id = ANY($2::text[]))
       AND ($3::text IS NULL OR topic = $3) AND ($4::text IS NULL OR reason = $4)
     ORDER BY dead_lettered_at, message_id LIMIT $5`;
  const params = [options.consumer, ids, options.topic ?? null, options.reason ?? null, options.limit];
  const full = `SELECT ${columns}, payload, header_names, header_values, redrive_token FROM ${table}`;
  const held = await holdConnection(pool);
  const { client } = held;
  let broken = false;
  try {
    await client.query('BEGIN');
    let letters: FullRow[];
    if (options.dryRun) {
      letters = (
        await client.query<FullRow>(
          `${full} WHERE (consumer, message_id) IN (${selected}) ORDER BY dead_lettered_at, message_id`,
          params,
        )
      ).rows;
    } else {
      // FOR UPDATE: two redrives at once take turns, and the second finds the rows no longer dead.
      const { rows: marked } = await client.query<{ message_id: string }>(
        `UPDATE ${table} d SET state = 'redrive_requested', redrive_token = gen_random_uuid()::text,
                redrive_requested_at = now(), redriven_at = NULL, redrives = d.redrives + 1
          WHERE (d.consumer, d.message_id) IN (${selected} FOR UPDATE)
         RETURNING d.message_id`,
        params,
      );
      letters = (
        await client.query<FullRow>(
          `${full} WHERE consumer = $1 AND message_id = ANY($2::text[]) ORDER BY dead_lettered_at, message_id`,
          [options.consumer, marked.map((row) => row.message_id)],
        )
      ).rows;
      for (const letter of letters) await enqueue(client, redriveCopy(letter), { schema: options.schema });
    }
    const skipped: RedriveSkipped[] = [];
    if (ids !== null) {
      const found = new Set(letters.map((letter) => letter.message_id));
      const missing = ids.filter((id) => !found.has(id));
      if (missing.length > 0) {
        const { rows } = await client.query<{ message_id: string; state: DeadLetterState }>(
          `SELECT message_id, state FROM ${table} WHERE consumer = $1 AND message_id = ANY($2::text[])`,
          [options.consumer, missing],
        );
        const states = new Map(rows.map((row) => [row.message_id, row.state]));
        for (const id of missing) skipped.push({ messageId: id, state: states.get(id) ?? 'missing' });
      }
    }
    await client.query('COMMIT');
    return { dryRun: options.dryRun, redriven: letters.map(fromRow), skipped };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    held.release(broken);
  }
}
