// Fulfilment WITHOUT the inbox: the same handler, run by a plain kafkajs consumer in a plain
// transaction per message. It exists to show what onceflow prevents: with redelivery after a crash or
// a duplicate on the topic, stock is taken twice and the order ships twice, and the demo's verifier
// reports FAIL. Started instead of the fulfilment consumer by `pnpm demo --unprotected fulfilment`.
import { headerText, messageIdHeader } from '@onceflow/core';
import { createTransactionContext, runInTransaction } from '@onceflow/postgres';
import { fulfilmentHandler } from '../handlers';
import { runProcess } from '../runtime';
import { selfKillEnv } from './consumer';

await runProcess('fulfilment', async ({ pool, kafka, config }) => {
  const handler = fulfilmentHandler(config);
  const killAt = Number(process.env[selfKillEnv] ?? 0);
  let handled = 0;
  const consumer = kafka.consumer({
    groupId: config.groups.fulfilment,
    sessionTimeout: 6_000,
    heartbeatInterval: 1_000,
    rebalanceTimeout: 10_000,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [config.topics.paymentCaptured], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers = Object.fromEntries(
        Object.entries(message.headers ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v]),
      ) as Record<string, Buffer | string | undefined>;
      const inbound = {
        id: headerText(headers, messageIdHeader) ?? `${topic}/${partition}/${message.offset}`,
        idSource: 'header' as const,
        topic,
        partition,
        offset: message.offset,
        timestamp: Number(message.timestamp),
        key: message.key,
        value: message.value,
        headers,
      };
      await runInTransaction(pool, async (client) => {
        await handler(inbound, createTransactionContext(client, { schema: config.onceflowSchema }));
      });
      if (killAt > 0 && ++handled === killAt) process.kill(process.pid, 'SIGKILL');
    },
  });
  return { service: { stop: () => consumer.disconnect() } };
});
