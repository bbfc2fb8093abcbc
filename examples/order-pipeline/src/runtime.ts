import { createKafkajsLogCreator } from '@onceflow/kafkajs';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import type { Logger } from 'pino';
import { loadConfig, type PipelineConfig } from './config';
import { startObservability } from './observability';

/** What every pipeline process starts with: its configuration, a pg pool and a kafkajs client. */
export interface ProcessRuntime {
  config: PipelineConfig;
  pool: pg.Pool;
  kafka: Kafka;
  /** The process's pino logger (JSON lines on stderr), for onceflow's `logger` options. */
  logger: Logger;
}

/** Something a process runs until it is told to stop. */
interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Runs a pipeline process the way an orchestrator expects: reads its configuration from the
 * environment, starts its observability (see startObservability), starts the service, prints
 * `<name> ready` (plus `info`) and `<name> metrics <url>`, and on SIGTERM or SIGINT stops it
 * gracefully, closes the pool and exits 0. A failure to start exits 1.
 */
export async function runProcess(
  name: string,
  start: (runtime: ProcessRuntime) => Promise<{ service: Stoppable; info?: string }>,
): Promise<void> {
  const config = loadConfig();
  const observability = await startObservability(name);
  const { logger } = observability;
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 8 });
  // Pool errors on idle clients (a server restart) must not crash the process; the next query reconnects.
  pool.on('error', (error) => console.error(`${name}: idle pg client error: ${error.message}`));
  const kafka = new Kafka({
    clientId: `order-pipeline-${name}`,
    brokers: config.brokers,
    logLevel: logLevel.ERROR,
    logCreator: createKafkajsLogCreator(logger),
  });
  let service: Stoppable;
  try {
    const started = await start({ config, pool, kafka, logger });
    service = started.service;
    console.log(`${name} metrics ${observability.metricsUrl}`);
    console.log(`${name} ready${started.info ? ` ${started.info}` : ''}`);
  } catch (error) {
    console.error(`${name}: failed to start:`, error);
    await pool.end().catch(() => undefined);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${name}: ${signal}, stopping`);
    try {
      await service.stop();
      await pool.end();
      await observability.stop();
      process.exit(0);
    } catch (error) {
      console.error(`${name}: stop failed:`, error);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
