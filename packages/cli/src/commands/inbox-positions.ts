import type { Command } from 'commander';
import {
  type CliIo,
  connectTimeoutOption,
  databaseOption,
  openAdmin,
  schemaOption,
  statementTimeoutOption,
  withPool,
} from '../io';

/** `onceflow inbox positions`: the next offset of each consumer per topic partition. */
export function inboxPositionsCommand(inbox: Command, io: CliIo): void {
  inbox
    .command('positions')
    .description('list the stored position (next offset) of each consumer per topic partition')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .option('--consumer <name>', 'only this consumer')
    .option('--topic <name>', 'only this topic')
    .option('--json', 'print one JSON object per position')
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        consumer?: string;
        topic?: string;
        json?: boolean;
      }) => {
        await withPool(options, io, 1, async (pool) => {
          const positions = await (await openAdmin(pool, options.schema)).listPositions({
            ...(options.consumer === undefined ? {} : { consumer: options.consumer }),
            ...(options.topic === undefined ? {} : { topic: options.topic }),
          });
          for (const position of positions)
            io.out(
              options.json
                ? JSON.stringify({ ...position, updatedAt: position.updatedAt.toISOString() })
                : `${position.consumer}  ${position.topic}[${position.partition}]  next=${position.nextOffset}`,
            );
        });
      },
    );
}
