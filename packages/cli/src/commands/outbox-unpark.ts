import type { Command } from 'commander';
import {
  type CliIo,
  connectTimeoutOption,
  databaseOption,
  openAdmin,
  schemaOption,
  statementTimeoutOption,
  usageError,
  withPool,
} from '../io';

/** `onceflow outbox unpark`: returns parked events to the queue once their cause is fixed. */
export function outboxUnparkCommand(outbox: Command, io: CliIo): void {
  outbox
    .command('unpark')
    .description('return parked events to the queue once their cause is fixed (e.g. the size limit raised)')
    .argument('[event-ids...]', 'the events to unpark')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .option('--key <key>', 'unpark the events with this key')
    .option('--topic <name>', 'unpark the events of this topic')
    .option('--all', 'unpark every parked event')
    .action(
      async (
        eventIds: string[],
        options: {
          databaseUrl?: string;
          schema: string;
          connectTimeoutMs: number;
          statementTimeoutMs: number;
          key?: string;
          topic?: string;
          all?: boolean;
        },
      ) => {
        const named = eventIds.length > 0 || options.key !== undefined || options.topic !== undefined;
        if ((options.all ?? false) === named)
          throw usageError('name the events to unpark, or pass --all (not both)');
        await withPool(options, io, 1, async (pool) => {
          const admin = await openAdmin(pool, options.schema);
          const count = await admin.unparkEvents(
            options.all
              ? {}
              : {
                  ...(eventIds.length === 0 ? {} : { eventIds }),
                  ...(options.key === undefined ? {} : { key: options.key }),
                  ...(options.topic === undefined ? {} : { topic: options.topic }),
                },
          );
          io.out(`unparked ${count} event${count === 1 ? '' : 's'}`);
        });
      },
    );
}
