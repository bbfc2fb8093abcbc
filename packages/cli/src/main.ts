import { createRequire } from 'node:module';
import { isOnceflowError } from '@onceflow/core';
import { Command } from 'commander';
import { consoleCommand } from './commands/console';
import { dlqListCommand } from './commands/dlq-list';
import { dlqRedriveCommand } from './commands/dlq-redrive';
import { dlqShowCommand } from './commands/dlq-show';
import { inboxPositionsCommand } from './commands/inbox-positions';
import { inboxResetPositionsCommand } from './commands/inbox-reset-positions';
import { inboxStatusCommand } from './commands/inbox-status';
import { keysPurgeCommand, keysShowCommand } from './commands/keys';
import { migrateCommand } from './commands/migrate';
import { outboxDropCommand } from './commands/outbox-drop';
import { outboxParkedCommand } from './commands/outbox-parked';
import { outboxStatusCommand } from './commands/outbox-status';
import { outboxUnparkCommand } from './commands/outbox-unpark';
import { relayCommand } from './commands/relay';
import { statusCommand } from './commands/status';
import { type CliIo, processIo } from './io';

const cliVersion: string = createRequire(import.meta.url)('../package.json').version;

/** Builds the `onceflow` command: one file per command under commands/, over the admin library. */
export function createCli(io: CliIo = processIo): Command {
  const program = new Command('onceflow')
    .description(
      'onceflow: effectively-once Kafka consumers, a commit-ordered outbox and idempotency keys on Postgres',
    )
    .configureOutput({
      writeOut: (text) => io.out(text.trimEnd()),
      writeErr: (text) => io.err(text.trimEnd()),
    })
    .version(cliVersion, '-V, --version', 'print the version of @onceflow/cli')
    .exitOverride();
  migrateCommand(program, io);
  statusCommand(program, io);
  relayCommand(program, io);
  consoleCommand(program, io);
  const outbox = program.command('outbox').description('inspect and repair the outbox');
  outboxStatusCommand(outbox, io);
  outboxParkedCommand(outbox, io);
  outboxUnparkCommand(outbox, io);
  outboxDropCommand(outbox, io);
  const inbox = program.command('inbox').description('inspect and operate the inbox consumers');
  inboxStatusCommand(inbox, io);
  inboxPositionsCommand(inbox, io);
  inboxResetPositionsCommand(inbox, io);
  const dlq = program
    .command('dlq')
    .description("inspect and redrive the inbox consumers' dead letters (each redrive runs once)");
  dlqListCommand(dlq, io);
  dlqShowCommand(dlq, io);
  dlqRedriveCommand(dlq, io);
  const keys = program.command('keys').description('inspect and purge HTTP idempotency keys');
  keysShowCommand(keys, io);
  keysPurgeCommand(keys, io);
  // The top-level help lists every subcommand of the groups too, so one `--help` shows all there is.
  program.addHelpText('after', () => {
    const entries = [outbox, inbox, dlq, keys].flatMap((group) =>
      group.commands.map((command) => [`${group.name()} ${command.name()}`, command.description()] as const),
    );
    const width = Math.max(...entries.map(([name]) => name.length));
    return `\nOperator commands (each takes --help; listing commands take --json):\n${entries
      .map(([name, description]) => `  ${name.padEnd(width)}  ${description}`)
      .join('\n')}`;
  });
  // Subcommand groups stop at the first error too, instead of calling process.exit.
  for (const group of [outbox, inbox, dlq, keys])
    group.exitOverride().configureOutput({
      writeOut: (text) => io.out(text.trimEnd()),
      writeErr: (text) => io.err(text.trimEnd()),
    });
  return program;
}

/** Runs the CLI with `argv` (as in process.argv) and resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    await createCli(io).parseAsync(argv);
    return 0;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('commander.'))
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
    // Invalid flags or settings, whether the CLI or the engine they configure noticed.
    if (isOnceflowError(error, 'OF_INVALID_OPTIONS') || isOnceflowError(error, 'OF_INVALID_IDENTIFIER')) {
      io.err(`onceflow: ${error.message}`);
      return 2;
    }
    io.err(
      `onceflow: ${isOnceflowError(error) ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}`,
    );
    // 42P01 undefined_table: the schema was never migrated, which deserves a hint, not just Postgres's words.
    if (code === '42P01' || isOnceflowError(error, 'OF_SCHEMA_MISMATCH'))
      io.err('onceflow: the schema has no onceflow tables yet; run `onceflow migrate` first');
    return 1;
  }
}
