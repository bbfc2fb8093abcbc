import { isConnectionError, OnceflowError } from '@onceflow/core';
import type { Pool, PoolClient } from 'pg';
import { holdConnection } from '../connection';
import { createTransactionContext, type TransactionContext } from '../context';
import { describePool } from '../describe-pool';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from '../identifier';
import { schemaMismatch } from '../schema-mismatch';
import { claimRedrives, type DeadLetterRecord, type RedriveOutcome, recordDeadLetter } from './dead-letters';

/** One message to claim: its dedup id and offset. */
export interface InboxClaimEntry {
  readonly id: string;
  /** Kafka offset as a decimal string. */
  readonly offset: string;
}

/** Messages of one partition to claim in the current transaction. */
export interface InboxClaimInput {
  readonly consumer: string;
  readonly topic: string;
  readonly partition: number;
  /**
   * In offset order; ids are printable text (no line breaks), as `resolveMessageId` ensures. An id may repeat: only its first entry can be fresh, later ones are duplicates
   * (all of them advance the position).
   */
  readonly entries: readonly InboxClaimEntry[];
}

/** What a claim found. */
export interface InboxClaim {
  /** The partition's stored next offset before this claim (`"0"` when none was stored). */
  readonly priorNextOffset: string;
  /** Offsets of the entries that are new: not below the position, id not seen before. Handle these. */
  readonly fresh: ReadonlySet<string>;
}

/** An open transaction of the inbox store. */
export interface InboxTransaction<Ctx> {
  /** The handler's view of the transaction. */
  readonly context: Ctx;
  /**
   * Locks the partition's position, advances it past the entries and records the new ids. Must be
   * the first statement of the transaction.
   */
  claim(input: InboxClaimInput): Promise<InboxClaim>;
  commit(): Promise<void>;
  /** Rolls back; never throws (a connection that cannot roll back is dropped, which rolls back too). */
  rollback(): Promise<void>;
  /**
   * True once the transaction's connection failed (server restart, terminated backend, network):
   * whatever failed in the transaction then failed for that reason, not because of a message, and is
   * retried without counting as a handler attempt. Reliable after `rollback()`. Optional: without it
   * the engine judges by the error alone.
   */
  connectionLost?(): boolean;
  /**
   * Ends the transaction by closing its connection and terminating its backend, so that writes a
   * timed-out handler still makes fail instead of committing.
   */
  abandon(): Promise<void>;
  /**
   * Records a dead letter (with its payload, for inspection and redrive) in this transaction, the one
   * that writes the message's inbox row. Optional: a store without it keeps no dead letters, and
   * cannot redrive them.
   */
  recordDeadLetter?(letter: DeadLetterRecord): Promise<void>;
  /**
   * For copies carrying a redrive token (the `onceflow-redrive` header), decides in this transaction
   * whether the handler runs: `redrive` once per requested redrive (the dead letter is marked
   * redriven in this transaction), `done` for further copies, `unknown` when the token is not one of
   * this consumer's. Optional, with {@link recordDeadLetter}.
   */
  claimRedrives?(input: {
    consumer: string;
    redrives: readonly { id: string; token: string }[];
  }): Promise<ReadonlyMap<string, RedriveOutcome>>;
}

/** Outcome of one rotation attempt; see migrations/0001_inbox.sql. */
export type InboxRotation = 'rotated' | 'not-due' | 'retention-pending' | 'no-consumers' | 'lock-timeout';

/** A compare-and-set of one stored position, for {@link InboxStore.resetPosition}. */
export interface InboxPositionReset {
  readonly consumer: string;
  readonly topic: string;
  readonly partition: number;
  /** The next offset the caller found stored (decimal string); nothing changes if it is no longer so. */
  readonly expected: string;
  /** The next offset to store (decimal string). */
  readonly nextOffset: string;
}

/** Storage of the inbox engine. The Postgres implementation is {@link createPgInboxStore}. */
export interface InboxStore<Ctx = TransactionContext> {
  /** Where the store keeps its data, for messages (`Postgres at db:5432 (database app)`). Optional. */
  readonly target?: string;
  /** Opens a transaction. */
  begin(): Promise<InboxTransaction<Ctx>>;
  /**
   * Moves a stored position that no longer fits the partition's log, if it is still `expected` (so
   * that a concurrent owner's progress is never overwritten). True when it was moved.
   */
  resetPosition(reset: InboxPositionReset): Promise<boolean>;
  /**
   * Records a consumer's retention window in milliseconds (kept in whole seconds, rounded up);
   * rotation keeps rows for the longest declared window.
   */
  declareRetention(consumer: string, retentionMs: number): Promise<void>;
  /** Starts a new generation if one is due, truncating the oldest. */
  rotate(): Promise<InboxRotation>;
}

/** Options of {@link createPgInboxStore}. */
export interface PgInboxStoreOptions {
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** Longest wait for the rotation lock, in milliseconds. Default: 2000. */
  rotationLockTimeoutMs?: number;
}

