import {
  alreadyStarted,
  type BatchControl,
  type BatchListener,
  type ConsumerTransport,
  checkDurationMs,
  invalidOptions,
  type LogOffsets,
  type MessageHeaders,
  OnceflowError,
  sleep,
  type TransportMessage,
  type TransportReporter,
} from '@onceflow/core';
import { Admin, Consumer, type GroupAssignment, type GroupPartitionsAssigner } from '@platformatic/kafka';
import { clientIdFor, isConnection, type PlatformaticKafkaConnection } from './client';
import { describeError, protocolCodes } from './errors';

/**
 * The @platformatic/kafka consumer settings onceflow passes through: group timing, fetch sizes,
 * isolation, static membership, the client's request retries. `groupId`, `autocommit` and
 * deserializers are the adapter's.
 */
export interface PlatformaticConsumerConfig {
  /** Milliseconds without a heartbeat before the coordinator drops the member. */
  sessionTimeout?: number;
  /** Milliseconds between heartbeats. */
  heartbeatInterval?: number;
  /** Milliseconds the coordinator waits for members to rejoin during a rebalance. */
  rebalanceTimeout?: number;
  /** Milliseconds an idle fetch waits on the broker. */
  maxWaitTime?: number;
  /** Bytes a fetch waits for before the broker answers. */
  minBytes?: number;
  /** Most bytes one fetch returns. */
  maxBytes?: number;
  /** Most bytes one fetch returns per partition. */
  maxBytesPerPartition?: number;
  /** 1 for read_committed, 0 for read_uncommitted. */
  isolationLevel?: number;
  /** Milliseconds one request may take. */
  timeout?: number;
  /** Milliseconds to wait for a broker connection. */
  connectTimeout?: number;
  /** Attempts of one request after the first. */
  retries?: number;
  /** Milliseconds between attempts of one request. */
  retryDelay?: number;
  /** Milliseconds the client keeps cluster metadata. */
  metadataMaxAge?: number;
  /** How the group leader spreads partitions over members (the client's round robin by default). */
  partitionAssigner?: GroupPartitionsAssigner;
}

/** The parts of a fetch response this transport reads. */
interface FetchedPartition {
  partitionIndex: number;
  errorCode: number;
  highWatermark: bigint;
  logStartOffset: bigint;
  records?:
    | {
        firstOffset: bigint;
        lastOffsetDelta: number;
        attributes: number;
        firstTimestamp: bigint;
        records: {
          offsetDelta: number;
          timestampDelta: bigint;
          key: Buffer | null;
          value: Buffer | null;
          headers: [Buffer | null, Buffer | null][];
        }[];
      }[]
    | null;
}
interface FetchResponse {
  responses: { topicId: string; partitions: FetchedPartition[] }[];
}

/**
 * The @platformatic/kafka consumer settings onceflow passes unless `consumerConfig` overrides them,
 * the same choices as the kafkajs adapter's (see its `defaultKafkajsConsumerConfig`):
 *
 * - `sessionTimeout` 6000 ms: a crashed member's partitions move within seconds. The client sends
 *   heartbeats from a timer of its own, so a long handler keeps the membership as long as the event
 *   loop is not blocked for a whole session.
 * - `heartbeatInterval` 1000 ms: six heartbeats per session.
 * - `rebalanceTimeout` 60000 ms: how long the coordinator waits for members to rejoin.
 * - `maxWaitTime` 1000 ms: how long an idle fetch waits on the broker; while batches are being
 *   processed the adapter fetches with at most 100 ms so that a finished partition is fetched again soon.
 * - `isolationLevel` 1 (read_committed): records of aborted or open transactions are never delivered.
 * - `retries` 10 with 250 ms between attempts: how long the client retries one request before the
 *   adapter's own backoff (up to 10 s between attempts) takes over.
 */
export const defaultPlatformaticConsumerConfig: Readonly<PlatformaticConsumerConfig> = Object.freeze({
  sessionTimeout: 6_000,
  heartbeatInterval: 1_000,
  rebalanceTimeout: 60_000,
  maxWaitTime: 1_000,
  isolationLevel: 1,
  retries: 10,
  retryDelay: 250,
});

