import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startPrivateKafka } from '../../../test/support/private-kafka';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets } from '../services';
import { benchKey, benchMessageId, benchValue, nowMs, type Services } from '../shared';
import type { ConsumerParams, ConsumerResult } from '../workers/consumers';

const partitions = 6;
/** Messages per second the steady producer offers during the recovery runs. */
const offeredPerS = 600;

/** An open-loop producer of `offeredPerS` messages a second over every partition, until stopped. */
function steadyProducer(
  kafka: Kafka,
  topic: string,
  runId: string,
): { stop(): Promise<number>; resumedAt(): number | undefined } {
  let stopped = false;
  let sent = 0;
  let failing = false;
  let resumedAt: number | undefined;
  let producer: Producer | undefined;
  const loop = (async () => {
    const tickMs = 20;
    const perTick = Math.max(1, Math.round((offeredPerS * tickMs) / 1000));
    let next = nowMs();
    while (!stopped) {
      next += tickMs;
      try {
        if (producer === undefined) {
          const created = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 2 } });
          await created.connect();
          producer = created;
        }
        const messages = [];
        for (let i = 0; i < perTick; i++, sent++)
          messages.push({
            key: benchKey(sent, partitions * 17),
            value: benchValue(sent, 256),
            headers: { 'message-id': benchMessageId(runId, sent) },
          });
        await producer.send({ topic, acks: -1, messages });
        if (failing) resumedAt = nowMs();
        failing = false;
      } catch {
        failing = true;
        // The broker is away (the restart run): start over with a new producer once it is back.
        const broken = producer;
        producer = undefined;
        await broken?.disconnect().catch(() => undefined);
      }
      const wait = next - nowMs();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else next = nowMs();
    }
  })();
  return {
    resumedAt: () => resumedAt,
    async stop() {
      stopped = true;
      await loop;
      await producer?.disconnect().catch(() => undefined);
      return sent;
    },
  };
}

/** The stored next offset of every partition of the consumer, by partition. */
async function positions(ctx: BenchContext, consumer: string, topic: string): Promise<Map<number, bigint>> {
  const { rows } = await ctx.pool.query<{ partition: number; next_offset: string }>(
    `SELECT kafka_partition AS partition, next_offset::text FROM "${ctx.schema}".inbox_position WHERE consumer = $1 AND topic = $2`,
    [consumer, topic],
  );
  return new Map(rows.map((row) => [row.partition, BigInt(row.next_offset)]));
}

/**
 * Waits until every partition's stored position moved past where it was in `from`, and returns how
 * long after `since` the last of them moved (ms), or undefined after `timeoutMs`.
 */
