import type { IdempotencyKeyInfo, OnceflowAdmin } from '@onceflow/postgres';

/** A dead letter as the console shows it. */
export interface ConsoleDeadLetter {
  /** The dead letter's identity, as the redrive verb takes it. */
  id: string;
  consumer: string;
  messageId: string;
  topic: string;
  partition: number;
  /** Decimal string. */
  offset: string;
  /** Why it was dead-lettered (`handler-failed`, `invalid-id`, `too-old`, …). */
  reason: string;
  error: string;
  attempts: number;
  deadLetteredAt: Date;
  /** `dead` until redriven; then what the redrive reports (e.g. `redriven`, `processed`). */
  state: string;
  headers?: Readonly<Record<string, string>>;
  key?: Buffer | null;
  value?: Buffer | null;
}

/** The dead-letter verbs the console calls; absent while the admin library has none. */
export interface ConsoleDeadLetterVerbs {
  /** Dead letters, newest first, optionally of one consumer, topic or message id. */
  list(filter: {
    consumer?: string;
    topic?: string;
    messageId?: string;
    limit: number;
  }): Promise<ConsoleDeadLetter[]>;
  /** One dead letter with its headers and payload, or null. */
  get(id: string): Promise<ConsoleDeadLetter | null>;
  /** Redrives the dead letters `ids` (each exactly once); resolves to how many were redriven. */
  redrive(ids: readonly string[]): Promise<number>;
  /** How many dead letters wait for a decision. */
  count(): Promise<number>;
}

/** An idempotency key with what it stored, as the console shows it. */
export interface ConsoleIdempotencyKey extends IdempotencyKeyInfo {
  responseBody?: Buffer | null;
  responseHeaders?: Readonly<Record<string, unknown>> | null;
}

/**
 * The admin functions the console calls: the seam between the pages and `createOnceflowAdmin`. Every
 * write the console offers goes through one of these, the same functions the `onceflow` command
 * runs; the console implements none of them.
 */
export interface ConsoleAdmin
  extends Pick<
    OnceflowAdmin,
    | 'schema'
    | 'outboxStatus'
    | 'outboxTopology'
    | 'flowCounters'
    | 'listParkedEvents'
    | 'unparkEvents'
    | 'listPositions'
    | 'listIdempotencyKeys'
    | 'traceMessage'
  > {
  /** Drops parked events for good; absent while the admin library has no such verb. */
  dropParkedEvents?: (eventIds: readonly string[]) => Promise<number>;
  /** One key with its stored response; absent while the admin library has no such verb. */
  getIdempotencyKey?: (scope: string, key: string) => Promise<ConsoleIdempotencyKey | null>;
  /** Dead letters; absent while the admin library has none. */
  deadLetters?: ConsoleDeadLetterVerbs;
}

/** The console's view of an {@link OnceflowAdmin}: its verbs, mapped to the shapes the pages show. */
export function consoleAdminOf(admin: OnceflowAdmin): ConsoleAdmin {
  return {
    schema: admin.schema,
    outboxStatus: () => admin.outboxStatus(),
    outboxTopology: () => admin.outboxTopology(),
    flowCounters: () => admin.flowCounters(),
    listParkedEvents: (options) => admin.listParkedEvents(options),
    unparkEvents: (options) => admin.unparkEvents(options),
    listPositions: (options) => admin.listPositions(options),
    listIdempotencyKeys: (options) => admin.listIdempotencyKeys(options),
    traceMessage: (messageId) => admin.traceMessage(messageId),
  };
}