/** Options of {@link createPlatformaticConsumerTransport}. */
export interface PlatformaticConsumerTransportOptions {
  /** How to reach the cluster (`bootstrapBrokers`, `tls`, `sasl`...). Required. */
  kafka: PlatformaticKafkaConnection;
  /** Consumer group id. Required. */
  groupId: string;
  /** Topics to subscribe to. Required, at least one. */
  topics: readonly string[];
  /** Where a group without committed offsets starts: true for the earliest offset. Default: true. */
  fromBeginning?: boolean;
  /** Partitions processed in parallel by this instance; each takes a pool connection while it runs. Default: 3. */
  partitionsConsumedConcurrently?: number;
  /**
   * Static membership (Kafka's `group.instance.id`, KIP-345): a stable name of this instance, unique
   * in the group (for example the pod name). A member restarted under the same name within
   * `sessionTimeout` gets its partitions back without a rebalance. Default: none (dynamic membership).
   */
  groupInstanceId?: string;
  /**
   * Further @platformatic/kafka consumer settings, merged over
   * {@link defaultPlatformaticConsumerConfig}. Default: {@link defaultPlatformaticConsumerConfig}.
   */
  consumerConfig?: PlatformaticConsumerConfig;
}

/** Defaults of {@link PlatformaticConsumerTransportOptions}, besides {@link defaultPlatformaticConsumerConfig}. */
export const defaultPlatformaticConsumerTransportOptions = Object.freeze({
  fromBeginning: true,
  partitionsConsumedConcurrently: 3,
});

const component = 'inbox consumer';

function checkOptions(options: PlatformaticConsumerTransportOptions): void {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (!isConnection(options.kafka))
    invalidOptions(
      component,
      'kafka must be @platformatic/kafka client options ({ bootstrapBrokers: [...] })',
    );
  if (
    !Array.isArray(options.topics) ||
    options.topics.length === 0 ||
    options.topics.some((topic) => typeof topic !== 'string' || topic.length === 0)
  )
    invalidOptions(component, 'topics must be a non-empty array of topic names');
  const concurrency = options.partitionsConsumedConcurrently;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
    invalidOptions(component, `partitionsConsumedConcurrently must be an integer >= 1 (got ${concurrency})`);
  const config = options.consumerConfig;
  for (const name of ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTime'] as const)
    if (config?.[name] !== undefined) checkDurationMs(component, `consumerConfig.${name}`, config[name]);
  if (typeof options.groupId !== 'string' || options.groupId.length === 0)
    invalidOptions(component, 'groupId must be a non-empty string (default: the consumer name)');
  if (
    options.groupInstanceId !== undefined &&
    (typeof options.groupInstanceId !== 'string' || !/^\S+$/.test(options.groupInstanceId))
  )
    invalidOptions(component, 'groupInstanceId must be a non-empty string without spaces');
}

// Attribute bit of a record batch holding transaction markers (commit/abort), not records.
const controlBatch = 0x20;
const offsetOutOfRange = 1;

/** Most time in milliseconds between attempts after the client gave up on a request. */
const maxBackoffMs = 10_000;

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to fetch; undefined until read from the group's committed offsets. */
  position: bigint | undefined;
  busy: boolean;
  paused: boolean;
  /** Bumped at every group join: a batch of an earlier generation is stale. */
  generation: number;
  /** A fetched batch waiting for a free processing slot (see `partitionsConsumedConcurrently`). */
  ready: ReadyBatch | undefined;
}

interface ReadyBatch {
  readonly messages: TransportMessage[];
  readonly next: bigint;
  readonly highWatermark: bigint;
  readonly generation: number;
}

const keyOf = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

function toMessages(
  partition: FetchedPartition,
  from: bigint,
): { messages: TransportMessage[]; next: bigint } {
  const messages: TransportMessage[] = [];
  let next = from;
  for (const batch of partition.records ?? []) {
    const end = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
    if (end > next) next = end;
    if ((batch.attributes & controlBatch) !== 0) continue;
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < from) continue;
      const headers: MessageHeaders = {};
      for (const [name, value] of record.headers) {
        if (name === null) continue;
        const key = name.toString('utf8');
        if (!(key in headers)) headers[key] = value ?? undefined;
      }
      messages.push({
        offset: offset.toString(),
        timestamp: Number(batch.firstTimestamp + record.timestampDelta),
        key: record.key ?? null,
        value: record.value ?? null,
        headers,
      });
    }
  }
  return { messages, next };
}

