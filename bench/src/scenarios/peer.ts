import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, fillPeerOutbox, produceMessages } from '../services';
import type { ConsumerResult } from '../workers/consumers';
import type { RelayResult } from '../workers/relays';

/** Batch size given to the peer's polling listener (its default is 5; a larger one only helps it here). */
const peerBatchSize = 50;

/**
 * The same inbox and outbox work with pg-transactional-outbox (polling mode: the local Postgres runs
 * with wal_level=replica, and the bench does not change server settings, so its logical-replication
 * mode is not available). Its figures are end to end: the inbox from Kafka to committed effect rows,
 * the outbox from a pre-filled backlog to messages acknowledged by the broker.
 */
export async function runPeerGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  const { rows } = await ctx.pool.query<{ wal_level: string }>('SHOW wal_level');
  const walLevel = rows[0]?.wal_level ?? 'unknown';
  ctx.notes.push(
    `peer: pg-transactional-outbox 0.5.7 in polling mode (wal_level=${walLevel}${walLevel === 'logical' ? '' : '; its logical-replication mode needs wal_level=logical, a server setting the bench does not change'}), batch size ${peerBatchSize} from the first poll, polling interval 50 ms, one segment per key (per-key order kept, as onceflow keeps it)`,
  );
  const topic = `${ctx.runId}-peer`;
  const outTopic = `${ctx.runId}-peer-out`;
  await createTopics(ctx.admin, [topic, outTopic], config.partitions);
  ctx.topics.push(topic, outTopic);
  ctx.log(`peer: ${config.peerMessages} messages/events through pg-transactional-outbox (polling)`);
  await produceMessages(ctx.kafka, [topic], {
    runId: `${ctx.runId}-peer`,
    count: config.peerMessages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  const inbox = await spawnWorker<ConsumerResult>('peer-inbox-consumer', {
    ...ctx.services,
    schema: ctx.schema,
    peerSchema: ctx.peer.schema,
    peerTable: ctx.peer.inboxTable,
    peerFunction: ctx.peer.inboxFunction,
    batchSize: peerBatchSize,
    topic,
    groupId: `${ctx.runId}-peer-inbox`,
    endOffsets: await endOffsets(ctx.admin, topic),
    concurrency: config.consumerConcurrency,
    syncCommit: 'server',
    limit: config.peerMessages,
  }).result();
  ctx.log(
    `  peer-inbox             ${String(inbox.messages).padStart(7)} msgs in ${(inbox.elapsedMs / 1000).toFixed(2)} s = ${Math.round(inbox.msgsPerS)}/s, peak RSS ${inbox.peakRssMb} MiB`,
  );
  await fillPeerOutbox(ctx.pool, ctx.peer, {
    count: config.peerMessages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  const relay = await spawnWorker<RelayResult>('peer-relay', {
    ...ctx.services,
    schema: ctx.schema,
    peerSchema: ctx.peer.schema,
    peerTable: ctx.peer.outboxTable,
    peerFunction: ctx.peer.outboxFunction,
    batchSize: peerBatchSize,
    topic: outTopic,
    syncCommit: 'server',
    expected: config.peerMessages,
  }).result();
  ctx.log(
    `  peer-outbox            ${String(relay.events).padStart(7)} events in ${(relay.elapsedMs / 1000).toFixed(2)} s = ${Math.round(relay.eventsPerS)}/s, peak RSS ${relay.peakRssMb} MiB`,
  );
  results.peer_inbox_msgs_per_s = round(inbox.msgsPerS);
  results.peer_outbox_events_per_s = round(relay.eventsPerS);
  results.peer_inbox_consumer_peak_rss_mb = inbox.peakRssMb;
  results.peer_relay_peak_rss_mb = relay.peakRssMb;
  if (typeof results.inbox_batch_msgs_per_s === 'number')
    results.inbox_speedup_vs_peer = round(results.inbox_batch_msgs_per_s / inbox.msgsPerS, 2);
  if (typeof results.relay_drain_events_per_s === 'number')
    results.relay_speedup_vs_peer = round(results.relay_drain_events_per_s / relay.eventsPerS, 2);
}
