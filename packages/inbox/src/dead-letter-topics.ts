import { type ConsumerTransport, OnceflowError, toOnceflowError } from '@onceflow/core';
import type { MissingDeadLetterTopicPolicy } from './options';

/**
 * Checks, before the consumer joins its group, that the dead-letter topic of every consumed topic
 * exists, and fails or creates the missing ones by `policy`. Without it the first poison message would
 * be parked by the relay (auto topic creation is off in production) long after the deployment that
 * forgot the topic. Does nothing for a transport that cannot check topics.
 */
export async function ensureDeadLetterTopics(options: {
  transport: ConsumerTransport;
  consumer: string;
  deadLetterTopic: (topic: string) => string;
  policy: MissingDeadLetterTopicPolicy;
}): Promise<void> {
  const { transport, policy } = options;
  if (policy === 'ignore' || transport.topics === undefined || transport.ensureTopics === undefined) return;
  // Dead-letter topic → its source topics; several sources may share one.
  const sourcesOf = new Map<string, string[]>();
  for (const topic of transport.topics) {
    const dlq = options.deadLetterTopic(topic);
    sourcesOf.set(dlq, [...(sourcesOf.get(dlq) ?? []), topic]);
  }
  let missing: Awaited<ReturnType<NonNullable<ConsumerTransport['ensureTopics']>>>;
  try {
    missing = await transport.ensureTopics(
      [...sourcesOf].map(([topic, like]) => ({ topic, like })),
      { create: policy === 'create' },
    );
  } catch (error) {
    throw toOnceflowError(
      error,
      'OF_UNAVAILABLE',
      `inbox consumer "${options.consumer}": could not check its dead-letter topics`,
      { retriable: true, details: { consumer: options.consumer } },
    );
  }
  if (missing.length === 0 || policy === 'create') return;
  const names = missing.map(({ topic }) => topic);
  const commands = missing.map(
    ({ topic, partitions }) =>
      `kafka-topics.sh --bootstrap-server <brokers> --create --topic ${topic}${partitions > 0 ? ` --partitions ${partitions}` : ''}`,
  );
  const many = missing.length > 1;
  throw new OnceflowError(
    'OF_TOPIC_MISSING',
    `inbox consumer "${options.consumer}": the dead-letter topic${many ? 's' : ''} ${names.map((t) => `"${t}"`).join(', ')} ${many ? 'do' : 'does'} not exist (or this client cannot see ${many ? 'them' : 'it'}); ` +
      `a message that fails for good could not be dead-lettered. Create ${many ? 'them' : 'it'} (${commands.join('; ')}), or set onMissingDeadLetterTopic: 'create' to let the consumer do it`,
    { details: { consumer: options.consumer, topics: names, commands } },
  );
}
