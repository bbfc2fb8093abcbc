import type { OnceflowAdmin } from '@onceflow/postgres';

/**
 * The admin functions the console calls: the seam between its pages and `createOnceflowAdmin`.
 * Every action the console offers runs one of these, the same functions the `onceflow` command
 * runs; the console implements none of them. Pass your own (e.g. a wrapper that adds checks) as the
 * `admin` option.
 */
export type ConsoleAdmin = Pick<
  OnceflowAdmin,
  | 'schema'
  | 'outboxStatus'
  | 'inboxStatus'
  | 'flowCounters'
  | 'traceMessage'
  | 'listParkedEvents'
  | 'unparkEvents'
  | 'dropParkedEvents'
  | 'listDeadLetters'
  | 'getDeadLetter'
  | 'redriveDeadLetters'
  | 'listIdempotencyKeys'
  | 'getIdempotencyKey'
>;
