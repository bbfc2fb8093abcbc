import type { Command } from 'commander';
import {
  type CliIo,
  collect,
  connectTimeoutOption,
  databaseOption,
  nonNegativeInteger,
  openAdmin,
  schemaOption,
  statementTimeoutOption,
  withPool,
} from '../io';

/** `onceflow outbox parked`: lists the events parked because they can never be published. */
export function outboxParkedCommand(outbox: Command, io: CliIo): void {
  outbox
    .command('parked')
    .description('list events parked because the broker refused them, oldest first')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .option('--id <event-id>', 'only these events (repeatable, or comma-separated)', collect)
    .option('--key <key>', 'only events with this key')
    .option('--topic <name>', 'only events of this topic')
    .option('--limit <n>', 'most events listed', nonNegativeInteger, 100)
    .option('--json', 'print one JSON object per event')
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        connectTimeoutMs: number;
        statementTimeoutMs: number;
        limit: number;
        id?: string[];
        key?: string;
        topic?: string;
        json?: boolean;
      }) => {
        await withPool(options, io, 1, async (pool) => {
          const events = await (await openAdmin(pool, options.schema)).listParkedEvents({
            limit: options.limit,
            ...(options.id === undefined ? {} : { eventIds: options.id }),
            ...(options.key === undefined ? {} : { key: options.key }),
            ...(options.topic === undefined ? {} : { topic: options.topic }),
          });
          for (const event of events) {
            const key = event.key === null ? null : event.key.toString('utf8');
            if (options.json)
              io.out(JSON.stringify({ ...event, key, parkedAt: event.parkedAt.toISOString() }));
            else
              io.out(
                `${event.eventId}  topic=${event.topic} key=${key ?? '-'} parked=${event.parkedAt.toISOString()}  ${event.error}`,
              );
          }
          if (!options.json) io.out(`${events.length} parked event${events.length === 1 ? '' : 's'}`);
        });
      },
    );
}
