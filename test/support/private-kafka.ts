// A Kafka broker of a test's own, for tests that SIGKILL, SIGSTOP or restart the broker: the shared
// broker of the run (brokers()) is never disturbed. Built on the stack launcher's jars.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs';
import { type PrivateKafka, startPrivateKafka as startBroker } from '../../tools/stack/kafka-local';

/** Options of {@link startPrivateKafka}. */
export interface PrivateKafkaBrokerOptions {
  /** Maximum Java heap in MiB. Default: 512. */
  heapMb?: number;
  /** Further `server.properties` entries (for example `{ 'log.retention.ms': '2000' }`). Default: none. */
  properties?: Readonly<Record<string, string>>;
  /** Keep the data directory after `stop()`, for a look at `logs/server.log`. Default: false. */
  keepData?: boolean;
}

/**
 * A running private broker: the launcher's handle (`brokers`, `pid`, `kill(signal)`, `restart()`,
 * `stop()`) plus conveniences. `stop()` (or `await using`) also removes its temporary data directory.
 */
export interface PrivateKafkaBroker extends PrivateKafka {
  /** A kafkajs client for this broker; quiet unless something is wrong. `config` overrides the defaults. */
  client(config?: Partial<KafkaConfig>): Kafka;
  /** Creates a topic with `partitions` partitions and waits for its leader. */
  createTopic(name: string, partitions?: number, configEntries?: Record<string, string>): Promise<void>;
}

/**
 * Starts a single-node KRaft broker on free 127.0.0.1 ports with its data in a fresh temporary
 * directory (heap capped at 512 MiB, internal topics with one partition at replication factor 1, no
 * initial rebalance delay). Takes a few seconds (a JVM start); `restart()` keeps ports and data, so
 * clients reconnect to the same address. The broker is killed if the test process exits first.
 *
 * ```ts
 * await using broker = await startPrivateKafka();
 * await broker.createTopic('orders', 3);
 * await broker.kill('SIGKILL');   // or 'SIGSTOP' / 'SIGCONT'
 * await broker.restart();         // resolves once it answers again
 * ```
 */
export async function startPrivateKafka(
  options: PrivateKafkaBrokerOptions = {},
): Promise<PrivateKafkaBroker> {
  const dataDir = mkdtempSync(join(tmpdir(), 'onceflow-kafka-'));
  let broker: PrivateKafka;
  try {
    broker = await startBroker({
      dataDir,
      ...(options.heapMb === undefined ? {} : { heapMb: options.heapMb }),
      ...(options.properties === undefined ? {} : { properties: options.properties }),
    });
  } catch (error) {
    if (!options.keepData) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await broker.stop();
      if (!options.keepData) rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const client = (config: Partial<KafkaConfig> = {}): Kafka =>
    new Kafka({
      clientId: 'onceflow-private-test',
      logLevel: logLevel.ERROR,
      ...config,
      brokers: broker.brokers,
    });
  return {
    brokers: broker.brokers,
    dataDir,
    get pid() {
      return broker.pid;
    },
    kill: (signal) => broker.kill(signal),
    restart: () => broker.restart(),
    stop,
    [Symbol.asyncDispose]: stop,
    client,
    async createTopic(name, partitions = 1, configEntries = {}) {
      const admin = client().admin();
      await admin.connect();
      try {
        // A broker that just started may not know its new partitions for a moment; kafkajs then fails
        // the wait for leaders with UNKNOWN_TOPIC_OR_PARTITION, which is worth another try.
        for (let attempt = 1; ; attempt++) {
          try {
            await admin.createTopics({
              waitForLeaders: true,
              topics: [
                {
                  topic: name,
                  numPartitions: partitions,
                  replicationFactor: 1,
                  configEntries: Object.entries(configEntries).map(([configName, value]) => ({
                    name: configName,
                    value,
                  })),
                },
              ],
            });
            const [metadata] = (await admin.fetchTopicMetadata({ topics: [name] })).topics;
            if (metadata?.partitions.length === partitions && metadata.partitions.every((p) => p.leader >= 0))
              return;
            throw new Error(`topic ${name} has no leader for every partition yet`);
          } catch (error) {
            if (attempt >= 40) throw error;
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        }
      } finally {
        await admin.disconnect();
      }
    },
  };
}