/** The inbox store on a pg Pool, using the functions of migrations/0001_inbox.sql. */
export function createPgInboxStore(
  pool: Pool,
  options: PgInboxStoreOptions = {},
): InboxStore<TransactionContext> {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const quoted = quoteIdentifier(schema);
  const lockTimeoutMs = Math.max(1, Math.floor(options.rotationLockTimeoutMs ?? 2_000));
  const claimSql = `SELECT prior_next_offset::text AS prior, array_to_string(fresh_offsets, ',') AS fresh FROM ${quoted}.inbox_claim($1, $2, $3, string_to_array($4, E'\\n'), string_to_array($5, ',')::bigint[], $6::bigint)`;

  async function begin(): Promise<InboxTransaction<TransactionContext>> {
    const held = await holdConnection(pool);
    const { client } = held;
    try {
      await client.query('BEGIN');
    } catch (error) {
      held.release(true);
      throw error;
    }
    let released = false;
    // Set when the connection failed, also when that showed only as a failed COMMIT or ROLLBACK.
    let lost = false;
    const release = (destroy: boolean): void => {
      if (released) return;
      released = true;
      if (held.lost() !== undefined) lost = true;
      held.release(destroy);
    };
    return {
      context: createTransactionContext(client, { schema }),
      async claim(input) {
        // The function's fast path is a plain INSERT, which a repeated id would turn into a unique
        // violation and the slow path: keep each id's first entry only.
        const seen = new Set<string>();
        const ids: string[] = [];
        const offsets: string[] = [];
        for (const entry of input.entries) {
          if (seen.has(entry.id)) continue;
          // Ids travel as one newline-separated text: far cheaper to build and to split than a
          // Postgres array literal with every element quoted and escaped.
          if (entry.id.includes('\n'))
            throw new OnceflowError(
              'OF_INVALID_MESSAGE_ID',
              `inbox claim: message id at offset ${entry.offset} contains a line break`,
              { details: { topic: input.topic, partition: input.partition, offset: entry.offset } },
            );
          seen.add(entry.id);
          ids.push(entry.id);
          offsets.push(entry.offset);
        }
        const last = input.entries.at(-1);
        const end = last === undefined ? '0' : (BigInt(last.offset) + 1n).toString();
        const { rows } = await client
          .query<{ prior: string; fresh: string }>(claimSql, [
            input.consumer,
            input.topic,
            input.partition,
            ids.join('\n'),
            offsets.join(','),
            end,
          ])
          .catch((error: unknown) => {
            throw schemaMismatch(error, schema);
          });
        const row = rows[0]!;
        return { priorNextOffset: row.prior, fresh: new Set(row.fresh === '' ? [] : row.fresh.split(',')) };
      },
      async commit() {
        try {
          await client.query('COMMIT');
          release(false);
        } catch (error) {
          if (isConnectionError(error)) lost = true;
          release(true);
          throw error;
        }
      },
      async rollback() {
        if (released) return;
        try {
          await client.query('ROLLBACK');
          release(false);
        } catch {
          // A connection that cannot even roll back is gone.
          lost = true;
          release(true);
        }
      },
      connectionLost: () => lost || held.lost() !== undefined,
      recordDeadLetter: (letter) =>
        recordDeadLetter(client, schema, letter).catch((error: unknown) => {
          throw schemaMismatch(error, schema);
        }),
      claimRedrives: (input) =>
        claimRedrives(client, schema, input).catch((error: unknown) => {
          throw schemaMismatch(error, schema);
        }),
      async abandon() {
        if (released) return;
        const pid = (client as PoolClient & { processID?: number }).processID;
        release(true);
        if (typeof pid === 'number')
          await pool.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined);
      },
    };
  }

  return {
    target: describePool(pool),
    begin,
    async resetPosition(reset) {
      const { rowCount } = await pool.query(
        `UPDATE ${quoted}.inbox_position SET next_offset = $5::bigint, updated_at = now()
          WHERE consumer = $1 AND topic = $2 AND kafka_partition = $3 AND next_offset = $4::bigint`,
        [reset.consumer, reset.topic, reset.partition, reset.expected, reset.nextOffset],
      );
      return rowCount === 1;
    },
    async declareRetention(consumer, retentionMs) {
      const retentionSeconds = Math.ceil(retentionMs / 1000);
      await pool
        .query(
          `INSERT INTO ${quoted}.inbox_retention (consumer, retention_seconds) VALUES ($1, $2)
         ON CONFLICT (consumer) DO UPDATE SET retention_seconds = EXCLUDED.retention_seconds, declared_at = now()`,
          [consumer, retentionSeconds],
        )
        .catch((error: unknown) => {
          throw schemaMismatch(error, schema);
        });
      // Dead-lettering writes here (migration 0005): a schema without it fails now, at start, not
      // with the first poison message.
      await pool.query(`SELECT 1 FROM ${quoted}.dead_letter LIMIT 0`).catch((error: unknown) => {
        throw schemaMismatch(error, schema);
      });
    },
    async rotate() {
      const held = await holdConnection(pool);
      const { client } = held;
      let broken = false;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${lockTimeoutMs}`);
        const { rows } = await client.query<{ outcome: InboxRotation }>(
          `SELECT ${quoted}.inbox_rotate() AS outcome`,
        );
        await client.query('COMMIT');
        return rows[0]!.outcome;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if ((error as { code?: unknown }).code === '55P03') return 'lock-timeout';
        throw error;
      } finally {
        held.release(broken);
      }
    },
  };
}
