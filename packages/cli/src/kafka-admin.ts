import type { Logger } from '@onceflow/core';
import type { Admin, KafkaConfig } from 'kafkajs';

/** Runs `work` with a connected kafkajs admin client whose log lines go to `logger`, then disconnects it. */
export async function withKafkaAdmin<T>(
  config: KafkaConfig,
  logger: Logger,
  work: (admin: Admin) => Promise<T>,
): Promise<T> {
  const [{ Kafka }, { createKafkajsLogCreator }] = await Promise.all([
    import('kafkajs'),
    import('@onceflow/kafkajs'),
  ]);
  // kafkajs's own lines go to the CLI's logger; --log-level decides what is shown.
  const kafka = new Kafka({ ...config, logCreator: createKafkajsLogCreator(logger) });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
