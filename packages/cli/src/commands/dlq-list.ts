import type { DeadLetterReasonName, DeadLetterState } from '@onceflow/postgres';
import { type Command, Option } from 'commander';
import {
  addDatabaseOptions,
  type CliIo,
  type DatabaseFlags,
  nonNegativeInteger,
  openAdmin,
  withPool,
} from '../io';
import { formatTable, formatTime, jsonReady } from '../table';

/** The reasons a dead letter may have, for `--reason`. */
export const deadLetterReasons: readonly DeadLetterReasonName[] = ['handler-failed', 'invalid-id', 'too-old'];
/** The states a dead letter may be in, for `--state`. */
export const deadLetterStates: readonly DeadLetterState[] = ['dead', 'redrive_requested', 'redriven'];

/** Shortens an error message to one table cell. */
export function shortError(text: string, max = 60): string {
  const line = text.replaceAll(/\s+/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** `onceflow dlq list`: the dead letters of the inbox consumers, oldest first. */
export function dlqListCommand(dlq: Command, io: CliIo): void {
  addDatabaseOptions(
    dlq.command('list').description('list dead letters (messages a consumer gave up on), oldest first'),
  )
    .option('--consumer <name>', 'only this consumer')
    .option('--topic <name>', 'only messages consumed from this topic')
    .addOption(new Option('--reason <reason>', 'only this reason').choices(deadLetterReasons))
    .addOption(new Option('--state <state>', 'only this state').choices(deadLetterStates))
    .option('--limit <n>', 'most dead letters listed', nonNegativeInteger, 100)
    .option('--json', 'print one JSON object per dead letter')
    .action(
      async (
        options: DatabaseFlags & {
          consumer?: string;
          topic?: string;
          reason?: DeadLetterReasonName;
          state?: DeadLetterState;
          limit: number;
          json?: boolean;
        },
      ) => {
        await withPool(options, io, 1, async (pool) => {
          const letters = await (await openAdmin(pool, options.schema)).listDeadLetters({
            limit: options.limit,
            ...(options.consumer === undefined ? {} : { consumer: options.consumer }),
            ...(options.topic === undefined ? {} : { topic: options.topic }),
            ...(options.reason === undefined ? {} : { reason: options.reason }),
            ...(options.state === undefined ? {} : { state: options.state }),
          });
          if (options.json) {
            for (const letter of letters) io.out(JSON.stringify(jsonReady(letter)));
            return;
          }
          const lines = formatTable(
            ['CONSUMER', 'MESSAGE ID', 'FROM', 'REASON', 'ATTEMPTS', 'STATE', 'DEAD-LETTERED AT', 'ERROR'],
            letters.map((letter) => [
              letter.consumer,
              letter.messageId,
              `${letter.topic}[${letter.partition}]@${letter.offset}`,
              letter.reason,
              letter.attempts,
              letter.state,
              formatTime(letter.deadLetteredAt),
              shortError(letter.errorMessage),
            ]),
          );
          for (const line of lines) io.out(line);
          io.out(`${letters.length} dead letter${letters.length === 1 ? '' : 's'}`);
        });
      },
    );
}
