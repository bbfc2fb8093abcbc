// The contract between the idempotency engine and its key storage. The Postgres implementation is
// pg-key-store.ts; its statement machinery is key-statements.ts.
import type { TransactionContext } from '../context';

/** A response as stored for replay: exactly the bytes that were sent the first time. */
export interface StoredResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** What a completer needs to rebuild a request it finishes on its own (multi-phase routes only). */
export interface StoredRequest {
  method: string;
  url: string;
  params: Record<string, string>;
  /** The headers kept for the completer: content type and the fingerprinted ones, lower case. */
  headers: Record<string, string>;
  /** How `request_body` is to be read back: JSON text, UTF-8 text, opaque bytes, or no body. */
  bodyType: 'json' | 'text' | 'bytes' | 'none';
}

/** One idempotency key as a claiming transaction sees it; the lease is judged by the database clock. */
export interface IdempotencyKeyRecord {
  requestId: string;
  scope: string;
  key: string;
  fingerprint: Buffer;
  route: string;
  state: 'in_progress' | 'completed';
  recoveryPoint: string;
  phaseData: unknown;
  request: StoredRequest | null;
  requestBody: Buffer | null;
  response: StoredResponse | null;
  leaseToken: string | null;
  /** True while another process may still be working on this key. */
  leaseLive: boolean;
  /** Milliseconds until the lease runs out; 0 when it has. */
  leaseRemainingMs: number;
}

/**
 * What claiming a key found, with the key's lock held: `busy` when another transaction holds the
 * lock (only when not waiting for it), `absent` for a key never seen or whose completed record
 * expired (deleted in this transaction), `found` with the record otherwise.
 */
export type KeyClaim =
  | { status: 'busy' }
  | { status: 'absent' }
  | { status: 'found'; record: IdempotencyKeyRecord };

/** A key written by the first phase of a request. */
export interface NewIdempotencyKey {
  requestId: string;
  scope: string;
  key: string;
  fingerprint: Buffer;
  route: string;
  recoveryPoint: string;
  phaseData: unknown;
  request: StoredRequest | null;
  requestBody: Buffer | null;
  /** Set when the first phase already produced the response: the key is written completed. */
  response: StoredResponse | null;
  /** Lease of an unfinished request; ignored when `response` is set. */
  leaseToken: string;
  /** Lease length in milliseconds. */
  leaseMs: number;
  /** Time to live of the key in milliseconds, counted from now. */
  retentionMs: number;
}

/**
 * The key writes of one claiming transaction. Each records the key's new state; it is sent in one
 * round trip together with COMMIT, after the phase's own writes, so it is the transaction's last
 * statement and at most one may be made per transaction.
 */
export interface IdempotencyKeyTransaction {
  /** The handler's view of the same transaction (drizzle, raw client, outbox). */
  readonly context: TransactionContext;
  /** Writes the key's first record: completed when it carries a response, else in progress under a lease. */
  insert(row: NewIdempotencyKey): void;
  /** Commits a recovery point and extends the lease of `leaseToken`. */
  advance(next: { recoveryPoint: string; phaseData: unknown; leaseToken: string; leaseMs: number }): void;
  /** Marks the key completed with its response and drops the lease. */
  complete(response: StoredResponse): void;
}

/** A key that is unfinished and whose lease ran out: a completer may take it over. */
export interface AbandonedKey {
  scope: string;
  key: string;
}

/**
 * A key as read without its lock ({@link IdempotencyKeyStore.peek}): a committed state that may
 * already be stale when it arrives, except that a completed key stays completed until it expires.
 */
export interface IdempotencyKeySnapshot {
  state: 'in_progress' | 'completed';
  fingerprint: Buffer;
  /** The stored response of a completed key; null while in progress. */
  response: StoredResponse | null;
  /** True while a process may still be working on an unfinished key. */
  leaseLive: boolean;
  /** Milliseconds until the lease runs out; 0 when it has. */
  leaseRemainingMs: number;
}

/** Whether {@link IdempotencyKeyStore.claim} waits for a key's lock. */
export interface ClaimOptions {
  /** Wait for the lock instead of reporting `busy`. */
  wait: boolean;
}

/** Storage of idempotency keys. The Postgres one is {@link createPgIdempotencyKeyStore}; tests use fakes. */
export interface IdempotencyKeyStore {
  /** Runs `work` in one transaction without a key: commit when it resolves, rollback when it throws. */
  transaction<T>(work: (context: TransactionContext) => Promise<T>): Promise<T>;
  /**
   * Opens a transaction, takes the key's transaction-scoped lock, reads the key and runs `work`
   * with what it found; commits (with the key write `work` made, if any) when `work` resolves and
   * rolls back when it throws. The lock is held until then, so `work` is the key's only writer.
   */
  claim<T>(
    scope: string,
    key: string,
    options: ClaimOptions,
    work: (claim: KeyClaim, tx: IdempotencyKeyTransaction) => Promise<T>,
  ): Promise<T>;
  /**
   * Reads a key's committed state without taking its lock and without a transaction, so it never
   * waits for nor blocks a request running the key. A completed key past its expiry reads as
   * absent (undefined), as it would when claimed.
   */
  peek(scope: string, key: string): Promise<IdempotencyKeySnapshot | undefined>;
  /** Ends the lease of `leaseToken` at once, so a retry may resume without waiting for it to run out. */
  releaseLease(scope: string, key: string, leaseToken: string): Promise<void>;
  /** Unfinished keys whose lease ran out at least `idleMs` ago, oldest first. */
  findAbandoned(limit: number, idleMs: number): Promise<AbandonedKey[]>;
  /** Deletes one batch of expired completed keys; resolves to the number deleted. Never touches unfinished keys. */
  reapExpired(batchSize: number): Promise<number>;
}
