import type {
  BatchControl,
  LogOffsets,
  OutboxEvent,
  TransactionalOutbox,
  TransportBatch,
  TransportMessage,
} from '@onceflow/core';
import type { InboxClaim, InboxClaimInput, InboxStore, InboxTransaction } from '@onceflow/postgres';

/** The handler context of the in-memory store: an outbox and a list of effects, both transactional. */
export interface FakeContext {
  outbox: TransactionalOutbox;
  /** Records an effect; rejects once the transaction was abandoned or its connection lost. */
  write(effect: string): Promise<void>;
  /** Simulates the transaction's connection dying (server restart, terminated backend). */
  loseConnection(): void;
}

/** An in-memory InboxStore with the same claim semantics as the Postgres one (one writer at a time). */
export function createFakeStore() {
  const inbox = new Set<string>();
  const positions = new Map<string, bigint>();
  const effects: string[] = [];
  const outbox: OutboxEvent[] = [];
  const log: string[] = [];
  let abandoned = 0;
  let failNextClaims = 0;
  let failClaimWith: unknown;

  const store: InboxStore<FakeContext> = {
    async begin(): Promise<InboxTransaction<FakeContext>> {
      const staged = { inbox: [] as string[], effects: [] as string[], outbox: [] as OutboxEvent[] };
      let position: [string, bigint] | undefined;
      let state: 'open' | 'done' | 'abandoned' = 'open';
      let lost = false;
      const assertOpen = (): void => {
        if (lost) throw new Error('Client has encountered a connection error and is not queryable');
        if (state !== 'open') throw new Error(`transaction is ${state}`);
      };
      return {
        context: {
          outbox: {
            async enqueue(event) {
              assertOpen();
              staged.outbox.push(event);
              return event.id ?? 'generated';
            },
          },
          async write(effect) {
            assertOpen();
            staged.effects.push(effect);
          },
          loseConnection() {
            lost = true;
          },
        },
        connectionLost: () => lost,
        async claim(input: InboxClaimInput): Promise<InboxClaim> {
          assertOpen();
          if (failNextClaims > 0) {
            failNextClaims--;
            throw failClaimWith;
          }
          const key = `${input.consumer}|${input.topic}|${input.partition}`;
          const prior = positions.get(key) ?? 0n;
          const fresh = new Set<string>();
          let last = prior;
          for (const entry of input.entries) {
            const offset = BigInt(entry.offset);
            if (offset + 1n > last) last = offset + 1n;
            const id = `${input.consumer}|${entry.id}`;
            if (offset < prior || inbox.has(id) || staged.inbox.includes(id)) continue;
            staged.inbox.push(id);
            fresh.add(entry.offset);
          }
          position = [key, last];
          return { priorNextOffset: prior.toString(), fresh };
        },
        async commit() {
          assertOpen();
          state = 'done';
          for (const id of staged.inbox) inbox.add(id);
          effects.push(...staged.effects);
          outbox.push(...staged.outbox);
          if (position) positions.set(position[0], position[1]);
          log.push('db-commit');
        },
        async rollback() {
          if (state === 'open') state = 'done';
        },
        async abandon() {
          state = 'abandoned';
          abandoned++;
        },
      };
    },
    async resetPosition(reset) {
      const key = `${reset.consumer}|${reset.topic}|${reset.partition}`;
      if ((positions.get(key) ?? 0n).toString() !== reset.expected) return false;
      positions.set(key, BigInt(reset.nextOffset));
      log.push(`reset-position ${reset.nextOffset}`);
      return true;
    },
    async declareRetention() {},
    async rotate() {
      return 'not-due';
    },
  };
  return {
    store,
    inbox,
    positions,
    effects,
    outbox,
    log,
    abandonedCount: () => abandoned,
    /** Makes the next `count` claims throw `error` (a database outage or a lost race). */
    failClaims(count: number, error: unknown) {
      failNextClaims = count;
      failClaimWith = error;
    },
  };
}

/** A BatchControl that records what the engine asked for; `logOffsets` answers with `log`. */
export function createFakeControl(log: string[] = [], partitionLog: LogOffsets = { start: '0', end: '0' }) {
  let active = true;
  const commits: string[] = [];
  const seeks: string[] = [];
  let pauses = 0;
  let logOffsetCalls = 0;
  const control: BatchControl = {
    pause() {
      pauses++;
    },
    async logOffsets() {
      logOffsetCalls++;
      return partitionLog;
    },
    isActive: () => active,
    async commit(nextOffset) {
      commits.push(nextOffset);
      log.push(`offset-commit ${nextOffset}`);
    },
    seek(nextOffset) {
      seeks.push(nextOffset);
    },
    async heartbeat() {},
  };
  return {
    control,
    commits,
    seeks,
    pauses: () => pauses,
    logOffsetCalls: () => logOffsetCalls,
    revoke() {
      active = false;
    },
  };
}

/** A batch of messages with the given ids (null: no id header) at consecutive offsets. */
export function batchOf(
  ids: (string | null)[],
  options: {
    topic?: string;
    partition?: number;
    firstOffset?: number;
    timestamp?: number;
    highWatermark?: number;
  } = {},
): TransportBatch {
  const first = options.firstOffset ?? 0;
  const messages: TransportMessage[] = ids.map((id, index) => ({
    offset: String(first + index),
    timestamp: options.timestamp ?? Date.now(),
    key: Buffer.from(`k${index}`),
    value: Buffer.from(JSON.stringify({ n: first + index })),
    headers: id === null ? {} : { 'message-id': id },
  }));
  return {
    topic: options.topic ?? 'orders',
    partition: options.partition ?? 0,
    messages,
    ...(options.highWatermark === undefined ? {} : { highWatermark: String(options.highWatermark) }),
  };
}
