import { OnceflowError } from '@onceflow/core';
import type { Kafka } from 'kafkajs';

/**
 * What an inbox consumer does at start when a dead-letter topic is missing: `fail` (start rejects with
 * OF_TOPIC_MISSING naming the topics and how to create them), `create` (create them, with as many
 * partitions as their source topic and the broker's default replication), or `ignore` (do not look,
 * for clients that may not list topics).
 */
export type MissingDeadLetterTopicPolicy = 'fail' | 'create' | 'ignore';

/** The policies {@link MissingDeadLetterTopicPolicy} accepts. */
export const missingDeadLetterTopicPolicies: readonly MissingDeadLetterTopicPolicy[] = [
  'fail',
  'create',
  'ignore',
];

/**
 * Checks, before the consumer joins its group, that the dead-letter topic of every source topic
 * exists, and fails or creates the missing ones by `policy`. Without it the first poison message would
 * be parked by the relay (auto topic creation is off in production) long after the deployment that
 * forgot the topic.
 */
export async function ensureDeadLetterTopics(options: {
  kafka: Kafka;
  consumer: string;
  topics: readonly string[];
  deadLetterTopic: (topic: string) => string;
  policy: MissingDeadLetterTopicPolicy;
}): Promise<void> {
  if (options.policy === 'ignore') return;
  // Source topic → its dead-letter topic; several sources may share one.
  const sourcesOf = new Map<string, string[]>();
  for (const topic of options.topics) {
    const dlq = options.deadLetterTopic(topic);
    sourcesOf.set(dlq, [...(sourcesOf.get(dlq) ?? []), topic]);
  }
  const admin = options.kafka.admin();
  try {
    await admin.connect();
    const listed = new Set(await admin.listTopics());
    const missing = [...sourcesOf.keys()].filter((topic) => !listed.has(topic));
    if (missing.length === 0) return;
    const partitionsOf = async (dlq: string): Promise<number> => {
      const sources = (sourcesOf.get(dlq) ?? []).filter((topic) => listed.has(topic));
      if (sources.length === 0) return -1;
      const { topics } = await admin.fetchTopicMetadata({ topics: sources });
      return Math.max(...topics.map((topic) => topic.partitions.length));
    };
    const partitions = new Map(
      await Promise.all(missing.map(async (dlq) => [dlq, await partitionsOf(dlq)] as const)),
    );
    if (options.policy === 'fail') {
      const commands = missing.map(
        (dlq) =>
          `kafka-topics.sh --bootstrap-server <brokers> --create --topic ${dlq}${(partitions.get(dlq) ?? -1) > 0 ? ` --partitions ${partitions.get(dlq)}` : ''}`,
      );
      throw new OnceflowError(
        'OF_TOPIC_MISSING',
        `inbox consumer "${options.consumer}": the dead-letter topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `"${t}"`).join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist (or this client cannot see ${missing.length > 1 ? 'them' : 'it'}); ` +
          `a message that fails for good could not be dead-lettered. Create ${missing.length > 1 ? 'them' : 'it'} (${commands.join('; ')}), or set onMissingDeadLetterTopic: 'create' to let the consumer do it`,
        { details: { consumer: options.consumer, topics: missing, commands } },
      );
    }
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({ topic, numPartitions: partitions.get(topic) ?? -1 })),
    });
  } catch (error) {
    if (error instanceof OnceflowError) throw error;
    throw new OnceflowError(
      'OF_UNAVAILABLE',
      `inbox consumer "${options.consumer}": could not check its dead-letter topics: ${error instanceof Error ? error.message : String(error)}`,
      { retriable: true, cause: error },
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
