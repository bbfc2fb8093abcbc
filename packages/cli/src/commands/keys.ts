import { OnceflowError } from '@onceflow/core';
import { type Command, Option } from 'commander';
import {
  addDatabaseOptions,
  type CliIo,
  type DatabaseFlags,
  nonNegativeInteger,
  openAdmin,
  parseAgeMs,
  usageError,
  withPool,
} from '../io';
import { formatTable, formatTime, jsonReady } from '../table';

/** `onceflow keys show`: one idempotency key, or the keys of a scope, most recently touched first. */
export function keysShowCommand(keys: Command, io: CliIo): void {
  addDatabaseOptions(
    keys
      .command('show')
      .description(
        'show one HTTP idempotency key (--scope and --key), or list keys, most recently touched first',
      ),
  )
    .option('--scope <scope>', 'the scope (principal or tenant) of the keys')
    .option('--key <key>', 'the Idempotency-Key value; with --scope, shows that key')
    .addOption(new Option('--state <state>', 'only keys in this state').choices(['in_progress', 'completed']))
    .option('--limit <n>', 'most keys listed', nonNegativeInteger, 100)
    .option('--json', 'print JSON (one object per key)')
    .action(
      async (
        options: DatabaseFlags & {
          scope?: string;
          key?: string;
          state?: 'in_progress' | 'completed';
          limit: number;
          json?: boolean;
        },
      ) => {
        if (options.key !== undefined && options.scope === undefined)
          throw usageError('--key needs --scope: a key is unique within its scope only');
        await withPool(options, io, 1, async (pool) => {
          const admin = await openAdmin(pool, options.schema);
          if (options.key !== undefined) {
            const key = await admin.getIdempotencyKey({ scope: options.scope!, key: options.key });
            if (key === undefined)
              throw new OnceflowError(
                'OF_NOT_FOUND',
                `no idempotency key ${options.key} in scope ${options.scope} (never used, purged or reaped after expiry)`,
                { details: { scope: options.scope, key: options.key } },
              );
            if (options.json) {
              io.out(JSON.stringify(jsonReady(key)));
              return;
            }
            const rows: [string, string][] = [
              ['scope', key.scope],
              ['key', key.key],
              ['request id', key.requestId],
              ['route', key.route],
              ['state', key.state],
              ['recovery point', key.recoveryPoint],
              ['response status', key.responseStatus === null ? '-' : String(key.responseStatus)],
              ['response bytes', key.responseBytes === null ? '-' : String(key.responseBytes)],
              ['created at', formatTime(key.createdAt)],
              ['updated at', formatTime(key.updatedAt)],
              ['locked until', formatTime(key.lockedUntil)],
              ['expires at', formatTime(key.expiresAt)],
            ];
            for (const [name, value] of rows) io.out(`${`${name}:`.padEnd(17)}${value}`);
            return;
          }
          const list = await admin.listIdempotencyKeys({
            limit: options.limit,
            ...(options.scope === undefined ? {} : { scope: options.scope }),
            ...(options.state === undefined ? {} : { state: options.state }),
          });
          if (options.json) {
            for (const key of list) io.out(JSON.stringify(jsonReady(key)));
            return;
          }
          for (const line of formatTable(
            ['SCOPE', 'KEY', 'ROUTE', 'STATE', 'STATUS', 'UPDATED AT', 'EXPIRES AT'],
            list.map((key) => [
              key.scope,
              key.key,
              key.route,
              key.state,
              key.responseStatus,
              formatTime(key.updatedAt),
              formatTime(key.expiresAt),
            ]),
          ))
            io.out(line);
          io.out(`${list.length} key${list.length === 1 ? '' : 's'}`);
        });
      },
    );
}

/** `onceflow keys purge`: deletes completed idempotency keys by scope and age (dry run unless --yes). */
export function keysPurgeCommand(keys: Command, io: CliIo): void {
  addDatabaseOptions(
    keys
      .command('purge')
      .description(
        'delete completed HTTP idempotency keys (by scope and age), so that their retries run again; keys in progress stay (dry run unless --yes)',
      ),
  )
    .option('--scope <scope>', 'only keys of this scope')
    .option('--older-than <age>', 'only keys untouched for this long (500ms, 45s, 15m, 12h, 7d)', parseAgeMs)
    .option('--dry-run', 'only count what would be purged (the default)')
    .option('--yes', 'purge them')
    .option('--json', 'print one JSON object')
    .action(
      async (
        options: DatabaseFlags & {
          scope?: string;
          olderThan?: number;
          dryRun?: boolean;
          yes?: boolean;
          json?: boolean;
        },
      ) => {
        if (options.dryRun && options.yes) throw usageError('pass --dry-run or --yes, not both');
        const dryRun = !options.yes;
        await withPool(options, io, 1, async (pool) => {
          const result = await (await openAdmin(pool, options.schema)).purgeIdempotencyKeys({
            dryRun,
            ...(options.scope === undefined ? {} : { scope: options.scope }),
            ...(options.olderThan === undefined ? {} : { olderThanMs: options.olderThan }),
          });
          if (options.json) {
            io.out(JSON.stringify(jsonReady(result)));
            return;
          }
          for (const line of formatTable(
            ['SCOPE', 'KEY', 'ROUTE', 'STATUS', 'UPDATED AT'],
            result.keys.map((key) => [
              key.scope,
              key.key,
              key.route,
              key.responseStatus,
              formatTime(key.updatedAt),
            ]),
          ))
            io.out(line);
          const count = `${result.count} completed key${result.count === 1 ? '' : 's'}`;
          io.out(dryRun ? `dry run: ${count} would be purged; pass --yes to purge them` : `purged ${count}`);
        });
      },
    );
}
