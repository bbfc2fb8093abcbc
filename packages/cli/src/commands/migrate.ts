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

/** `onceflow migrate`: creates or updates onceflow's tables in the schema. */
export function migrateCommand(program: Command, io: CliIo): void {
  program
    .command('migrate')
    .description("create or update onceflow's tables in the schema")
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(300_000))
    .action(
      async (options: {
        databaseUrl?: string;
        schema: string;
        connectTimeoutMs: number;
        statementTimeoutMs: number;
      }) => {
        await withPool(options, io, 1, async (pool) => {
          const result = await (await openAdmin(pool, options.schema)).migrate();
          for (const migration of result.applied)
            io.out(`applied ${String(migration.version).padStart(4, '0')}_${migration.name}`);
          io.out(`schema ${result.schema} is at version ${result.version}`);
        });
      },
    );
}
