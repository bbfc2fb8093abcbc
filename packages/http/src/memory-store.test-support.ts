// An in-memory IdempotencyKeyStore for unit tests: transactions work on a copy that replaces the
// committed state only when the work resolves, and per-key locks behave like advisory xact locks.
import { randomUUID } from 'node:crypto';
import type { OutboxEvent } from '@onceflow/core';
import type {
  IdempotencyKeyRecord,
  IdempotencyKeyStore,
  IdempotencyKeyTransaction,
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

  async transaction<T>(work: (tx: IdempotencyKeyTransaction) => Promise<T>): Promise<T> {
    this.transactions++;
    const rows = new Map([...this.rows].map(([k, v]) => [k, { ...v }]));
    const outbox: OutboxEvent[] = [];
    const held: Array<() => void> = [];
    const name = (scope: string, key: string): string => `${scope}\u0000${key}`;
    const context = {
      db: undefined,
      client: undefined,
      outbox: {
        enqueue: async (event: OutboxEvent) => {
          outbox.push(event);
          return randomUUID();
        },
      },
    } as unknown as TransactionContext;
    const find = (scope: string, key: string): Row | undefined => rows.get(name(scope, key));
    const byId = (id: string): Row => [...rows.values()].find((row) => row.id === id)!;
    const take = (lock: string): void => {
      let release!: () => void;
      this.locks.set(
        lock,
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      );
      held.push(() => {
        this.locks.delete(lock);
        release();
      });
    };
    const tx: IdempotencyKeyTransaction = {
      context,
      tryLock: async (scope, key) => {
        if (this.locks.has(name(scope, key))) return false;
        take(name(scope, key));
        return true;
      },
      lock: async (scope, key) => {
        while (this.locks.has(name(scope, key))) await this.locks.get(name(scope, key));
        take(name(scope, key));
      },
      find: async (scope, key) => {
        const row = find(scope, key);
        if (!row) return undefined;
        const remaining = row.lockedUntil === null ? 0 : Math.max(0, row.lockedUntil - this.now);
        const record: IdempotencyKeyRecord = {
          ...row,
          leaseLive: remaining > 0,
          leaseRemainingMs: remaining,
          expired: row.expiresAt <= this.now,
        };
        return record;
      },
      remove: async (id) => {
        const row = byId(id);
        rows.delete(name(row.scope, row.key));
      },
      insert: async (row) => {
        const id = String(this.nextId++);
        const done = row.response !== null;
        rows.set(name(row.scope, row.key), {
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
        });
        return id;
      },
      advance: async (id, next) => {
        Object.assign(byId(id), {
          recoveryPoint: next.recoveryPoint,
          phaseData: structuredClone(next.phaseData),
          leaseToken: next.leaseToken,
          lockedUntil: this.now + next.leaseMs,
        });
      },
      complete: async (id, response) => {
        Object.assign(byId(id), { state: 'completed', response, leaseToken: null, lockedUntil: null });
      },
      takeLease: async (id, leaseToken, leaseMs) => {
        Object.assign(byId(id), { leaseToken, lockedUntil: this.now + leaseMs });
      },
    };
    try {
      const result = await work(tx);
      this.rows = rows;
      this.outbox.push(...outbox);
      return result;
    } finally {
      for (const release of held) release();
    }
  }

  async releaseLease(id: string, leaseToken: string): Promise<void> {
    const row = [...this.rows.values()].find((r) => r.id === id);
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
