import {
  alreadyStarted,
  type BatchControl,
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
import type {
  Admin,
  Consumer,
  ConsumerConfig,
  ConsumerRunConfig,
  IHeaders,
  Kafka,
  KafkaMessage,
} from 'kafkajs';

/**
 * The kafkajs consumer settings onceflow passes unless `consumerConfig` overrides them, chosen so that
 * a consumer resumes within seconds after a broker restart instead of after kafkajs's 30 s session:
 *
 * - `sessionTimeout` 6000 ms (the broker's minimum by default): after a broker crash the restarted
 *   consumer joins as a new member and waits until the coordinator drops the old one, a session after
 *   the group was reloaded. A short session is safe for long handlers because the inbox engine asks
 *   for a heartbeat every 500 ms while it works on a batch (handler calls, claims and lock waits
 *   included), so only an event loop blocked for 6 s would cost the membership — and then the price is
 *   a rebalance and a redelivery that the inbox deduplicates, never a double effect.
 * - `heartbeatInterval` 1000 ms: six heartbeats per session, so five may be lost before it expires.
 * - `maxWaitTimeInMs` 1000 ms: kafkajs heartbeats between fetches, and an idle fetch waits this long
 *   on the broker; kafkajs's 5000 ms would leave too little of the session.
 * - `rebalanceTimeout` 60000 ms (kafkajs's): members finish the transaction in flight before they
 *   rejoin, which may take up to `handlerTimeoutMs` (30 s by default).
 * - `retry` 250 ms doubling to at most 2000 ms between attempts, 10 attempts: bounds how long after the
 *   broker's return the consumer tries again, and how long a crashed consumer waits before it restarts.
 */
export const defaultKafkajsConsumerConfig: Readonly<Omit<ConsumerConfig, 'groupId'>> = Object.freeze({
  sessionTimeout: 6_000,
  heartbeatInterval: 1_000,
  maxWaitTimeInMs: 1_000,
  rebalanceTimeout: 60_000,
  retry: Object.freeze({ initialRetryTime: 250, maxRetryTime: 2_000, retries: 10 }),
});

/** Options of {@link createKafkajsConsumerTransport}. */
export interface KafkajsConsumerTransportOptions {
  /** The kafkajs client. Required. */
  kafka: Kafka;
  /** Consumer group id. Required. */
  groupId: string;
  /** Topics to subscribe to. Required, at least one. */
  topics: readonly string[];
  /** Where a group without committed offsets starts: true for the earliest offset. Default: true. */
  fromBeginning?: boolean;
  /**
   * Partitions processed in parallel by this instance (kafkajs `partitionsConsumedConcurrently`);
   * each takes a pool connection while it runs. Default: 3.
   */
  partitionsConsumedConcurrently?: number;
  /**
   * Further kafkajs consumer settings (session timeout, fetch sizes...), merged over
   * {@link defaultKafkajsConsumerConfig} (`retry` field by field). `groupId` is set from the option
   * above. Default: {@link defaultKafkajsConsumerConfig}.
   */
  consumerConfig?: Omit<ConsumerConfig, 'groupId'>;
}

/** Defaults of {@link KafkajsConsumerTransportOptions}, besides {@link defaultKafkajsConsumerConfig}. */
export const defaultKafkajsConsumerTransportOptions = Object.freeze({
  fromBeginning: true,
  partitionsConsumedConcurrently: 3,
});

// Validation messages name the inbox consumer: that is what a user configures these options for.
const component = 'inbox consumer';

function checkOptions(options: KafkajsConsumerTransportOptions): void {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  if (options.kafka === undefined || typeof options.kafka?.consumer !== 'function')
    invalidOptions(component, 'kafka must be a kafkajs Kafka client (new Kafka({ brokers }))');
  if (
    !Array.isArray(options.topics) ||
    options.topics.length === 0 ||
    options.topics.some((topic) => typeof topic !== 'string' || topic.length === 0)
  )
    invalidOptions(component, 'topics must be a non-empty array of topic names');
  const concurrency = options.partitionsConsumedConcurrently;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
    invalidOptions(component, `partitionsConsumedConcurrently must be an integer >= 1 (got ${concurrency})`);
  // kafkajs feeds these to timers without checking them: above 2^31 - 1 ms Node fires them after 1 ms.
  const config = options.consumerConfig;
  for (const name of ['sessionTimeout', 'rebalanceTimeout', 'heartbeatInterval', 'maxWaitTimeInMs'] as const)
    if (config?.[name] !== undefined) checkDurationMs(component, `consumerConfig.${name}`, config[name]);
  for (const name of ['initialRetryTime', 'maxRetryTime'] as const)
    if (config?.retry?.[name] !== undefined)
      checkDurationMs(component, `consumerConfig.retry.${name}`, config.retry[name]);
  if (typeof options.groupId !== 'string' || options.groupId.length === 0)
    invalidOptions(component, 'groupId must be a non-empty string (default: the consumer name)');
}

function firstHeaderValues(headers: IHeaders | undefined): MessageHeaders {
  const result: MessageHeaders = {};
  if (headers === undefined) return result;
  // for…in rather than Object.entries: no array of pairs per message.
  for (const name in headers) {
    const value = headers[name];
    result[name] = Array.isArray(value) ? value[0] : value;
  }
  return result;
}

function toTransportMessage(message: KafkaMessage): TransportMessage {
  return {
    offset: message.offset,
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers: firstHeaderValues(message.headers),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Most time in milliseconds between restarts of a consumer kafkajs gave up on. */
const maxRestartDelayMs = 10_000;

/**
 * The inbox's {@link ConsumerTransport} on a kafkajs consumer: `eachBatch` with auto-commit and
 * auto-resolve off. Ownership is tracked from the group's join events; offsets are committed only for
 * partitions this member owns in the current generation, and never while a rebalance is under way.
 * A crashed kafkajs consumer is restarted: by kafkajs for retriable errors, by this transport (with
 * backoff up to 10 s) for those kafkajs would stop on; every crash is reported to the engine (through
 * the reporter `run` gets). It implements every part of the interface, the optional ones included.
 * Options are checked here: invalid ones throw OF_INVALID_OPTIONS.
 */
export function createKafkajsConsumerTransport(options: KafkajsConsumerTransportOptions): ConsumerTransport {
  checkOptions(options);
  const fromBeginning = options.fromBeginning ?? defaultKafkajsConsumerTransportOptions.fromBeginning;
  const concurrency =
    options.partitionsConsumedConcurrently ??
    defaultKafkajsConsumerTransportOptions.partitionsConsumedConcurrently;
  let reporter: TransportReporter | undefined;
  let consumer: Consumer | undefined;
  // topic → owned partitions; undefined while (re)joining, so nothing is committed then.
  let assignment: Map<string, Set<number>> | undefined;
  let stopping: Promise<void> | undefined;
  const stopSignal = new AbortController();
  let admin: Promise<Admin> | undefined;
  let restarting: Promise<void> | undefined;

  const owns = (topic: string, partition: number): boolean => assignment?.get(topic)?.has(partition) ?? false;

  const report = (error: OnceflowError): void => {
    try {
      reporter?.onError(error);
    } catch {
      // A failing reporter must not stop the consumer.
    }
  };

  /** A connected admin client, for log offsets; created on first use. */
  const adminClient = (): Promise<Admin> => {
    admin ??= (async () => {
      const created = options.kafka.admin();
      await created.connect();
      return created;
    })();
    admin.catch(() => {
      admin = undefined;
    });
    return admin;
  };

  const logOffsets = async (topic: string, partition: number): Promise<LogOffsets> => {
    const offsets = await (await adminClient()).fetchTopicOffsets(topic);
    const found = offsets.find((entry) => entry.partition === partition);
    if (found === undefined)
      throw new OnceflowError(
        'OF_UNAVAILABLE',
        `partition ${topic}[${partition}] is not in the topic's metadata`,
        {
          retriable: true,
        },
      );
    return { start: found.low, end: found.high };
  };

  const config = (): ConsumerConfig => {
    const given = options.consumerConfig ?? {};
    return {
      ...defaultKafkajsConsumerConfig,
      ...given,
      retry: { ...defaultKafkajsConsumerConfig.retry, ...given.retry },
      groupId: options.groupId,
    };
  };

  return {
    topics: options.topics,
    async ensureTopics(required, { create }) {
      if (required.length === 0) return [];
      const admin = options.kafka.admin();
      try {
        await admin.connect();
        const listed = new Set(await admin.listTopics());
        const absent = required.filter((wanted) => !listed.has(wanted.topic));
        if (absent.length === 0) return [];
        const partitionsOf = async (like: readonly string[]): Promise<number> => {
          const sources = like.filter((topic) => listed.has(topic));
          if (sources.length === 0) return -1;
          const { topics } = await admin.fetchTopicMetadata({ topics: sources });
          return Math.max(...topics.map((topic) => topic.partitions.length));
        };
        const missing = await Promise.all(
          absent.map(async (wanted) => ({
            topic: wanted.topic,
            partitions: await partitionsOf(wanted.like),
          })),
        );
        if (create)
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map(({ topic, partitions }) => ({ topic, numPartitions: partitions })),
          });
        return missing;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    async run(listener, runReporter) {
      if (consumer) alreadyStarted('kafkajs consumer transport');
      reporter = runReporter;
      const created = options.kafka.consumer(config());
      consumer = created;
      created.on(created.events.GROUP_JOIN, (event) => {
        assignment = new Map(
          Object.entries(event.payload.memberAssignment).map(([topic, partitions]) => [
            topic,
            new Set(partitions),
          ]),
        );
      });
      created.on(created.events.REBALANCING, () => {
        assignment = undefined;
      });
      created.on(created.events.STOP, () => {
        assignment = undefined;
      });
      const runConfig: ConsumerRunConfig = {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: concurrency,
        eachBatch: async (payload) => {
          const { topic, partition, highWatermark } = payload.batch;
          const control: BatchControl = {
            isActive: () =>
              stopping === undefined && payload.isRunning() && !payload.isStale() && owns(topic, partition),
            async commit(nextOffset) {
              payload.resolveOffset((BigInt(nextOffset) - 1n).toString());
              if (!owns(topic, partition)) return;
              try {
                await payload.commitOffsetsIfNecessary({
                  topics: [{ topic, partitions: [{ partition, offset: nextOffset }] }],
                });
              } catch {
                // The database holds the position; a lost broker commit only costs a skipped redelivery.
              }
            },
            seek(nextOffset) {
              created.seek({ topic, partition, offset: nextOffset });
            },
            heartbeat: () => payload.heartbeat(),
            pause() {
              payload.pause();
            },
            logOffsets: () => logOffsets(topic, partition),
          };
          await listener(
            {
              topic,
              partition,
              messages: payload.batch.messages.map(toTransportMessage),
              ...(highWatermark === undefined ? {} : { highWatermark }),
            },
            control,
          );
        },
      };

      // kafkajs restarts itself after a retriable crash (broker away longer than its retries) and
      // stops for good after any other; a stopped consumer would leave the partitions unprocessed while
      // the process looks alive, so this transport restarts it instead.
      let crashes = 0;
      let restartDue = false;
      const restartLoop = async (): Promise<void> => {
        while (restartDue && stopping === undefined) {
          restartDue = false;
          await sleep(Math.min(maxRestartDelayMs, 250 * 2 ** Math.min(crashes, 6)), stopSignal.signal);
          if (stopping !== undefined) return;
          try {
            await created.connect();
            if (stopping !== undefined) {
              await created.disconnect().catch(() => undefined);
              return;
            }
            // A failed join inside run() is a crash again: its event sets restartDue, and this loops.
            await created.run(runConfig);
          } catch (error) {
            crashes++;
            restartDue = true;
            report(
              new OnceflowError(
                'OF_UNAVAILABLE',
                `kafka consumer of group ${options.groupId} could not be restarted (${describe(error)}); trying again`,
                { retriable: true, cause: error, details: { groupId: options.groupId } },
              ),
            );
          }
        }
      };
      created.on(created.events.CRASH, (event) => {
        const { error, restart: kafkajsRestarts } = event.payload;
        crashes++;
        report(
          new OnceflowError(
            'OF_UNAVAILABLE',
            `kafka consumer of group ${options.groupId} crashed (${describe(error)}); ${kafkajsRestarts ? 'kafkajs restarts it' : 'onceflow restarts it'}`,
            {
              retriable: true,
              cause: error,
              details: { groupId: options.groupId, restartedBy: kafkajsRestarts ? 'kafkajs' : 'onceflow' },
            },
          ),
        );
        if (kafkajsRestarts || stopping !== undefined) return;
        restartDue = true;
        restarting ??= restartLoop().finally(() => {
          restarting = undefined;
        });
      });
      // A successful join resets the restart backoff.
      created.on(created.events.GROUP_JOIN, () => {
        crashes = 0;
        try {
          reporter?.onJoined?.();
        } catch {
          // A failing reporter must not stop the consumer.
        }
      });

      await created.connect();
      await created.subscribe({ topics: [...options.topics], fromBeginning });
      await created.run(runConfig);
    },
    stop() {
      stopping ??= (async () => {
        stopSignal.abort();
        // disconnect() stops the runner first, which waits for the batch in flight to return.
        await consumer?.disconnect();
        await restarting;
        const opened = admin;
        admin = undefined;
        if (opened) await (await opened.catch(() => undefined))?.disconnect().catch(() => undefined);
      })();
      return stopping;
    },
  };
}
