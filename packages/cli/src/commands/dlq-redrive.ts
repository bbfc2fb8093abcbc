import type { DeadLetterReasonName } from '@onceflow/postgres';
import { type Command, Option } from 'commander';
import {
  addDatabaseOptions,
  type CliIo,
  collect,
  type DatabaseFlags,
  nonNegativeInteger,
  openAdmin,
  usageError,
  withPool,
} from '../io';
import { formatTable, formatTime, jsonReady } from '../table';
import { deadLetterReasons, shortError } from './dlq-list';

/**
 * `onceflow dlq redrive`: re-runs dead-lettered messages, each exactly once, with their original
 * message ids. Without `--yes` it only shows what it would redrive.
 */
export function dlqRedriveCommand(dlq: Command, io: CliIo): void {
  addDatabaseOptions(
    dlq
      .command('redrive')
      .description(
        "redrive a consumer's dead letters once their cause is fixed: each is re-run exactly once with its original message id (dry run unless --yes)",
      ),
  )
    .requiredOption('--consumer <name>', 'the consumer whose dead letters to redrive')
    .option('--id <message-id>', 'only these messages (repeatable, or comma-separated)', collect)
    .option('--topic <name>', 'only messages consumed from this topic')
    .addOption(new Option('--reason <reason>', 'only this reason').choices(deadLetterReasons))
    .option('--limit <n>', 'most dead letters redriven at once, oldest first', nonNegativeInteger, 100)
    .option('--dry-run', 'only show what would be redriven (the default)')
    .option('--yes', 'redrive them')
    .option('--json', 'print one JSON object')
    .action(
      async (
        options: DatabaseFlags & {
          consumer: string;
          id?: string[];
          topic?: string;
          reason?: DeadLetterReasonName;
          limit: number;
          dryRun?: boolean;
          yes?: boolean;
          json?: boolean;
        },
      ) => {
        if (options.dryRun && options.yes) throw usageError('pass --dry-run or --yes, not both');
        const dryRun = !options.yes;
        await withPool(options, io, 1, async (pool) => {
          const result = await (await openAdmin(pool, options.schema)).redriveDeadLetters({
            consumer: options.consumer,
            dryRun,
            limit: options.limit,
            ...(options.id === undefined ? {} : { messageIds: options.id }),
            ...(options.topic === undefined ? {} : { topic: options.topic }),
            ...(options.reason === undefined ? {} : { reason: options.reason }),
          });
          if (options.json) {
            io.out(JSON.stringify(jsonReady(result)));
            return;
          }
          const lines = formatTable(
            ['MESSAGE ID', 'FROM', 'REASON', 'ATTEMPTS', 'DEAD-LETTERED AT', 'REDRIVES', 'ERROR'],
            result.redriven.map((letter) => [
              letter.messageId,
              `${letter.topic}[${letter.partition}]@${letter.offset}`,
              letter.reason,
              letter.attempts,
              formatTime(letter.deadLetteredAt),
              letter.redrives,
              shortError(letter.errorMessage),
            ]),
          );
          for (const line of lines) io.out(line);
          for (const skipped of result.skipped)
            io.out(
              `not redriven: ${skipped.messageId} (${skipped.state === 'missing' ? 'no such dead letter' : `state ${skipped.state}`})`,
            );
          const count = `${result.redriven.length} dead letter${result.redriven.length === 1 ? '' : 's'}`;
          io.out(
            dryRun
              ? `dry run: ${count} would be redriven; pass --yes to redrive ${result.redriven.length === 1 ? 'it' : 'them'}`
              : `redrive requested for ${count}: the relay publishes ${result.redriven.length === 1 ? 'its copy' : 'their copies'} to the original topic, and consumer ${options.consumer} runs each once (\`onceflow dlq list --state redriven\` shows them done)`,
          );
        });
      },
    );
}
