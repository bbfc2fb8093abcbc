import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type pg from 'pg';
import { repoRoot } from '../../tools/stack/paths';

/** The machine a run measured, recorded beside its figures. */
export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  kafka: string;
  kafkaSource: string;
  kafkajs: string;
}

function kafkaVersion(): { version: string; source: string } {
  // The local broker's own jar names carry its version; the stack's pom pins the same one.
  try {
    const jar = readdirSync(`${repoRoot}.cache/kafka/libs`).find((f) => /^kafka_2\.\d+-[\d.]+\.jar$/.test(f));
    const version = jar?.match(/-([\d.]+)\.jar$/)?.[1];
    if (version && !process.env.KAFKA_BROKERS) return { version, source: `local broker's ${jar}` };
  } catch {
    // No local broker installation; fall through to the pinned version.
  }
  const pom = readFileSync(`${repoRoot}tools/stack/kafka-pom.xml`, 'utf8');
  const pinned = pom.match(/<kafka\.version>([^<]+)<\/kafka\.version>/)?.[1] ?? 'unknown';
  return { version: pinned, source: 'tools/stack/kafka-pom.xml (pinned version of the local stack)' };
}

/** Reads cores, CPU, memory, Node, Postgres and Kafka versions. */
export async function machineInfo(pool: pg.Pool): Promise<MachineInfo> {
  const { rows } = await pool.query<{ server_version: string }>('SHOW server_version');
  const kafka = kafkaVersion();
  const kafkajsVersion = (
    JSON.parse(readFileSync(new URL('../node_modules/kafkajs/package.json', import.meta.url), 'utf8')) as {
      version: string;
    }
  ).version;
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: rows[0]?.server_version ?? 'unknown',
    kafka: kafka.version,
    kafkaSource: kafka.source,
    kafkajs: kafkajsVersion,
  };
}

/** The server's `synchronous_commit` as a fresh session sees it. */
export async function serverSynchronousCommit(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  return rows[0]?.synchronous_commit ?? 'unknown';
}