/**
 * The inbox's {@link ConsumerTransport} on @platformatic/kafka. The client's `Consumer` keeps the
 * group membership (joins, heartbeats from its own timer, rejoins after a rebalance); this transport
 * runs its own fetch loop over the assigned partitions, so that each partition is fetched in batches
 * from a position it controls (the committed offset at assignment, the database's stored position
 * after a seek), is never fetched while a batch of it is being processed, can be paused alone, and
 * has its offset committed only when the engine says so, after the database commit.
 */
export function createPlatformaticConsumerTransport(
  options: PlatformaticConsumerTransportOptions,
): ConsumerTransport {
  checkOptions(options);
  const fromBeginning = options.fromBeginning ?? defaultPlatformaticConsumerTransportOptions.fromBeginning;
  const concurrency =
    options.partitionsConsumedConcurrently ??
    defaultPlatformaticConsumerTransportOptions.partitionsConsumedConcurrently;
  const config = { ...defaultPlatformaticConsumerConfig, ...options.consumerConfig };
  const maxWaitTime = config.maxWaitTime ?? 1_000;
  const topics = [...options.topics];
  const connection = options.kafka;

  let reporter: TransportReporter | undefined;
  let consumer: Consumer | undefined;
  let stopping: Promise<void> | undefined;
  const stopSignal = new AbortController();
  const states = new Map<string, PartitionState>();
  // topic → owned partitions; undefined before the first join and while rejoining.
  let assignment: Map<string, Set<number>> | undefined;
  let generation = 0;
  const running = new Set<Promise<void>>();
  // Partitions holding a fetched batch, in the order they got it: dispatched as slots free up.
  const waiting: PartitionState[] = [];
  let wakeUp: (() => void) | undefined;
  let loopDone: Promise<void> | undefined;
  let rejoining: Promise<void> | undefined;
  let forceMetadata = false;

  const report = (error: OnceflowError): void => {
    try {
      reporter?.onError(error);
    } catch {
      // A failing reporter must not stop the consumer.
    }
  };
  const wake = (): void => {
    const resolve = wakeUp;
    wakeUp = undefined;
    resolve?.();
  };
  const waitForWake = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      wakeUp = done;
    });

  const owns = (topic: string, partition: number): boolean =>
    (assignment?.get(topic)?.has(partition) ?? false) && consumer?.isActive() === true;

  const stateOf = (topic: string, partition: number): PartitionState => {
    const key = keyOf(topic, partition);
    let state = states.get(key);
    if (state === undefined) {
      state = {
        topic,
        partition,
        position: undefined,
        busy: false,
        paused: false,
        generation,
        ready: undefined,
      };
      states.set(key, state);
    }
    return state;
  };

  const onJoin = (assignments: readonly GroupAssignment[] | undefined): void => {
    generation++;
    const owned = new Map<string, Set<number>>();
    for (const { topic, partitions } of assignments ?? []) owned.set(topic, new Set(partitions));
    assignment = owned;
    // Every partition starts again from the group's committed offset: another member may have
    // processed it meanwhile, and the engine seeks further when the database is ahead.
    for (const state of states.values()) {
      state.generation = generation;
      state.position = undefined;
      state.ready = undefined;
    }
    waiting.length = 0;
    wake();
  };

  const logOffsets = async (topic: string, partition: number): Promise<LogOffsets> => {
    const c = consumer;
    if (c === undefined) throw new OnceflowError('OF_STOPPED', 'consumer is stopped', { retriable: true });
    const ask = (timestamp: bigint) =>
      c.listOffsets({ topics: [topic], partitions: { [topic]: [partition] }, timestamp, isolationLevel: 0 });
    const [earliest, latest] = await Promise.all([ask(-2n), ask(-1n)]);
    const start = earliest.get(topic)?.[partition];
    const end = latest.get(topic)?.[partition];
    if (start === undefined || end === undefined)
      throw new OnceflowError(
        'OF_UNAVAILABLE',
        `partition ${topic}[${partition}] is not in the topic's metadata`,
        {
          retriable: true,
        },
      );
    return { start: start.toString(), end: end.toString() };
  };

  /** Reads the committed offsets of the partitions that have no position yet (reset by `fromBeginning`). */
  const resolvePositions = async (c: Consumer, pending: PartitionState[]): Promise<void> => {
    const byTopic = new Map<string, number[]>();
    for (const state of pending)
      byTopic.set(state.topic, [...(byTopic.get(state.topic) ?? []), state.partition]);
    const asked = generation;
    const committed = await c.listCommittedOffsets({
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
    });
    const missing = pending.filter((state) => (committed.get(state.topic)?.[state.partition] ?? -1n) < 0n);
    const resets = new Map<string, bigint[]>();
    if (missing.length > 0) {
      const missingTopics = [...new Set(missing.map((state) => state.topic))];
      const listed = await c.listOffsets({ topics: missingTopics, timestamp: fromBeginning ? -2n : -1n });
      for (const topic of missingTopics) resets.set(topic, listed.get(topic) ?? []);
    }
    if (asked !== generation) return;
    for (const state of pending) {
      const offset = committed.get(state.topic)?.[state.partition] ?? -1n;
      state.position = offset >= 0n ? offset : (resets.get(state.topic)?.[state.partition] ?? 0n);
    }
  };

  /** Moves partitions whose position the broker refused as out of range to the log start or end. */
  const outOfRange = (error: unknown, wanted: Map<string, PartitionState>): boolean => {
    const response = (error as { response?: FetchResponse } | null)?.response;
    if (!response?.responses) return false;
    let moved = false;
    for (const topicResponse of response.responses) {
      for (const partition of topicResponse.partitions) {
        if (partition.errorCode !== offsetOutOfRange) continue;
        const state = wanted.get(keyOf(topicResponse.topicId, partition.partitionIndex));
        if (state === undefined) continue;
        const target = fromBeginning ? partition.logStartOffset : partition.highWatermark;
        if (target < 0n) continue;
        state.position = target;
        moved = true;
      }
    }
    return moved;
  };

  const dispatch = (
    listener: BatchListener,
    state: PartitionState,
    messages: TransportMessage[],
    fetchedTo: bigint,
    highWatermark: bigint,
  ): void => {
    const { topic, partition } = state;
    const batchGeneration = state.generation;
    let resolved: bigint | undefined;
    let seekTo: bigint | undefined;
    const last = BigInt(messages.at(-1)!.offset);
    const first = BigInt(messages[0]!.offset);
    const current = (): boolean =>
      stopping === undefined &&
      seekTo === undefined &&
      state.generation === batchGeneration &&
      owns(topic, partition);
    const control: BatchControl = {
      isActive: current,
      async commit(nextOffset) {
        const next = BigInt(nextOffset);
        if (resolved === undefined || next > resolved) resolved = next;
        const c = consumer;
        if (c === undefined || !owns(topic, partition)) return;
        try {
          await c.commit({ offsets: [{ topic, partition, offset: next, leaderEpoch: -1 }] });
        } catch {
          // The database holds the position; a lost broker commit only costs a skipped redelivery.
        }
      },
      seek(nextOffset) {
        seekTo = BigInt(nextOffset);
      },
      async heartbeat() {
        // The client heartbeats from its own timer; what the engine needs to know is whether the
        // group is rebalancing (or rebalanced), which ends this batch.
        if (!(stopping === undefined && state.generation === batchGeneration && owns(topic, partition)))
          throw new OnceflowError('OF_UNAVAILABLE', `partition ${topic}[${partition}] is being reassigned`, {
            retriable: true,
          });
      },
      pause() {
        state.paused = true;
      },
      logOffsets: () => logOffsets(topic, partition),
    };
    state.busy = true;
    const run: Promise<void> = (async () => {
      try {
        await listener({ topic, partition, messages, highWatermark: highWatermark.toString() }, control);
      } catch (error) {
        report(
          new OnceflowError(
            'OF_UNAVAILABLE',
            `batch of ${topic}[${partition}] failed (${describeError(error)}); fetching it again`,
            {
              retriable: true,
              cause: error,
            },
          ),
        );
      } finally {
        state.busy = false;
        if (state.generation === batchGeneration) {
          if (seekTo !== undefined) state.position = seekTo;
          else if (resolved !== undefined && resolved > last)
            state.position = fetchedTo > resolved ? fetchedTo : resolved;
          else state.position = resolved ?? first;
        }
      }
    })();
    running.add(run);
    void run.finally(() => {
      running.delete(run);
      wake();
    });
  };

  /** Starts the waiting batches that are still current, as long as processing slots are free. */
  const dispatchWaiting = (listener: BatchListener): void => {
    while (running.size < concurrency && waiting.length > 0) {
      const state = waiting.shift()!;
      const ready = state.ready;
      state.ready = undefined;
      if (ready === undefined || ready.generation !== state.generation || stopping !== undefined) continue;
      if (!owns(state.topic, state.partition)) continue;
      dispatch(listener, state, ready.messages, ready.next, ready.highWatermark);
    }
  };

  const fetchLoop = async (c: Consumer, listener: BatchListener): Promise<void> => {
    let failures = 0;
    while (stopping === undefined) {
      try {
        if (assignment === undefined || !c.isActive()) {
          await waitForWake(200);
          continue;
        }
        const owned: PartitionState[] = [];
        for (const [topic, partitions] of assignment)
          for (const partition of partitions) owned.push(stateOf(topic, partition));
        const pending = owned.filter((state) => state.position === undefined && !state.busy);
        if (pending.length > 0) await resolvePositions(c, pending);
        dispatchWaiting(listener);
        // Every idle partition is fetched, whatever the free processing slots: a partition without data
        // must not keep one with data from being fetched. What cannot start at once waits in `waiting`.
        const idle = owned.filter(
          (state) =>
            !state.busy && !state.paused && state.position !== undefined && state.ready === undefined,
        );
        if (idle.length === 0) {
          await waitForWake(maxWaitTime);
          continue;
        }
        const metadata = await c.metadata({ topics, forceUpdate: forceMetadata });
        forceMetadata = false;
        const byNode = new Map<number, Map<string, PartitionState>>();
        for (const state of idle) {
          const topicMetadata = metadata.topics.get(state.topic);
          const leader = topicMetadata?.partitions[state.partition]?.leader;
          if (topicMetadata === undefined || leader === undefined || leader < 0) {
            forceMetadata = true;
            continue;
          }
          const wanted = byNode.get(leader) ?? new Map<string, PartitionState>();
          wanted.set(keyOf(topicMetadata.id, state.partition), state);
          byNode.set(leader, wanted);
        }
        if (byNode.size === 0) {
          await waitForWake(250);
          continue;
        }
        const fetchGeneration = generation;
        const waitMs = running.size > 0 || waiting.length > 0 ? Math.min(100, maxWaitTime) : maxWaitTime;
        const results = await Promise.allSettled(
          [...byNode].map(async ([node, wanted]) => {
            const requested = new Map([...wanted].map(([key, state]) => [key, state.position!]));
            const byTopicId = new Map<string, { partition: number; fetchOffset: bigint }[]>();
            for (const [key, state] of wanted) {
              const topicId = key.slice(0, key.lastIndexOf('\u0000'));
              byTopicId.set(topicId, [
                ...(byTopicId.get(topicId) ?? []),
                { partition: state.partition, fetchOffset: state.position! },
              ]);
            }
            try {
              const response: FetchResponse = await c.fetch({
                node,
                maxWaitTime: waitMs,
                topics: [...byTopicId].map(([topicId, partitions]) => ({
                  topicId,
                  partitions: partitions.map(({ partition, fetchOffset }) => ({
                    partition,
                    fetchOffset,
                    currentLeaderEpoch: -1,
                    lastFetchedEpoch: -1,
                    partitionMaxBytes: config.maxBytesPerPartition ?? 1_048_576,
                  })),
                })),
              });
              return { response, wanted, requested };
            } catch (error) {
              if (outOfRange(error, wanted)) return undefined;
              throw error;
            }
          }),
        );
        let failed: unknown;
        for (const result of results) {
          if (result.status === 'rejected') {
            failed = result.reason;
            continue;
          }
          if (result.value === undefined) continue;
          const { response, wanted, requested } = result.value;
          for (const topicResponse of response.responses) {
            for (const partitionResponse of topicResponse.partitions) {
              const key = keyOf(topicResponse.topicId, partitionResponse.partitionIndex);
              const state = wanted.get(key);
              const from = requested.get(key);
              if (state === undefined || from === undefined || partitionResponse.errorCode !== 0) continue;
              // A join or seek since the fetch went out: its records are from a stale position.
              if (generation !== fetchGeneration || state.position !== from || state.busy) continue;
              if (!owns(state.topic, state.partition) || stopping !== undefined) continue;
              const { messages, next } = toMessages(partitionResponse, from);
              if (messages.length === 0) {
                state.position = next;
                continue;
              }
              state.ready = { messages, next, highWatermark: partitionResponse.highWatermark, generation };
              waiting.push(state);
            }
          }
        }
        dispatchWaiting(listener);
        if (failed !== undefined) throw failed;
        failures = 0;
      } catch (error) {
        if (stopping !== undefined) return;
        failures++;
        forceMetadata = true;
        const codes = [...protocolCodes(error)];
        if (failures === 1 || failures % 10 === 0)
          report(
            new OnceflowError(
              'OF_UNAVAILABLE',
              `kafka consumer of group ${options.groupId} could not fetch (${describeError(error)}); trying again`,
              { retriable: true, cause: error, details: { groupId: options.groupId, codes } },
            ),
          );
        await sleep(Math.min(maxBackoffMs, 250 * 2 ** Math.min(failures, 6)), stopSignal.signal);
      }
    }
  };

  /** Joins again after the client gave up rejoining (a rejoin that failed ends its heartbeats). */
  const rejoin = (c: Consumer): void => {
    rejoining ??= (async () => {
      let attempt = 0;
      while (stopping === undefined && !c.isActive()) {
        await sleep(Math.min(maxBackoffMs, 250 * 2 ** Math.min(attempt++, 6)), stopSignal.signal);
        if (stopping !== undefined) return;
        try {
          await c.joinGroup({});
        } catch (error) {
          report(
            new OnceflowError(
              'OF_UNAVAILABLE',
              `kafka consumer of group ${options.groupId} could not rejoin (${describeError(error)}); trying again`,
              { retriable: true, cause: error, details: { groupId: options.groupId } },
            ),
          );
        }
      }
    })().finally(() => {
      rejoining = undefined;
    });
  };

  return {
    topics: options.topics,
    async ensureTopics(required, { create }) {
      if (required.length === 0) return [];
      const admin = new Admin({ ...connection, clientId: clientIdFor(connection, 'inbox-admin') });
      try {
        const listed = new Set(await admin.listTopics());
        const absent = required.filter((wanted) => !listed.has(wanted.topic));
        if (absent.length === 0) return [];
        const partitionsOf = async (like: readonly string[]): Promise<number> => {
          const sources = like.filter((topic) => listed.has(topic));
          if (sources.length === 0) return -1;
          const metadata = await admin.metadata({ topics: sources });
          return Math.max(...sources.map((topic) => metadata.topics.get(topic)?.partitionsCount ?? -1));
        };
        const missing = await Promise.all(
          absent.map(async (wanted) => ({
            topic: wanted.topic,
            partitions: await partitionsOf(wanted.like),
          })),
        );
        if (create)
          for (const { topic, partitions } of missing)
            await admin.createTopics({ topics: [topic], partitions, replicas: -1 });
        return missing;
      } finally {
        await admin.close().catch(() => undefined);
      }
    },
    async run(listener, runReporter) {
      if (consumer) alreadyStarted('platformatic consumer transport');
      reporter = runReporter;
      const created = new Consumer({
        ...connection,
        ...config,
        clientId: clientIdFor(connection, 'inbox'),
        groupId: options.groupId,
        ...(options.groupInstanceId === undefined ? {} : { groupInstanceId: options.groupInstanceId }),
        autocommit: false,
      });
      consumer = created;
      created.on('consumer:group:join', (payload) => onJoin(payload.assignments));
      created.on('consumer:group:rebalance', () => {
        assignment = undefined;
      });
      created.on('consumer:group:leave', () => {
        assignment = undefined;
      });
      // The client emits a failed rejoin here, and sends no heartbeats after it: join again.
      created.on('error', (error: unknown) => {
        if (stopping !== undefined) return;
        assignment = undefined;
        report(
          new OnceflowError(
            'OF_UNAVAILABLE',
            `kafka consumer of group ${options.groupId} lost its membership (${describeError(error)}); rejoining`,
            { retriable: true, cause: error, details: { groupId: options.groupId } },
          ),
        );
        rejoin(created);
      });
      for (const topic of topics) created.topics.track(topic);
      await created.joinGroup({});
      loopDone = fetchLoop(created, listener);
    },
    stop() {
      stopping ??= (async () => {
        stopSignal.abort();
        wake();
        await loopDone;
        await Promise.all([...running]);
        await rejoining;
        await consumer?.close(true).catch(() => undefined);
      })();
      return stopping;
    },
  };
}
