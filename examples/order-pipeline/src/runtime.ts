import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { loadConfig, type PipelineConfig } from './config';

/** What every pipeline process starts with: its configuration, a pg pool and a kafkajs client. */
export interface ProcessRuntime {
  config: PipelineConfig;
  pool: pg.Pool;
  kafka: Kafka;
}

/** Something a process runs until it is told to stop. */
interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Runs a pipeline process the way an orchestrator expects: reads its configuration from the
 * environment, starts the service, prints `<name> ready` (plus `info`), and on SIGTERM or SIGINT
 * stops it gracefully, closes the pool and exits 0. A failure to start exits 1.
 */
export async function runProcess(
  name: string,
  start: (runtime: ProcessRuntime) => Promise<{ service: Stoppable; info?: string }>,
): Promise<void> {
  const config = loadConfig();
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 8 });
  // Pool errors on idle clients (a server restart) must not crash the process; the next query reconnects.
  pool.on('error', (error) => console.error(`${name}: idle pg client error: ${error.message}`));
  const kafka = new Kafka({
    clientId: `order-pipeline-${name}`,
    brokers: config.brokers,
    logLevel: logLevel.ERROR,
  });
  let service: Stoppable;
  try {
    const started = await start({ config, pool, kafka });
    service = started.service;
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
      process.exit(0);
    } catch (error) {
      console.error(`${name}: stop failed:`, error);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