async function allProgressed(
  ctx: BenchContext,
  consumer: string,
  topic: string,
  from: Map<number, bigint>,
  since: number,
  timeoutMs: number,
): Promise<number | undefined> {
  const waiting = new Set(Array.from({ length: partitions }, (_, p) => p));
  let last = since;
  while (waiting.size > 0) {
    if (nowMs() - since > timeoutMs) return undefined;
    const now = await positions(ctx, consumer, topic);
    const at = nowMs();
    for (const p of [...waiting])
      if ((now.get(p) ?? -1n) > (from.get(p) ?? -1n)) {
        waiting.delete(p);
        last = at;
      }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return last - since;
}

function consumerParams(
  ctx: BenchContext,
  services: Services,
  topic: string,
  name: string,
  ends: Record<number, string>,
): ConsumerParams {
  return {
    ...services,
    schema: ctx.schema,
    topic,
    groupId: name,
    endOffsets: ends,
    concurrency: ctx.config.consumerConcurrency,
    syncCommit: 'server',
    consumerName: name,
    inboxHandler: 'batch',
    untilTerminated: true,
  };
}

/**
 * Failover: two inbox consumer processes in one group (onceflow's default kafkajs settings) under a
 * steady load; one is SIGKILLed. The figure is the time from the kill until every partition's stored
 * position moved again, those the killed member held included (the group notices the dead member
 * when its session expires, then rebalances).
 */
async function failover(ctx: BenchContext): Promise<void> {
  const topic = `${ctx.runId}-failover`;
  await createTopics(ctx.admin, [topic], partitions);
  ctx.topics.push(topic);
  const name = `${ctx.runId}-failover`;
  const producer = steadyProducer(ctx.kafka, topic, `${ctx.runId}-fo`);
  const params = consumerParams(ctx, ctx.services, topic, name, await endOffsets(ctx.admin, topic));
  const workers = [0, 1].map(() =>
    spawnWorker<ConsumerResult>('inbox-consumer', params as unknown as Record<string, unknown>),
  );
  try {
    await Promise.all(workers.map((worker) => worker.ready()));
    // Steady state: both members in the group and every partition moving.
    const deadline = nowMs() + 60_000;
    for (;;) {
      const group = await ctx.admin.describeGroups([name]);
      const stable = group.groups[0]?.state === 'Stable' && group.groups[0].members.length === 2;
      if (stable) break;
      if (nowMs() > deadline) throw new Error('the two consumers did not form a stable group within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const settled = await allProgressed(ctx, name, topic, await positions(ctx, name, topic), nowMs(), 60_000);
    if (settled === undefined) throw new Error('the partitions did not all move before the kill');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const killedAt = nowMs();
    workers[0]!.child.kill('SIGKILL');
    // A commit the killed process had already sent lands within milliseconds; then it is gone.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await allProgressed(ctx, name, topic, await positions(ctx, name, topic), killedAt, 120_000);
    const survivor = await workers[1]!.finish();
    ctx.log(
      `  failover               SIGKILL of 1 of 2 consumers at ${offeredPerS} msgs/s: every partition moved again ${after === undefined ? 'never (120 s)' : `${(after / 1000).toFixed(2)} s`} after the kill; survivor peak RSS ${survivor.peakRssMb} MiB`,
    );
    ctx.results.consumer_failover_s = after === undefined ? null : round(after / 1000, 2);
    if (after === undefined) ctx.notes.push('consumer failover: partitions did not move within 120 s');
  } finally {
    for (const worker of workers) worker.kill();
    await producer.stop();
  }
}

/**
 * Broker restart: one inbox consumer under a steady load on a private broker, which is SIGKILLed and
 * started again. The figure is the time from the restarted broker answering until every partition's
 * stored position moved again.
 */
async function brokerRestart(ctx: BenchContext): Promise<void> {
  const broker = await startPrivateKafka({ heapMb: 384 });
  const services: Services = { ...ctx.services, brokers: broker.brokers };
  // Quiet: the producer's connection errors while the broker is down are expected.
  const kafka = new Kafka({
    brokers: services.brokers,
    clientId: 'onceflow-bench-restart',
    logLevel: logLevel.NOTHING,
  });
  const topic = `${ctx.runId}-restart`;
  const admin = kafka.admin();
  let producer: ReturnType<typeof steadyProducer> | undefined;
  try {
    await broker.createTopic(topic, partitions);
    await admin.connect();
    const ends = await endOffsets(admin, topic);
    await admin.disconnect();
    const name = `${ctx.runId}-restart`;
    producer = steadyProducer(kafka, topic, `${ctx.runId}-rs`);
    const worker = spawnWorker<ConsumerResult>(
      'inbox-consumer',
      consumerParams(ctx, services, topic, name, ends) as unknown as Record<string, unknown>,
    );
    try {
      await worker.ready();
      const settled = await allProgressed(
        ctx,
        name,
        topic,
        await positions(ctx, name, topic),
        nowMs(),
        60_000,
      );
      if (settled === undefined) throw new Error('the partitions did not all move before the broker kill');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await broker.kill('SIGKILL');
      const killedAt = nowMs();
      // Down for a moment, as a crashed broker is before its supervisor starts it again.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const before = await positions(ctx, name, topic);
      await broker.restart();
      const backAt = nowMs();
      const resumed = await allProgressed(ctx, name, topic, before, backAt, 120_000);
      await worker.finish();
      const produced = producer.resumedAt();
      ctx.log(
        `  broker-restart         broker SIGKILLed, back after ${((backAt - killedAt) / 1000).toFixed(1)} s; every partition moved again ${resumed === undefined ? 'never (120 s)' : `${(resumed / 1000).toFixed(2)} s`} after it answered (the load's producer sent again ${produced === undefined ? '?' : `${((produced - backAt) / 1000).toFixed(2)} s`} after it answered)`,
      );
      ctx.results.consumer_broker_restart_resume_s = resumed === undefined ? null : round(resumed / 1000, 2);
      ctx.results.broker_restart_down_s = round((backAt - killedAt) / 1000, 1);
      if (resumed === undefined) ctx.notes.push('broker restart: partitions did not move within 120 s');
    } finally {
      worker.kill();
    }
  } finally {
    await producer?.stop();
    await admin.disconnect().catch(() => undefined);
    await broker.stop();
  }
}

/** Recovery: a consumer process killed under load, and the broker killed and restarted under load. */
export async function runRecoveryGroup(ctx: BenchContext): Promise<void> {
  ctx.log(
    `recovery: ${offeredPerS} msgs/s offered over ${partitions} partitions; onceflow's default kafkajs consumer settings`,
  );
  await failover(ctx);
  if (ctx.config.privateServers) await brokerRestart(ctx);
  else ctx.notes.push('broker restart: not run with --quick (it starts a broker of its own)');
}
