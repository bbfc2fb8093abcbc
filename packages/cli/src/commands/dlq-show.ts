import { OnceflowError } from '@onceflow/core';
import type { Command } from 'commander';
import { addDatabaseOptions, type CliIo, type DatabaseFlags, openAdmin, withPool } from '../io';
import { formatTime, jsonReady } from '../table';

/** Bytes as text when they are printable UTF-8, else as base64 (said so). */
function bytesText(bytes: Buffer | null): string {
  if (bytes === null) return '-';
  const text = bytes.toString('utf8');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: binary payloads are shown as base64.
  return /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text) ? `base64:${bytes.toString('base64')}` : text;
}

/** `onceflow dlq show`: one dead letter with its error, headers and payload. */
export function dlqShowCommand(dlq: Command, io: CliIo): void {
  addDatabaseOptions(
    dlq.command('show').description('show one dead letter: where it came from, why, its headers and payload'),
  )
    .requiredOption('--consumer <name>', 'the consumer that dead-lettered it')
    .requiredOption('--id <message-id>', 'its message id (as `dlq list` shows it)')
    .option('--json', 'print one JSON object (payload and headers as UTF-8 text, and base64)')
    .action(async (options: DatabaseFlags & { consumer: string; id: string; json?: boolean }) => {
      await withPool(options, io, 1, async (pool) => {
        const letter = await (await openAdmin(pool, options.schema)).getDeadLetter({
          consumer: options.consumer,
          messageId: options.id,
        });
        if (letter === undefined)
          throw new OnceflowError(
            'OF_NOT_FOUND',
            `consumer ${options.consumer} has no dead letter with message id ${options.id} (see \`onceflow dlq list --consumer ${options.consumer}\`)`,
            { details: { consumer: options.consumer, messageId: options.id } },
          );
        if (options.json) {
          const { keyBytes: _key, payload, headers, ...rest } = letter;
          io.out(
            JSON.stringify({
              ...(jsonReady(rest) as object),
              payload: payload === null ? null : payload.toString('utf8'),
              payloadBase64: payload === null ? null : payload.toString('base64'),
              headers: Object.fromEntries(
                Object.entries(headers).map(([name, value]) => [name, value.toString('utf8')]),
              ),
            }),
          );
          return;
        }
        const rows: [string, string][] = [
          ['consumer', letter.consumer],
          ['message id', letter.messageId],
          ['from', `${letter.topic}[${letter.partition}] offset ${letter.offset}`],
          ['key', letter.key ?? '-'],
          ['reason', letter.reason],
          ['error code', letter.errorCode],
          ['error', letter.errorMessage],
          ['attempts', String(letter.attempts)],
          ['dead-lettered at', formatTime(letter.deadLetteredAt)],
          ['state', letter.state],
          ['redrives', String(letter.redrives)],
          ['redrive requested', formatTime(letter.redriveRequestedAt)],
          ['redriven at', formatTime(letter.redrivenAt)],
        ];
        for (const [name, value] of rows) io.out(`${`${name}:`.padEnd(19)}${value}`);
        io.out('headers:');
        const names = Object.keys(letter.headers);
        if (names.length === 0) io.out('  (none)');
        for (const name of names) io.out(`  ${name}: ${bytesText(letter.headers[name]!)}`);
        io.out(`payload (${letter.payloadBytes ?? 0} bytes):`);
        io.out(bytesText(letter.payload));
      });
    });
}
