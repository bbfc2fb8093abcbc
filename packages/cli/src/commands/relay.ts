import { type ComponentStatus, isOnceflowError } from '@onceflow/core';
import type { Command } from 'commander';
import {
  type CliIo,
  connectTimeoutOption,
  createLineLogger,
  databaseOption,
  databaseUrl,
  type LogLevel,
  logLevelOption,
  nonNegativeInteger,
  openPool,
  schemaOption,
  waitForSignal,
} from '../io';
import { type KafkaFlags, kafkaOptions, resolveKafkaConfig } from '../kafka-settings';

const relayClientId = 'onceflow-relay';

interface RelayCommandOptions {
  databaseUrl?: string;
  schema: string;
  brokers?: string;
  batchSize?: number;
  pollIntervalMs?: number;
  leaseMs?: number;
  heartbeatIntervalMs?: number;
  metricsIntervalMs: number;
  poolSize: number;
  logLevel: LogLevel;
  connectTimeoutMs: number;
  startupTimeoutMs?: number;
  metricsPort?: number;
  metricsHost: string;
}

/** Registers onceflow's and the process's metrics in a registry of their own and serves them. */
async function serveMetrics(port: number, host: string, status: () => ComponentStatus) {
  const [{ Registry, collectDefaultMetrics }, { registerOnceflowMetrics }, { startMetricsServer }] =
    await Promise.all([import('prom-client'), import('@onceflow/prometheus'), import('../metrics-server')]);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const onceflow = registerOnceflowMetrics({ registry });
  const server = await startMetricsServer({ port, host, registry, status });
  return {
    url: server.url,
    close: async () => {
      await server.close();
      onceflow.stop();
    },
  };
}

/** `onceflow relay`: publishes the outbox to Kafka until SIGTERM or SIGINT. */
export function relayCommand(program: Command, io: CliIo): void {
  const command = program
    .command('relay')
    .description('publish the outbox to Kafka until SIGTERM or SIGINT')
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--batch-size <n>', 'most events per batch', nonNegativeInteger)
    .option('--poll-interval-ms <ms>', 'polling fallback interval', nonNegativeInteger)
    .option('--lease-ms <ms>', 'lane lease lifetime', nonNegativeInteger)
    .option('--heartbeat-interval-ms <ms>', 'lease renewal interval', nonNegativeInteger)
    .option(
      '--metrics-interval-ms <ms>',
      'interval of the backlog line, 0 for none',
      nonNegativeInteger,
      10_000,
    )
    .option('--pool-size <n>', 'Postgres connections', nonNegativeInteger, 10)
    .addOption(connectTimeoutOption())
    .option(
      '--startup-timeout-ms <ms>',
      'give up when Postgres cannot be reached for this long at start (default: keep trying)',
      nonNegativeInteger,
    )
    .option(
      '--metrics-port <port>',
      'serve /metrics (Prometheus), /healthz and /readyz on this port (0: any free port)',
      nonNegativeInteger,
    )
    .option('--metrics-host <host>', 'address the metrics server listens on', '127.0.0.1')
    .addOption(logLevelOption())
    .action(async (options: RelayCommandOptions) => {
      const url = databaseUrl(options, io);
      // Commander hands over every Kafka flag (see kafkaOptions), not only `brokers`.
      const kafkaConfig = resolveKafkaConfig(options as KafkaFlags, io.env, {
        defaultClientId: relayClientId,
      });
      const [{ Kafka }, { createKafkajsLogCreator, createOutboxRelay }] = await Promise.all([
        import('kafkajs'),
        import('@onceflow/kafkajs'),
      ]);
      const logger = createLineLogger(io.err, options.logLevel);
      const pool = await openPool(url, { max: options.poolSize, connectTimeoutMs: options.connectTimeoutMs });
      // kafkajs's own lines go to the same logger; --log-level decides what is shown.
      const kafka = new Kafka({ ...kafkaConfig, logCreator: createKafkajsLogCreator(logger) });
      let published = 0;
      const signal = waitForSignal();
      let metrics: { url: string; close(): Promise<void> } | undefined;
      try {
        const relay = createOutboxRelay({
          pool,
          kafka,
          schema: options.schema,
          logger,
          ...(options.startupTimeoutMs === undefined ? {} : { startupTimeoutMs: options.startupTimeoutMs }),
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
          ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
          ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
          ...(options.heartbeatIntervalMs === undefined
            ? {}
            : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
          metricsIntervalMs: options.metricsIntervalMs,
          observer: {
            onPublished: (batch) => {
              published += batch.count;
            },
            onBacklog: (status) =>
              io.out(
                `backlog=${status.backlog} oldestAgeMs=${status.oldestAgeMs === null ? '-' : Math.round(status.oldestAgeMs)} parked=${status.parked} published=${published}`,
              ),
            onLaneAcquired: (lane, epoch) => io.out(`lane ${lane} acquired (epoch ${epoch})`),
            onLaneReleased: (lane, reason) => io.out(`lane ${lane} ${reason}`),
          },
        });
        if (options.metricsPort !== undefined) {
          metrics = await serveMetrics(options.metricsPort, options.metricsHost, relay.status);
          io.out(`metrics on ${metrics.url}/metrics, health on /healthz and /readyz`);
        }
        // A signal also ends a start still waiting for Postgres.
        const stopped = signal.then(async (received) => {
          io.out(`${received}, stopping`);
          await relay.stop();
        });
        let handle: Awaited<ReturnType<typeof relay.start>>;
        try {
          handle = await relay.start();
        } catch (error) {
          if (!isOnceflowError(error, 'OF_STOPPED')) throw error;
          await stopped;
          io.out('relay stopped before it started');
          return;
        }
        io.out(`relay ${handle.relayId} started on schema ${options.schema}`);
        await stopped;
        io.out(`relay stopped after publishing ${published} events`);
      } finally {
        await metrics?.close();
        await pool.end();
      }
    });
  for (const option of kafkaOptions(relayClientId)) command.addOption(option);
}
