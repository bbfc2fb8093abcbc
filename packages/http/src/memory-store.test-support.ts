// An in-memory IdempotencyKeyStore for unit tests: transactions work on a copy that replaces the
// committed state only when the work resolves, and per-key locks behave like advisory xact locks.
import { randomUUID } from 'node:crypto';
import type { OutboxEvent } from '@onceflow/core';
import type {
  ClaimOptions,
  IdempotencyKeyRecord,
  IdempotencyKeySnapshot,
  IdempotencyKeyStore,
  IdempotencyKeyTransaction,
  KeyClaim,
  StoredRequest,
  StoredResponse,
  TransactionContext,
} from '@onceflow/postgres';

interface Row {
  id: string;
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
  lockedUntil: number | null;
  expiresAt: number;
}

export class MemoryKeyStore implements IdempotencyKeyStore {
  now = 1_000_000;
  rows = new Map<string, Row>();
  outbox: OutboxEvent[] = [];
  transactions = 0;
  private readonly locks = new Map<string, Promise<void>>();
  private nextId = 1;

  private context(outbox: OutboxEvent[]): TransactionContext {
    return {
      db: undefined,
      client: undefined,
      outbox: {
        enqueue: async (event: OutboxEvent) => {
          outbox.push(event);
          return randomUUID();
        },
      },
    } as unknown as TransactionContext;
  }

  async transaction<T>(work: (context: TransactionContext) => Promise<T>): Promise<T> {
    this.transactions++;
    const outbox: OutboxEvent[] = [];
    const result = await work(this.context(outbox));
    this.outbox.push(...outbox);
    return result;
  }

  async claim<T>(
    scope: string,
    key: string,
    options: ClaimOptions,
    work: (claim: KeyClaim, tx: IdempotencyKeyTransaction) => Promise<T>,
  ): Promise<T> {
    this.transactions++;
    const name = `${scope}\u0000${key}`;
    if (options.wait) while (this.locks.has(name)) await this.locks.get(name);
    else if (this.locks.has(name)) return work({ status: 'busy' }, this.writer(scope, key, []));
    let release!: () => void;
    this.locks.set(
      name,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    try {
      const rows = new Map([...this.rows].map(([k, v]) => [k, { ...v }]));
      let row = rows.get(name);
      if (row && row.state === 'completed' && row.expiresAt <= this.now) {
        rows.delete(name);
        row = undefined;
      }
      let claim: KeyClaim = { status: 'absent' };
      if (row) {
        const remaining = row.lockedUntil === null ? 0 : Math.max(0, row.lockedUntil - this.now);
        const { id: _id, lockedUntil: _lockedUntil, expiresAt: _expiresAt, ...fields } = row;
        const record: IdempotencyKeyRecord = {
          ...fields,
          leaseLive: remaining > 0,
          leaseRemainingMs: remaining,
        };
        claim = { status: 'found', record };
      }
      const outbox: OutboxEvent[] = [];
      const writes: Array<(rows: Map<string, Row>) => void> = [];
      const result = await work(claim, this.writer(scope, key, writes, outbox));
      for (const write of writes) write(rows);
      this.rows = rows;
      this.outbox.push(...outbox);
      return result;
    } finally {
      this.locks.delete(name);
      release();
    }
  }

  private writer(
    scope: string,
    key: string,
    writes: Array<(rows: Map<string, Row>) => void>,
    outbox: OutboxEvent[] = [],
  ): IdempotencyKeyTransaction {
    const name = `${scope}\u0000${key}`;
    const stage = (write: (rows: Map<string, Row>) => void): void => {
      if (writes.length > 0) throw new Error('one key write per transaction');
      writes.push(write);
    };
    return {
      context: this.context(outbox),
      insert: (row) => {
        const done = row.response !== null;
        const id = String(this.nextId++);
        const stored: Row = {
          id,
          requestId: row.requestId,
          scope: row.scope,
          key: row.key,
          fingerprint: row.fingerprint,
          route: row.route,
          state: done ? 'completed' : 'in_progress',
          recoveryPoint: row.recoveryPoint,
          phaseData: structuredClone(row.phaseData),
          request: row.request,
          requestBody: row.requestBody,
          response: row.response,
          leaseToken: done ? null : row.leaseToken,
          lockedUntil: done ? null : this.now + row.leaseMs,
          expiresAt: this.now + row.retentionMs,
        };
        stage((rows) => {
          if (rows.has(name)) throw new Error(`duplicate key ${name}`);
          rows.set(name, stored);
        });
      },
      advance: (next) => {
        const lockedUntil = this.now + next.leaseMs;
        const phaseData = structuredClone(next.phaseData);
        stage((rows) => {
          Object.assign(rows.get(name)!, {
            recoveryPoint: next.recoveryPoint,
            phaseData,
            leaseToken: next.leaseToken,
            lockedUntil,
          });
        });
      },
      complete: (response) => {
        stage((rows) => {
          Object.assign(rows.get(name)!, {
            state: 'completed',
            response,
            leaseToken: null,
            lockedUntil: null,
            requestBody: null,
          });
        });
      },
    };
  }

  peeks = 0;

  async peek(scope: string, key: string): Promise<IdempotencyKeySnapshot | undefined> {
    this.peeks++;
    const row = this.rows.get(`${scope}\u0000${key}`);
    if (!row || (row.state === 'completed' && row.expiresAt <= this.now)) return undefined;
    const remaining = row.lockedUntil === null ? 0 : Math.max(0, row.lockedUntil - this.now);
    return {
      state: row.state,
      fingerprint: row.fingerprint,
      response: row.response,
      leaseLive: remaining > 0,
      leaseRemainingMs: remaining,
    };
  }

  async releaseLease(scope: string, key: string, leaseToken: string): Promise<void> {
    const row = this.rows.get(`${scope}\u0000${key}`);
    if (row && row.leaseToken === leaseToken && row.state === 'in_progress') row.lockedUntil = this.now;
  }
  async findAbandoned(limit: number, idleMs: number) {
    return [...this.rows.values()]
      .filter((row) => row.state === 'in_progress' && (row.lockedUntil ?? 0) <= this.now - idleMs)
      .slice(0, limit)
      .map(({ scope, key }) => ({ scope, key }));
  }

  async reapExpired(batchSize: number): Promise<number> {
    const expired = [...this.rows]
      .filter(([, row]) => row.state === 'completed' && row.expiresAt <= this.now)
      .slice(0, batchSize);
    for (const [name] of expired) this.rows.delete(name);
    return expired.length;
  }
}
