import type { Command } from 'commander';
import {
  addDatabaseOptions,
  type CliIo,
  createLineLogger,
  type DatabaseFlags,
  type LogLevel,
  logLevelOption,
  openAdmin,
  withPool,
} from '../io';
import { withKafkaAdmin } from '../kafka-admin';
import { type KafkaFlags, kafkaOptions, resolveKafkaConfig } from '../kafka-settings';
import { formatTable, formatTime, jsonReady } from '../table';

const cliClientId = 'onceflow-cli';

/** A stored position next to its partition's log: lag is what the consumer still has to process. */
interface PositionLag {
  consumer: string;
  topic: string;
  partition: number;
  nextOffset: string;
  /** The partition's high watermark (log end); null when Kafka was not asked or has no such partition. */
  highWatermark: string | null;
  /** highWatermark - nextOffset; null when unknown. Negative: the position is ahead of the log. */
  lag: string | null;
  updatedAt: Date;
  /** `ok`, `ahead` (position beyond the log end: topic recreated?), `no-partition`, or `unknown`. */
  state: 'ok' | 'ahead' | 'no-partition' | 'unknown';
}

/**
 * `onceflow inbox status`: each consumer's retention window, dead letters and positions, with the
 * lag to each partition's high watermark (asked from Kafka), and the inbox's retention generations.
 */
export function inboxStatusCommand(inbox: Command, io: CliIo): void {
  const command = addDatabaseOptions(
    inbox
      .command('status')
      .description(
        "print the inbox consumers, their positions against Kafka's high watermarks (lag), dead letters and the retention generations",
      ),
  )
    .option('--consumer <name>', 'only this consumer')
    .option('--no-kafka', 'do not ask Kafka for high watermarks (no lag)')
    .option('--json', 'print one JSON object')
    .addOption(logLevelOption());
  for (const option of kafkaOptions(cliClientId)) command.addOption(option);
  command.action(
    async (
      options: DatabaseFlags &
        KafkaFlags & { consumer?: string; kafka: boolean; json?: boolean; logLevel: LogLevel },
    ) => {
      const status = await withPool(options, io, 1, async (pool) =>
        (await openAdmin(pool, options.schema)).inboxStatus(),
      );
      const consumers = status.consumers.filter(
        (consumer) => options.consumer === undefined || consumer.consumer === options.consumer,
      );
      const topics = [
        ...new Set(consumers.flatMap((consumer) => consumer.positions.map((p) => p.topic))),
      ].sort();
      // Topic -> partition -> high watermark; undefined when Kafka was not asked.
      let logs: Map<string, Map<number, string>> | undefined;
      if (options.kafka && topics.length > 0) {
        const kafkaConfig = resolveKafkaConfig(options, io.env, { defaultClientId: cliClientId });
        logs = await withKafkaAdmin(
          kafkaConfig,
          createLineLogger(io.err, options.logLevel),
          async (admin) => {
            const existing = new Set(await admin.listTopics());
            const found = new Map<string, Map<number, string>>();
            for (const topic of topics) {
              const partitions = new Map<number, string>();
              if (existing.has(topic))
                for (const log of await admin.fetchTopicOffsets(topic))
                  partitions.set(log.partition, log.high);
              found.set(topic, partitions);
            }
            return found;
          },
        );
      }
      const positions: PositionLag[] = consumers.flatMap((consumer) =>
        consumer.positions.map((position) => {
          const high = logs?.get(position.topic)?.get(position.partition);
          const lag = high === undefined ? null : (BigInt(high) - BigInt(position.nextOffset)).toString();
          const state: PositionLag['state'] =
            logs === undefined
              ? 'unknown'
              : high === undefined
                ? 'no-partition'
                : lag!.startsWith('-')
                  ? 'ahead'
                  : 'ok';
          return { ...position, highWatermark: high ?? null, lag, state };
        }),
      );
      if (options.json) {
        io.out(
          JSON.stringify(
            jsonReady({
              schema: options.schema,
              retentionSeconds: status.retentionSeconds,
              consumers: consumers.map(({ positions: _positions, ...consumer }) => ({
                ...consumer,
                lag: positions
                  .filter((p) => p.consumer === consumer.consumer && p.lag !== null)
                  .reduce((sum, p) => sum + (BigInt(p.lag!) > 0n ? BigInt(p.lag!) : 0n), 0n),
              })),
              positions,
              generations: status.generations,
            }),
          ),
        );
        return;
      }
      for (const line of formatTable(
        ['CONSUMER', 'RETENTION', 'STARTED AT', 'LAG', 'DEAD', 'REDRIVE PENDING', 'REDRIVEN'],
        consumers.map((consumer) => {
          const own = positions.filter((p) => p.consumer === consumer.consumer && p.lag !== null);
          return [
            consumer.consumer,
            consumer.retentionSeconds === null ? null : `${consumer.retentionSeconds} s`,
            formatTime(consumer.declaredAt),
            logs === undefined
              ? null
              : own.reduce((sum, p) => sum + (BigInt(p.lag!) > 0n ? BigInt(p.lag!) : 0n), 0n),
            consumer.deadLetters.dead,
            consumer.deadLetters.redriveRequested,
            consumer.deadLetters.redriven,
          ];
        }),
      ))
        io.out(line);
      io.out('');
      for (const line of formatTable(
        ['CONSUMER', 'PARTITION', 'NEXT OFFSET', 'HIGH WATERMARK', 'LAG', 'UPDATED AT', 'NOTE'],
        positions.map((p) => [
          p.consumer,
          `${p.topic}[${p.partition}]`,
          BigInt(p.nextOffset),
          p.highWatermark === null ? null : BigInt(p.highWatermark),
          p.lag === null ? null : BigInt(p.lag),
          formatTime(p.updatedAt),
          p.state === 'ahead'
            ? 'position beyond the log end (topic recreated?): see `onceflow inbox reset-positions`'
            : p.state === 'no-partition'
              ? 'no such partition in Kafka'
              : '',
        ]),
      ))
        io.out(line);
      if (logs === undefined && topics.length > 0) io.out('(lag not computed: --no-kafka)');
      io.out('');
      io.out(
        `retention: ${status.retentionSeconds === null ? 'no consumer declared one' : `${status.retentionSeconds} s (the longest declared window)`}`,
      );
      for (const line of formatTable(
        ['GENERATION', 'SLOT', 'STARTED AT', ''],
        status.generations.map((g) => [
          BigInt(g.generation),
          g.slot,
          formatTime(g.startedAt),
          g.current ? 'written' : '',
        ]),
      ))
        io.out(line);
    },
  );
}
