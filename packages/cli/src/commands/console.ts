import type { ConsoleKafkaOffsets } from '@onceflow/console';
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
  usageError,
  waitForSignal,
} from '../io';
import { withKafkaAdmin } from '../kafka-admin';
import { type KafkaFlags, kafkaOptions, resolveKafkaConfig } from '../kafka-settings';

const consoleClientId = 'onceflow-console';

interface ConsoleCommandOptions {
  databaseUrl?: string;
  schema: string;
  port: number;
  host: string;
  token?: string;
  readOnly?: boolean;
  brokers?: string;
  poolSize: number;
  connectTimeoutMs: number;
  logLevel: LogLevel;
}

/** `onceflow console`: serves the operator console until SIGTERM or SIGINT. */
export function consoleCommand(program: Command, io: CliIo): void {
  const command = program
    .command('console')
    .description(
      'serve the operator console (overview, dead letters, parked events, where is message X?, keys)',
    )
    .addOption(databaseOption())
    .addOption(schemaOption())
    .option('--port <n>', 'TCP port', nonNegativeInteger, 8080)
    .option('--host <address>', 'interface to bind; anything but loopback needs a token', '127.0.0.1')
    .option('--token <token>', 'access token for actions and remote pages (default: $ONCEFLOW_CONSOLE_TOKEN)')
    .option('--read-only', 'refuse every action')
    .option('--pool-size <n>', 'Postgres connections', nonNegativeInteger, 4)
    .addOption(connectTimeoutOption())
    .addOption(logLevelOption())
    .action(async (options: ConsoleCommandOptions) => {
      const url = databaseUrl(options, io);
      const token = options.token ?? io.env.ONCEFLOW_CONSOLE_TOKEN;
      if (token !== undefined && token.length < 16)
        throw usageError(
          'onceflow console: the token must have at least 16 characters (e.g. `openssl rand -hex 24`)',
        );
      const logger = createLineLogger(io.err, options.logLevel);
      const { startConsole } = await import('@onceflow/console');
      const pool = await openPool(url, { max: options.poolSize, connectTimeoutMs: options.connectTimeoutMs });
      const serve = async (kafka?: ConsoleKafkaOffsets): Promise<void> => {
        const started = await startConsole({
          pool,
          schema: options.schema,
          host: options.host,
          port: options.port,
          readOnly: options.readOnly === true,
          ...(token === undefined ? {} : { token }),
          ...(kafka === undefined ? {} : { kafka }),
          auditLog: (entry) => io.out(JSON.stringify({ audit: entry })),
        });
        io.out(
          `onceflow console at ${started.url} (schema ${options.schema}${options.readOnly ? ', read-only' : ''}${token === undefined ? ', actions disabled: no token' : ''})`,
        );
        const received = await waitForSignal();
        io.out(`${received}, stopping`);
        await started.stop();
      };
      try {
        // Lag needs the high watermarks: a Kafka admin when brokers are configured, none otherwise.
        if (options.brokers !== undefined || io.env.KAFKA_BROKERS !== undefined) {
          const kafkaConfig = resolveKafkaConfig(options as KafkaFlags, io.env, {
            defaultClientId: consoleClientId,
          });
          await withKafkaAdmin(kafkaConfig, logger, (admin) => serve(admin));
        } else await serve();
      } finally {
        await pool.end();
      }
    });
  for (const option of kafkaOptions(consoleClientId)) command.addOption(option);
}
