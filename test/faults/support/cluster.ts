// The servers of a fault-suite file: a private Postgres and a private Kafka broker that the nemesis may
// restart, kill and stall, each behind a TCP proxy that the onceflow processes connect through.
//
// Kafka and a proxy: a client reaches the broker at the address the broker advertises, not the one
// it bootstrapped from. The broker therefore has two client listeners: EXTERNAL, advertised at the
// proxy's port (what the processes use, so every byte they exchange with the broker crosses the
// proxy), and PLAINTEXT, advertised at its own port (the broker's own inter-broker traffic, such as
// transaction markers, and the suite's checks, which must not depend on the proxy).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guardPoolConnections } from '@onceflow/postgres';
import pg from 'pg';
import { type PrivateKafka, startPrivateKafka } from '../../../tools/stack/kafka-local';
import { type PrivatePostgres, startPrivatePostgres } from '../../support/private-postgres';
import { checkerKafka } from './kafka-tools';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

/** The servers and proxies a fault scenario runs against. */
export interface FaultCluster {
  postgres: PrivatePostgres;
  kafka: PrivateKafka;
  /** Bootstrap of the broker's PLAINTEXT listener (not proxied), for the suite's own clients. */
  directBrokers: string[];
  /** Proxy in front of Postgres, used by the onceflow processes. */
  pgProxy: TcpProxy;
  /** Proxy in front of the broker's EXTERNAL listener, used by the onceflow processes. */
  kafkaProxy: TcpProxy;
  /** Postgres URL of `database` for the onceflow processes (through the proxy). */
  processDatabaseUrl(database: string): string;
  /** Bootstrap broker for the onceflow processes (through the proxy). */
  processBrokers(): string;
  /** The suite's own pool on `database` (direct); its idle clients' errors are ignored. */
  adminPool(database: string): pg.Pool;
  /** Heals both proxies and brings both servers back when down or stopped. */
  healAll(): Promise<void>;
  close(): Promise<void>;
}

/** Starts Postgres, the broker and the two proxies. */
export async function startFaultCluster(): Promise<FaultCluster> {
  // The database name in each log line lets a scenario count its own deadlocks.
  const postgres = await startPrivatePostgres({ settings: { log_line_prefix: "'%m [%p] %d '" } });
  const pgProxy = await startTcpProxy({ port: postgres.port });
  const [port, controllerPort, externalPort, kafkaProxyPort] = (await freePorts(4)) as [
    number,
    number,
    number,
    number,
  ];
  const dataDir = mkdtempSync(join(tmpdir(), 'onceflow-faults-kafka-'));
  const kafka = await startPrivateKafka({
    dataDir,
    port,
    controllerPort,
    properties: {
      listeners: `PLAINTEXT://127.0.0.1:${port},EXTERNAL://127.0.0.1:${externalPort},CONTROLLER://127.0.0.1:${controllerPort}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${port},EXTERNAL://127.0.0.1:${kafkaProxyPort}`,
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT',
      // A broker restarted after SIGKILL registers again only once the controller has fenced its old
      // session: 4 s instead of 9 s brings it back sooner. Recovery is measured from its return.
      'broker.session.timeout.ms': '4000',
      'broker.heartbeat.interval.ms': '1000',
    },
  });
  const kafkaProxy = await startTcpProxy({ port: externalPort }, { listenPort: kafkaProxyPort });
  const pools = new Map<string, pg.Pool>();
  return {
    postgres,
    kafka,
    pgProxy,
    kafkaProxy,
    directBrokers: kafka.brokers,
    processDatabaseUrl: (database) => `postgres://postgres@127.0.0.1:${pgProxy.port}/${database}`,
    processBrokers: () => `127.0.0.1:${kafkaProxy.port}`,
    adminPool(database) {
      let pool = pools.get(database);
      if (pool === undefined) {
        pool = new pg.Pool({ connectionString: postgres.urlFor(database), max: 4 });
        pool.on('error', () => undefined);
        guardPoolConnections(pool);
        pools.set(database, pool);
      }
      return pool;
    },
    async healAll() {
      pgProxy.heal();
      kafkaProxy.heal();
      await kafka.kill('SIGCONT');
      if (!postgres.running()) await postgres.start();
      if (kafka.pid === undefined) await kafka.restart();
    },
    async close() {
      for (const pool of pools.values()) await pool.end().catch(() => undefined);
      await pgProxy.close();
      await kafkaProxy.close();
      await kafka.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await postgres.dispose();
    },
  };
}

/** `count` distinct free loopback ports (held together while chosen, so none repeats). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export { checkerKafka };
