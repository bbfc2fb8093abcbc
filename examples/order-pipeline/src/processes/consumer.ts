import type { InboundMessage } from '@onceflow/core';
import { createInboxConsumer } from '@onceflow/kafkajs';
import type { TransactionContext } from '@onceflow/postgres';
import { type ConsumerName, sourceTopicOf } from '../config';
import { fulfilmentBatchHandler, pipelineHandlers } from '../handlers';
import { runProcess } from '../runtime';

/**
 * Env `DEMO_SELF_KILL_AT_MESSAGE=N`: the process SIGKILLs itself while handling its N-th new message,
 * after the handler wrote its rows and before the batch's transaction commits: a crash in the middle
 * of a batch, exactly where one hurts most.
 */
export const selfKillEnv = 'DEMO_SELF_KILL_AT_MESSAGE';

/** Runs one pipeline consumer as an onceflow inbox consumer until SIGTERM. */
export async function runInboxConsumer(name: ConsumerName): Promise<void> {
  await runProcess(name, async ({ pool, kafka, config, logger }) => {
    const handler = pipelineHandlers[name](config);
    const fulfilment = fulfilmentBatchHandler(config);
    const killAt = Number(process.env[selfKillEnv] ?? 0);
    let handled = 0;
    const afterHandled = (message: InboundMessage): void => {
      if (killAt > 0 && ++handled === killAt) {
        console.log(
          `${name}: SIGKILL myself mid-batch at message ${handled} (${message.topic}[${message.partition}]@${message.offset})`,
        );
        process.kill(process.pid, 'SIGKILL');
      }
    };
    const consumer = createInboxConsumer({
      kafka,
      pool,
      consumer: name,
      groupId: config.groups[name],
      topics: [sourceTopicOf(config, name)],
      schema: config.onceflowSchema,
      logger,
      // The poison order is refused on every attempt: give up quickly and dead-letter it.
      retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 400 },
      // A SIGKILLed member is noticed after the session timeout; the broker's minimum keeps restarts quick.
      consumerConfig: {
        sessionTimeout: 6_000,
        heartbeatInterval: 1_000,
        rebalanceTimeout: 10_000,
        maxWaitTimeInMs: 250,
      },
      ...(name === 'fulfilment'
        ? {
            // Locks its hot inventory rows in sku order for the whole batch (see fulfilmentBatchHandler).
            handleBatch: async (messages: readonly InboundMessage[], tx: TransactionContext) => {
              await fulfilment(messages, tx);
              for (const message of messages) afterHandled(message);
            },
          }
        : {
            handler: async (message: InboundMessage, tx: TransactionContext) => {
              await handler(message, tx);
              afterHandled(message);
            },
          }),
      onError: (error) => {
        const { topic, partition, offset, attempts } = error.details;
        console.error(
          `${name}: ${String(topic)}[${String(partition)}]@${String(offset)} attempt ${String(attempts ?? 0)}: ${error.message}`,
        );
      },
    });
    return { service: await consumer.start() };
  });
}
