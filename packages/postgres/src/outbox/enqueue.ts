import { createHash } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import {
  messageIdHeader,
  newEventId,
  OnceflowError,
  type OutboxEnqueueMessage,
  type OutboxEvent,
  outboxEnqueueChannel,
} from '@onceflow/core';
import { sql } from 'drizzle-orm';
import { defaultSchemaName, quoteIdentifier } from '../identifier';
import { isPgQueryable, type TransactionExecutor } from '../queryable';

/**
 * Number of lanes the outbox spreads keys over. A lane is the unit a relay owns; all events of one
 * (topic, key) fall in one lane. Changing it reorders keys in flight, so it is fixed per release.
 */
export const outboxLaneCount = 16;

const enqueueChannel = diagnosticsChannel.channel(outboxEnqueueChannel);

/** A row ready for the enqueue function. */
interface EncodedEvent {
  eventId: string;
  lane: number;
  lockKey: number | null;
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headerNames: string[];
  headerValues: Buffer[];
}

function invalidEvent(message: string): never {
  throw new OnceflowError('OF_INVALID_EVENT', `outbox event: ${message}`);
}

function toBuffer(value: string | Buffer | Uint8Array): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function encodeValue(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || value instanceof Uint8Array) return toBuffer(value);
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** The lane and the 32-bit lock key of a (topic, key); both derived from one hash so they agree. */
export function laneOf(topic: string, key: Buffer): { lane: number; lockKey: number } {
  const digest = createHash('sha1').update(topic).update('\u0000').update(key).digest();
  return { lane: digest.readUInt32BE(0) % outboxLaneCount, lockKey: digest.readInt32BE(4) };
}

const isBytes = (value: unknown): value is string | Uint8Array =>
  typeof value === 'string' || value instanceof Uint8Array;

/**
 * The headers to write: the event's own, plus whatever subscribers of the enqueue channel add (trace
 * context). The channel is only published to while someone listens, so it costs nothing otherwise.
 */
function headersOf(
  event: OutboxEvent,
  id: string,
  schema: string,
): Record<string, string | Buffer> | undefined {
  if (!enqueueChannel.hasSubscribers) return event.headers;
  const message: OutboxEnqueueMessage = { event, id, schema, headers: { ...event.headers } };
  enqueueChannel.publish(message);
  return message.headers;
}

/**
 * Validates and encodes an event for `schema`'s outbox; throws OF_INVALID_EVENT for what can never
 * be published.
 */
export function encodeOutboxEvent(event: OutboxEvent, schema: string = defaultSchemaName): EncodedEvent {
  if (event === null || typeof event !== 'object') invalidEvent('an event must be an object with a topic');
  if (typeof event.topic !== 'string' || event.topic.length === 0 || event.topic.length > 249)
    invalidEvent('topic must be a non-empty string of at most 249 characters');
  if (event.id !== undefined && (typeof event.id !== 'string' || event.id.length === 0))
    invalidEvent('id must be a non-empty string when given');
  if (event.key !== null && event.key !== undefined && !isBytes(event.key))
    invalidEvent('key must be a string, a Buffer or null');
  const eventId = event.id ?? newEventId();
  const key = event.key === null || event.key === undefined ? null : toBuffer(event.key);
  const headerNames: string[] = [messageIdHeader];
  const headerValues: Buffer[] = [Buffer.from(eventId, 'utf8')];
  const headers = headersOf(event, eventId, schema);
  for (const name in headers) {
    const value = headers[name];
    if (name === messageIdHeader || value === undefined) continue;
    if (!isBytes(value)) invalidEvent(`header ${name} must be a string or a Buffer`);
    headerNames.push(name);
    headerValues.push(toBuffer(value));
  }
  const route =
    key === null
      ? { lane: Math.floor(Math.random() * outboxLaneCount), lockKey: null }
      : laneOf(event.topic, key);
  return {
    eventId,
    ...route,
    topic: event.topic,
    key,
    value: encodeValue(event.value),
    headerNames,
    headerValues,
  };
}

/**
 * Writes one event into the outbox of the caller's open transaction and returns its id. Nothing
 * is sent: the relay publishes it once the transaction commits, and never if it rolls back. Events
 * with a key wait for any other open transaction that enqueued the same (topic, key), which is what
 * makes their publish order equal their commit order. An event that can never be published is
 * refused with OF_INVALID_EVENT. Subscribers of the `onceflow:outbox:enqueue` diagnostics channel
 * may add headers (trace context) on the way.
 */
export async function enqueue(
  tx: TransactionExecutor,
  event: OutboxEvent,
  options: { schema?: string } = {},
): Promise<string> {
  const schema = options.schema ?? defaultSchemaName;
  const fn = `${quoteIdentifier(schema)}.enqueue`;
  const row = encodeOutboxEvent(event, schema);
  const values = [
    row.eventId,
    row.lane,
    row.lockKey,
    row.topic,
    row.key,
    row.value,
    row.headerNames,
    row.headerValues,
  ];
  if (isPgQueryable(tx)) {
    await tx.query(
      `SELECT ${fn}($1, $2::smallint, $3::integer, $4, $5::bytea, $6::bytea, $7::text[], $8::bytea[])`,
      values,
    );
  } else {
    // sql.param: a bare JS array in drizzle's template becomes a list of parameters, `($7, $8)`;
    // the header arrays must reach Postgres as one array parameter each.
    await tx.execute(
      sql`SELECT ${sql.raw(fn)}(${row.eventId}, ${row.lane}::smallint, ${row.lockKey}::integer, ${row.topic}, ${row.key}::bytea, ${row.value}::bytea, ${sql.param(row.headerNames)}::text[], ${sql.param(row.headerValues)}::bytea[])`,
    );
  }
  return row.eventId;
}
