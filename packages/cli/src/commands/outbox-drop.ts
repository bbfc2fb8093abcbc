import type { Command } from 'commander';
import {
  addDatabaseOptions,
  type CliIo,
  collect,
  type DatabaseFlags,
  openAdmin,
  usageError,
  withPool,
} from '../io';
import { formatTable, formatTime, jsonReady } from '../table';

/** `onceflow outbox drop`: deletes parked events that will never be needed (dry run unless --yes). */
export function outboxDropCommand(outbox: Command, io: CliIo): void {
  addDatabaseOptions(
    outbox
      .command('drop')
      .description(
        'delete parked events for good, by id, key or topic, releasing the later events of their keys (dry run unless --yes)',
      ),
  )
    .option('--id <event-id>', 'these events (repeatable, or comma-separated)', collect)
    .option('--key <key>', 'events with this key')
    .option('--topic <name>', 'events of this topic')
    .option('--dry-run', 'only show what would be dropped (the default)')
    .option('--yes', 'drop them')
    .option('--json', 'print one JSON object')
    .action(
      async (
        options: DatabaseFlags & {
          id?: string[];
          key?: string;
          topic?: string;
          dryRun?: boolean;
          yes?: boolean;
          json?: boolean;
        },
      ) => {
        if (options.id === undefined && options.key === undefined && options.topic === undefined)
          throw usageError('name the parked events to drop with --id, --key or --topic');
        if (options.dryRun && options.yes) throw usageError('pass --dry-run or --yes, not both');
        const dryRun = !options.yes;
        await withPool(options, io, 1, async (pool) => {
          const events = await (await openAdmin(pool, options.schema)).dropParkedEvents({
            dryRun,
            ...(options.id === undefined ? {} : { eventIds: options.id }),
            ...(options.key === undefined ? {} : { key: options.key }),
            ...(options.topic === undefined ? {} : { topic: options.topic }),
          });
          if (options.json) {
            io.out(JSON.stringify(jsonReady({ dryRun, dropped: events })));
            return;
          }
          for (const line of formatTable(
            ['EVENT ID', 'TOPIC', 'KEY', 'PARKED AT', 'ERROR'],
            events.map((event) => [
              event.eventId,
              event.topic,
              event.key?.toString('utf8'),
              formatTime(event.parkedAt),
              event.error,
            ]),
          ))
            io.out(line);
          const count = `${events.length} parked event${events.length === 1 ? '' : 's'}`;
          io.out(dryRun ? `dry run: ${count} would be dropped; pass --yes to drop them` : `dropped ${count}`);
        });
      },
    );
}
