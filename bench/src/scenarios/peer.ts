import { quoteIdentifier } from '@onceflow/postgres';
import pg from 'pg';
import { DatabaseSetup } from 'pg-transactional-outbox';
import { startPrivatePostgres } from '../../../test/support/private-postgres';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import { createTopics, endOffsets, fillPeerOutbox, type PeerObjects, produceMessages } from '../services';
import type { Services } from '../shared';
import type { ConsumerResult, PeerModeParams } from '../workers/consumers';
import type { RelayResult } from '../workers/relays';

/** Batch size given to the peer's polling listener (its default is 5; a larger one only helps it here). */
const peerBatchSize = 50;

type PeerMode = PeerModeParams['peerMode'];

interface PeerRun {
  inbox: ConsumerResult;
  relay: RelayResult;
}

/**
 * The peer's inbox (from Kafka to committed effect rows) and outbox (from a pre-filled backlog to
 * messages acknowledged by the broker) in one mode, against the database at `services`.
 */
async function peerRun(
  ctx: BenchContext,
  mode: PeerMode,
  services: Services,
  pool: pg.Pool,
  peer: PeerObjects,
  replication: { inbox: Partial<PeerModeParams>; outbox: Partial<PeerModeParams> },
): Promise<PeerRun> {
  const { config } = ctx;
  const topic = `${ctx.runId}-peer-${mode}`;
  const outTopic = `${ctx.runId}-peer-${mode}-out`;
  await createTopics(ctx.admin, [topic, outTopic], config.partitions);
  ctx.topics.push(topic, outTopic);
  await produceMessages(ctx.kafka, [topic], {
    runId: `${ctx.runId}-peer-${mode}`,
    count: config.peerMessages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  const common = {
    ...services,
    schema: ctx.schema,
    peerSchema: peer.schema,
    batchSize: peerBatchSize,
    peerMode: mode,
  };
  const inbox = await spawnWorker<ConsumerResult>('peer-inbox-consumer', {
    ...common,
    ...replication.inbox,
    peerTable: peer.inboxTable,
    peerFunction: peer.inboxFunction,
    topic,
    groupId: `${ctx.runId}-peer-${mode}-inbox`,
    endOffsets: await endOffsets(ctx.admin, topic),
    concurrency: config.consumerConcurrency,
    syncCommit: 'server',
    limit: config.peerMessages,
  }).result();
  if (inbox.messages < config.peerMessages)
    ctx.notes.push(
      `peer ${mode}: its inbox listener left ${config.peerMessages - inbox.messages} of ${config.peerMessages} stored messages unprocessed (no progress for 15 s); its rate counts those it processed`,
    );
  ctx.log(
    `  peer-inbox-${mode.padEnd(11)} ${String(inbox.messages).padStart(7)} msgs in ${(inbox.elapsedMs / 1000).toFixed(2)} s = ${Math.round(inbox.msgsPerS)}/s, peak RSS ${inbox.peakRssMb} MiB`,
  );
  await fillPeerOutbox(pool, peer, {
    count: config.peerMessages,
    valueBytes: config.valueBytes,
    keys: config.keys,
  });
  const relay = await spawnWorker<RelayResult>('peer-relay', {
    ...common,
    ...replication.outbox,
    peerTable: peer.outboxTable,
    peerFunction: peer.outboxFunction,
    topic: outTopic,
    syncCommit: 'server',
    expected: config.peerMessages,
  }).result();
  if (relay.events < config.peerMessages)
    ctx.notes.push(
      `peer ${mode}: its outbox listener left ${config.peerMessages - relay.events} of ${config.peerMessages} events unpublished (no progress for 15 s); its rate counts those it published`,
    );
  ctx.log(
    `  peer-outbox-${mode.padEnd(10)} ${String(relay.events).padStart(7)} events in ${(relay.elapsedMs / 1000).toFixed(2)} s = ${Math.round(relay.eventsPerS)}/s, peak RSS ${relay.peakRssMb} MiB`,
  );
  return { inbox, relay };
}

/**
 * A private Postgres with `wal_level=logical` (the machine's server binaries, durable settings as
 * the shared server's: fsync and synchronous_commit on), with the peer's tables, a publication and
 * a logical replication slot for each, and the bench's effects table.
 */
async function logicalServer(ctx: BenchContext) {
  const server = await startPrivatePostgres({
    settings: {
      wal_level: 'logical',
      max_replication_slots: 8,
      max_wal_senders: 8,
      fsync: 'on',
      full_page_writes: 'on',
      synchronous_commit: 'on',
    },
  });
  const pool = new pg.Pool({ connectionString: server.url, max: 4 });
  const peer: PeerObjects = { ...ctx.peer, schema: `${ctx.schema}_peer` };
  const s = quoteIdentifier(ctx.schema);
  await pool.query(`CREATE SCHEMA ${s};
    CREATE TABLE ${s}.effects (
      consumer text NOT NULL, message_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
      "offset" text NOT NULL, bytes integer NOT NULL, PRIMARY KEY (consumer, message_id));
    CREATE SCHEMA ${quoteIdentifier(peer.schema)};`);
  const replication: { inbox: Partial<PeerModeParams>; outbox: Partial<PeerModeParams> } = {
    inbox: {},
    outbox: {},
  };
  for (const kind of ['inbox', 'outbox'] as const) {
    const setup = {
      outboxOrInbox: kind,
      database: 'postgres',
      schema: quoteIdentifier(peer.schema),
      table: kind,
      listenerRole: 'postgres',
      publication: `${ctx.runId}_${kind}_pub`,
      replicationSlot: `${ctx.runId}_${kind}_slot`,
    };
    await pool.query(
      `SET search_path TO ${quoteIdentifier(peer.schema)}; ${DatabaseSetup.dropAndCreateTable(setup)} ${DatabaseSetup.setupReplicationCore(setup)} RESET search_path;`,
    );
    // The slot must be created outside the transaction that created the publication.
    await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [setup.replicationSlot]);
    replication[kind] = { publication: setup.publication, slot: setup.replicationSlot };
  }
  return { server, pool, peer, replication };
}

/**
 * The same inbox and outbox work with pg-transactional-outbox in both its modes: polling, against the
 * shared server, and logical replication (its fast path), against a private server with
 * `wal_level=logical` started for it (the shared server's settings are never changed). The
 * `inbox_speedup_vs_peer` and `relay_speedup_vs_peer` figures compare with the peer's better mode.
 */
export async function runPeerGroup(ctx: BenchContext): Promise<void> {
  const { config, results } = ctx;
  ctx.notes.push(
    `peer: pg-transactional-outbox 0.5.7; polling mode with batch size ${peerBatchSize} from the first poll and a 50 ms interval; logical replication mode on a private server with wal_level=logical (fsync and synchronous_commit on) with one mutex per segment; one segment per key (per-key order kept, as onceflow keeps it)`,
  );
  ctx.log(
    `peer: ${config.peerMessages} messages/events through pg-transactional-outbox, polling and logical replication`,
  );
  const polling = await peerRun(ctx, 'polling', ctx.services, ctx.pool, ctx.peer, { inbox: {}, outbox: {} });
  results.peer_inbox_msgs_per_s = round(polling.inbox.msgsPerS);
  results.peer_outbox_events_per_s = round(polling.relay.eventsPerS);
  results.peer_inbox_consumer_peak_rss_mb = polling.inbox.peakRssMb;
  results.peer_relay_peak_rss_mb = polling.relay.peakRssMb;
  let best = { inbox: polling.inbox.msgsPerS, outbox: polling.relay.eventsPerS };
  let logical: Awaited<ReturnType<typeof logicalServer>> | undefined;
  if (!config.privateServers)
    ctx.notes.push('peer logical replication mode: not run with --quick (it starts a Postgres of its own)');
  else
    try {
      logical = await logicalServer(ctx);
      const services: Services = { ...ctx.services, databaseUrl: logical.server.url };
      const replication = await peerRun(
        ctx,
        'replication',
        services,
        logical.pool,
        logical.peer,
        logical.replication,
      );
      results.peer_logical_inbox_msgs_per_s = round(replication.inbox.msgsPerS);
      results.peer_logical_outbox_events_per_s = round(replication.relay.eventsPerS);
      results.peer_logical_inbox_consumer_peak_rss_mb = replication.inbox.peakRssMb;
      results.peer_logical_relay_peak_rss_mb = replication.relay.peakRssMb;
      best = {
        inbox: Math.max(best.inbox, replication.inbox.msgsPerS),
        outbox: Math.max(best.outbox, replication.relay.eventsPerS),
      };
    } catch (error) {
      results.peer_logical_inbox_msgs_per_s = null;
      results.peer_logical_outbox_events_per_s = null;
      ctx.notes.push(
        `peer logical replication mode not measured: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
    } finally {
      await logical?.pool.end().catch(() => undefined);
      await logical?.server.dispose().catch(() => undefined);
    }
  results.peer_best_inbox_msgs_per_s = round(best.inbox);
  results.peer_best_outbox_events_per_s = round(best.outbox);
  if (typeof results.inbox_batch_msgs_per_s === 'number')
    results.inbox_speedup_vs_peer = round(results.inbox_batch_msgs_per_s / best.inbox, 2);
  if (typeof results.relay_drain_events_per_s === 'number')
    results.relay_speedup_vs_peer = round(results.relay_drain_events_per_s / best.outbox, 2);
}
