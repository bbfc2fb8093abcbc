import { defaultSchemaName, invalidOptions } from '@onceflow/core';
import type { FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import type { ConsoleAdmin } from './admin-seam';

/**
 * What the console needs from a Kafka admin client to show lag: the high watermark of each partition.
 * A connected kafkajs `Admin` (`kafka.admin()`) fits as it is.
 */
export interface ConsoleKafkaOffsets {
  fetchTopicOffsets(topic: string): Promise<{ partition: number; high: string }[]>;
}

/** One action taken through the console, as the audit log receives it. */
export interface ConsoleAuditEntry {
  /** When the action ran (ISO 8601). */
  at: string;
  /** Who: the identity the auth hook returned, or `token` for a holder of the access token. */
  who: string;
  /** The client's address and user agent. */
  from: { ip: string; userAgent: string | null };
  /** `redrive`, `unpark` or `drop`. */
  action: string;
  /** The ids acted on. */
  ids: readonly string[];
  /** How many the admin function reported done; null when it failed. */
  done: number | null;
  /** The failure's message, when it failed. */
  error?: string;
}

/** Options of {@link createConsole}. */
export interface ConsoleOptions {
  /** The pool the admin functions query through; the console never ends it. Required unless `admin` is given. */
  pool?: Pool;
  /** Schema holding onceflow's tables. Default: `onceflow`. */
  schema?: string;
  /** The admin functions to call instead of `createOnceflowAdmin({ pool, schema })`'s. Default: none. */
  admin?: ConsoleAdmin;
  /** A Kafka admin (e.g. a connected kafkajs `Admin`), for lag against the high watermarks. Default: none (no lag shown). */
  kafka?: ConsoleKafkaOffsets;
  /**
   * The access token: writes (redrive, unpark, drop) need a session opened with it, and so does every
   * page for a client that is not on the loopback interface. At least 16 characters. Default: none
   * (writes refused; only loopback clients served).
   */
  token?: string;
  /**
   * Your own authentication instead of, or beside, the token: resolves to who the request is (shown
   * in the audit log) or null. Default: none.
   */
  authenticate?: (request: FastifyRequest) => string | null | Promise<string | null>;
  /** Refuses every write, whoever asks. Default: false. */
  readOnly?: boolean;
  /** Receives every write action. Default: an `info` entry on the request's logger. */
  auditLog?: (entry: ConsoleAuditEntry) => void | Promise<void>;
  /** How often the overview refreshes, in milliseconds. Default: 2000. */
  refreshIntervalMs?: number;
  /** Bytes of a payload shown before it is cut. Default: 4096. */
  payloadPreviewBytes?: number;
  /** Rows a list page shows at most. Default: 200. */
  pageSize?: number;
}

/** Defaults of {@link ConsoleOptions}. */
export const defaultConsoleOptions = Object.freeze({
  schema: defaultSchemaName,
  readOnly: false,
  refreshIntervalMs: 2000,
  payloadPreviewBytes: 4096,
  pageSize: 200,
});

/** Options with defaults applied and checked. */
export interface ResolvedConsoleOptions {
  admin: ConsoleAdmin;
  kafka: ConsoleKafkaOffsets | undefined;
  token: string | undefined;
  authenticate: ConsoleOptions['authenticate'];
  readOnly: boolean;
  auditLog: ConsoleOptions['auditLog'];
  refreshIntervalMs: number;
  payloadPreviewBytes: number;
  pageSize: number;
}

const component = 'onceflow console';

/** Checks `options` and applies the defaults; the admin is built by the caller from pool and schema. */
export function resolveConsoleOptions(
  options: ConsoleOptions,
  makeAdmin: (pool: Pool, schema: string) => ConsoleAdmin,
): ResolvedConsoleOptions {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (options.admin === undefined && typeof options.pool?.query !== 'function')
    invalidOptions(component, 'pass a pg Pool as `pool` (or the admin functions as `admin`)');
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length < 16))
    invalidOptions(
      component,
      'token must be a string of at least 16 characters (e.g. `openssl rand -hex 24`)',
    );
  if (options.kafka !== undefined && typeof options.kafka.fetchTopicOffsets !== 'function')
    invalidOptions(component, 'kafka must have fetchTopicOffsets(topic) (a connected kafkajs Admin has it)');
  const positive = (name: string, value: number): number => {
    if (!Number.isInteger(value) || value < 1)
      invalidOptions(component, `${name} must be a positive integer`);
    return value;
  };
  return {
    admin: options.admin ?? makeAdmin(options.pool!, options.schema ?? defaultConsoleOptions.schema),
    kafka: options.kafka,
    token: options.token,
    authenticate: options.authenticate,
    readOnly: options.readOnly ?? defaultConsoleOptions.readOnly,
    auditLog: options.auditLog,
    refreshIntervalMs: positive(
      'refreshIntervalMs',
      options.refreshIntervalMs ?? defaultConsoleOptions.refreshIntervalMs,
    ),
    payloadPreviewBytes: positive(
      'payloadPreviewBytes',
      options.payloadPreviewBytes ?? defaultConsoleOptions.payloadPreviewBytes,
    ),
    pageSize: positive('pageSize', options.pageSize ?? defaultConsoleOptions.pageSize),
  };
}
