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

/** `onceflow status`: the outbox backlog, its oldest event's age, parked events and relays. */
export function statusCommand(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('print the outbox backlog, the age of its oldest event, parked events and relays')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .option('--json', 'print one JSON object')
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        connectTimeoutMs: number;
        statementTimeoutMs: number;
        json?: boolean;
      }) => {
        await withPool(options, io, 1, async (pool) => {
          const status = await (await openAdmin(pool, options.schema)).outboxStatus();
          if (options.json) {
            io.out(JSON.stringify({ schema: options.schema, ...status }));
            return;
          }
          io.out(`schema:        ${options.schema}`);
          io.out(`backlog:       ${status.backlog}`);
          io.out(
            `oldest age:    ${status.oldestAgeMs === null ? '-' : `${Math.round(status.oldestAgeMs)} ms`}`,
          );
          io.out(`parked:        ${status.parked}`);
          io.out(`live relays:   ${status.liveRelays}`);
          io.out(`owned lanes:   ${status.ownedLanes}`);
        });
      },
    );
}
