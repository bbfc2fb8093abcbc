// The outbox relay process: publishes every committed outbox row (orders, payments, shipments,
// dead letters) to Kafka in commit order per key, each with its stable `message-id` header.
import { createOutboxRelay } from '@onceflow/kafkajs';
import { runProcess } from '../runtime';

await runProcess('relay', async ({ pool, kafka, config, logger }) => {
  const relay = await createOutboxRelay({
    pool,
    kafka,
    schema: config.onceflowSchema,
    logger,
    // A SIGKILLed relay's lanes are taken over after its lease ends; short leases keep the demo brisk.
    leaseMs: 3_000,
    heartbeatIntervalMs: 1_000,
    pollIntervalMs: 250,
    onError: (error) => console.error(`relay: ${error.message}`),
  }).start();
  return { service: relay, info: relay.relayId };
});
