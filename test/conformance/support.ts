import type { StartedHandle } from '@onceflow/core';
import type { OutboxRelayHandle } from '@onceflow/outbox';
import { fastRelaySettings } from '../outbox/helpers';
import { brokers, type TestDatabase, testKafka } from '../support';
import {
  type AdapterDescriptor,
  type AdapterName,
  adapterNames,
  descriptor,
  type ScenarioInboxOptions,
  type ScenarioRelayOptions,
} from './adapters';

export { adapterEnv } from './adapters';

/**
 * The adapters this run checks: all of them, or those ONCEFLOW_CONFORMANCE_ADAPTERS names
 * (comma-separated), for working on one.
 */
export function adaptersUnderTest(): AdapterName[] {
  const wanted = process.env.ONCEFLOW_CONFORMANCE_ADAPTERS;
  if (!wanted) return [...adapterNames];
  const names = wanted.split(',').map((name) => name.trim());
  for (const name of names)
    if (!adapterNames.includes(name as AdapterName))
      throw new Error(
        `ONCEFLOW_CONFORMANCE_ADAPTERS: unknown adapter "${name}" (known: ${adapterNames.join(', ')})`,
      );
  return names as AdapterName[];
}

/** The descriptor of `name` on this run's brokers. */
export function adapter(name: AdapterName): AdapterDescriptor {
  return descriptor(name, brokers());
}

/** Starts an inbox consumer of `adapter` with fast retries and quick fetches. */
export function startConsumer(
  adapter: AdapterDescriptor,
  db: TestDatabase,
  options: Omit<ScenarioInboxOptions, 'pool' | 'schema'> & { schema?: string },
): Promise<StartedHandle> {
  return adapter
    .createInboxConsumer({
      pool: db.pool,
      schema: db.schema,
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 50, jitter: 0 },
      pruneIntervalMs: 0,
      onError: () => undefined,
      // These tests are about processing; the start-up check of dead-letter topics has tests of its own.
      onMissingDeadLetterTopic: 'create',
      ...options,
    })
    .start();
}

/** The group's committed offset of a partition, -1 when none (asked through kafkajs's admin, whatever the adapter). */
export async function committedOffset(groupId: string, topic: string, partition = 0): Promise<bigint> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return BigInt(result!.partitions.find((p) => p.partition === partition)!.offset);
  } finally {
    await admin.disconnect();
  }
}

/** Starts an in-process relay of `adapter` on the test database with the outbox tests' fast settings. */
export function startRelay(
  adapter: AdapterDescriptor,
  db: TestDatabase,
  overrides: Partial<ScenarioRelayOptions> = {},
): Promise<OutboxRelayHandle> {
  return adapter
    .createOutboxRelay({ pool: db.pool, schema: db.schema, ...fastRelaySettings, ...overrides })
    .start();
}
