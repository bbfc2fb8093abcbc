import { OnceflowError } from '@onceflow/core';
import { type Command, InvalidArgumentError } from 'commander';
import {
  type CliIo,
  connectTimeoutOption,
  createLineLogger,
  databaseOption,
  databaseUrl,
  type LogLevel,
  logLevelOption,
  openAdmin,
  schemaOption,
  statementTimeoutOption,
  withPool,
} from '../io';
import { withKafkaAdmin } from '../kafka-admin';
import { type KafkaFlags, kafkaOptions, resolveKafkaConfig } from '../kafka-settings';

const cliClientId = 'onceflow-cli';

/** Where `reset-positions` moves the positions. */
type Target = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: bigint };

function parseTarget(value: string): Target {
  if (value === 'earliest') return { kind: 'earliest' };
  if (value === 'latest') return { kind: 'latest' };
  if (/^\d{1,19}$/.test(value)) return { kind: 'offset', offset: BigInt(value) };
  throw new InvalidArgumentError('expected earliest, latest or an offset');
}

function parsePartitions(value: string, previous: number[] = []): number[] {
  const parsed = value.split(',').map((part) => Number(part.trim()));
  if (parsed.some((partition) => !Number.isInteger(partition) || partition < 0))
    throw new InvalidArgumentError('expected partition numbers, for example 0 or 0,2');
  return [...previous, ...parsed];
}

/** A request the current state of the topic or group rules out; the message says what to do. Exit code 1. */
function refused(message: string): OnceflowError {
  return new OnceflowError('OF_INVALID_ARGUMENT', message);
}

interface ResetOptions {
  databaseUrl?: string;
  schema: string;
  brokers?: string;
  consumer: string;
  topic: string;
  group?: string;
  to: string;
  partition?: number[];
  force?: boolean;
  logLevel: LogLevel;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/**
 * `onceflow inbox reset-positions`: sets a consumer's stored positions in a topic (database, through
 * the admin library) and its group's committed offsets (Kafka) to the log's start, end or an offset:
 * the way out after a topic was deleted and recreated (OF_POSITION_AHEAD) or a database restored. It
 * refuses while the group has live members, since they would overwrite the positions.
 */
export function inboxResetPositionsCommand(inbox: Command, io: CliIo): void {
  const command = inbox
    .command('reset-positions')
    .description(
      "set a consumer's positions in a topic to the log's start, end or an offset (database and Kafka group offsets)",
    )
    .addOption(databaseOption())
    .addOption(schemaOption())
    .addOption(connectTimeoutOption())
    .addOption(statementTimeoutOption(30_000))
    .requiredOption('--consumer <name>', 'the inbox consumer name')
    .requiredOption('--topic <topic>', 'the topic whose positions to reset')
    .option('--group <id>', 'the consumer group id (default: the consumer name)')
    .option(
      '--to <where>',
      'earliest (process what the log holds; ids processed before are skipped as duplicates), latest (skip it) or an offset',
      (value: string) => {
        parseTarget(value);
        return value;
      },
      'earliest',
    )
    .option('--partition <n>', 'only these partitions (repeatable, or comma-separated)', parsePartitions)
    .option(
      '--force',
      'reset the database positions although the group has live members (their progress may overwrite it; Kafka offsets stay)',
    )
    .addOption(logLevelOption())
    .action(async (options: ResetOptions) => {
      // Checked before anything connects, although the database is written last.
      databaseUrl(options, io);
      // Commander hands over every Kafka flag (see kafkaOptions), not only `brokers`.
      const kafkaConfig = resolveKafkaConfig(options as KafkaFlags, io.env, {
        defaultClientId: cliClientId,
      });
      const groupId = options.group ?? options.consumer;
      const target = parseTarget(options.to);
      const logger = createLineLogger(io.err, options.logLevel);
      await withKafkaAdmin(kafkaConfig, logger, async (admin) => {
        const [group] = (await admin.describeGroups([groupId])).groups;
        const members = group?.members ?? [];
        if (members.length > 0 && !options.force)
          throw refused(
            `consumer group ${groupId} has ${members.length} live member(s) (${members.map((m) => `${m.clientId}@${m.clientHost}`).join(', ')}): ` +
              'stop the consumers first, since they would overwrite the positions; or pass --force to reset the database positions anyway',
          );
        const existing = new Set(await admin.listTopics());
        if (!existing.has(options.topic))
          throw new OnceflowError(
            'OF_TOPIC_MISSING',
            `topic ${options.topic} does not exist; create it before resetting positions to it`,
            { details: { topics: [options.topic] } },
          );
        const logs = await admin.fetchTopicOffsets(options.topic);
        const only = options.partition === undefined ? undefined : new Set(options.partition);
        const unknown = [...(only ?? [])].filter((p) => !logs.some((log) => log.partition === p));
        if (unknown.length > 0)
          throw refused(
            `topic ${options.topic} has no partition ${unknown.join(', ')} (it has ${logs.length})`,
          );
        const positions = logs
          .filter((log) => only === undefined || only.has(log.partition))
          .sort((a, b) => a.partition - b.partition)
          .map((log) => {
            if (target.kind === 'earliest') return { partition: log.partition, nextOffset: log.low };
            if (target.kind === 'latest') return { partition: log.partition, nextOffset: log.high };
            if (target.offset < BigInt(log.low) || target.offset > BigInt(log.high))
              throw refused(
                `offset ${target.offset} is outside the log of ${options.topic}[${log.partition}] (${log.low}..${log.high}); pick one within it, or earliest/latest`,
              );
            return { partition: log.partition, nextOffset: target.offset.toString() };
          });

        await withPool(options, io, 1, async (pool) => {
          const changes = await (await openAdmin(pool, options.schema)).resetPositions({
            consumer: options.consumer,
            topic: options.topic,
            positions,
            // Positions of partitions the topic no longer has would be ahead of any log added later.
            removeOthers: only === undefined,
          });
          for (const change of changes)
            io.out(
              `${options.topic}[${change.partition}]: ${change.before ?? '-'} -> ${change.after ?? 'removed'}`,
            );
        });

        if (members.length === 0) {
          // The group's committed offsets decide where a restarted consumer fetches first; the
          // database positions only ever move it forward, so the two must agree.
          await admin.setOffsets({
            groupId,
            topic: options.topic,
            partitions: positions.map(({ partition, nextOffset }) => ({ partition, offset: nextOffset })),
          });
          io.out(`kafka group ${groupId}: committed offsets of ${options.topic} set to the same positions`);
          io.out(`consumer ${options.consumer}: positions reset; start the consumers again`);
        } else {
          io.err(
            `kafka group ${groupId} has live members: its committed offsets were left as they are. Restart the consumers; a partition whose committed offset lies beyond the new position continues from the committed offset`,
          );
        }
      });
    });
  for (const option of kafkaOptions(cliClientId)) command.addOption(option);
}
