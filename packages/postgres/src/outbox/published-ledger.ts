import { quoteIdentifier } from '../identifier';
import type { PgQueryable } from '../queryable';

/** What a call of {@link rotatePublishedLedger} did. */
export type PublishedLedgerRotation = 'rotated' | 'not-due' | 'retention-pending' | 'lock-timeout';

/**
 * Starts the next generation of the published ledger when due (migration 0006), truncating the slot of
 * the generation that left the retention window: the longest window the inbox consumers declared, or
 * `defaultRetentionSeconds` when none did.
 */
export async function rotatePublishedLedger(
  queryable: PgQueryable,
  options: { schema: string; defaultRetentionSeconds: number },
): Promise<PublishedLedgerRotation> {
  const { rows } = await queryable.query<{ outcome: PublishedLedgerRotation }>(
    `SELECT ${quoteIdentifier(options.schema)}.outbox_published_rotate($1) AS outcome`,
    [options.defaultRetentionSeconds],
  );
  return rows[0]!.outcome;
}
