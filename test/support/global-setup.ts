// Finds Kafka and Postgres for the whole run, once: environment variables, then testcontainers where a
// Docker engine answers, then the local launcher (tools/stack). A missing service fails the run loudly
// with the command that fixes it; nothing is skipped.
import type { TestProject } from 'vitest/node';
import { ensureStack, stopStack } from '../../tools/stack/index';
import { dockerEngineAnswers } from '../../tools/stack/probe';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string[];
    databaseUrl: string;
    serviceMode: string;
  }
}

type Teardown = () => Promise<void>;

async function fromTestcontainers(): Promise<{ brokers: string[]; url: string; teardown: Teardown }> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  // Apache's own image in KRaft mode; the host port is fixed by the advertised listener, so map it 1:1.
  const kafka = await new GenericContainer('apache/kafka:4.1.1')
    .withExposedPorts({ container: 19092, host: 19092 })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://0.0.0.0:19092,CONTROLLER://0.0.0.0:19093',
      KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://127.0.0.1:19092',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:19093',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const postgres = await new PostgreSqlContainer('postgres:15-alpine').start();
  return {
    brokers: ['127.0.0.1:19092'],
    url: postgres.getConnectionUri(),
    teardown: async () => {
      await Promise.all([kafka.stop(), postgres.stop()]);
    },
  };
}

export default async function setup(project: TestProject): Promise<Teardown | undefined> {
  const log = (line: string): void => console.log(`[onceflow test] ${line}`);
  let brokers: string[];
  let url: string;
  let mode: string;
  let teardown: Teardown | undefined;
  try {
    if (process.env.KAFKA_BROKERS && process.env.DATABASE_URL) {
      const services = await ensureStack({ log });
      brokers = services.kafka.brokers;
      url = services.postgres.url;
      mode = 'environment (KAFKA_BROKERS, DATABASE_URL)';
    } else if (process.env.ONCEFLOW_TESTCONTAINERS !== '0' && (await dockerEngineAnswers())) {
      const started = await fromTestcontainers();
      ({ brokers, url } = started);
      teardown = started.teardown;
      mode = 'testcontainers (apache/kafka:4.1.1, postgres:15-alpine)';
    } else {
      const services = await ensureStack({ log });
      brokers = services.kafka.brokers;
      url = services.postgres.url;
      mode = `local launcher (kafka: ${services.kafka.mode}, postgres: ${services.postgres.mode})`;
      // Leave the machine as we found it: stop only what this run started.
      if (services.kafka.startedHere || services.postgres.startedHere) teardown = () => stopStack(log);
    }
  } catch (error) {
    throw new Error(
      `onceflow tests need a real Kafka and Postgres, and none could be found or started:\n  ${(error as Error).message}\n` +
        'Fix: run `pnpm stack:up` (needs Java 17+ and Maven, or Docker), or point KAFKA_BROKERS and DATABASE_URL at running services.',
    );
  }
  log(`services: ${mode}; kafka ${brokers.join(',')}; postgres ${url.replace(/:[^:@/]+@/, ':***@')}`);
  project.provide('kafkaBrokers', brokers);
  project.provide('databaseUrl', url);
  project.provide('serviceMode', mode);
  return teardown;
}
