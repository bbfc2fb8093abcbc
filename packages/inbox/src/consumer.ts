import {
  alreadyStarted,
  type ComponentStatus,
  createStatusTracker,
  createStoppable,
  invalidOptions,
  OnceflowError,
  reportError,
  type StartedHandle,
  type TransactionalOutbox,
  toOnceflowError,
  waitForService,
} from '@onceflow/core';
import {
  createPgInboxStore,
  type InboxStore,
  missingPoolErrorListener,
  type TransactionContext,
} from '@onceflow/postgres';
import { ensureDeadLetterTopics } from './dead-letter-topics';
import { type InboxConsumerOptions, resolveInboxOptions } from './options';
import { processBatch } from './process-batch';
import { TransactionGate } from './transaction-gate';

/** A started inbox consumer. */
export interface InboxConsumerHandle extends StartedHandle {
  /** Where the consumer is in its life, for health and readiness probes; see {@link InboxConsumer.status}. */
  status(): ComponentStatus;
}

/** A configured inbox consumer, not yet started. */
export interface InboxConsumer {
  /**
   * Checks the dead-letter topics, declares the retention window, joins the group and starts
   * processing; the handle's `stop()` finishes or rolls back the work in flight and leaves the group.
   * While Postgres cannot be reached it waits with backoff, reporting each attempt through the logger
   * and `onError`, up to `startupTimeoutMs` (then OF_UNAVAILABLE naming the server). Rejects with
   * OF_SCHEMA_MISMATCH when the schema lacks the inbox tables, OF_TOPIC_MISSING when a dead-letter
   * topic is missing, OF_UNAVAILABLE when the broker cannot be reached. Call once: a second call rejects with OF_ALREADY_STARTED.
   */
  start(): Promise<InboxConsumerHandle>;
  /**
   * Stops the consumer: interrupts a `start()` still waiting for Postgres (it then rejects with
   * OF_STOPPED), or does what the started handle's `stop()` does. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Where the consumer is in its life: `starting` until it joined its group, `waiting-for-database`
   * while Postgres cannot be reached (at start, or later until a transaction commits again),
   * `waiting-for-broker` after its Kafka consumer crashed until it joined again, `running`,
   * `stopping`, `stopped` (also after a start that failed); with the last error reported.
   */
  status(): ComponentStatus;
}

const component = 'inbox consumer';

/** What the consumer says while it waits for an unreachable database at start. */
const startupHint =
  "Check that it runs and accepts connections at that address, and that the pool's connection settings are right; startupTimeoutMs bounds this wait.";

function resolveStore<Ctx extends { outbox: TransactionalOutbox }>(
  options: InboxConsumerOptions<Ctx>,
  schema: string,
): InboxStore<Ctx> {
  if (options.store !== undefined) {
    if (options.pool !== undefined) invalidOptions(component, 'give either pool or store, not both');
    if (options.schema !== undefined)
      invalidOptions(component, "schema belongs to the store: pass it to the store's factory instead");
    if (typeof options.store.begin !== 'function')
      invalidOptions(component, 'store must be an InboxStore (createPgInboxStore from @onceflow/postgres)');
    return options.store;
  }
  if (typeof options.pool?.connect !== 'function')
    invalidOptions(component, 'give a pg pool (or an inbox store)');
  // Without a store of their own, handlers get the Postgres store's TransactionContext.
  return createPgInboxStore(options.pool, { schema }) as unknown as InboxStore<Ctx>;
}

/**
 * The effectively-once consumer, independent of the Kafka client: give it a {@link ConsumerTransport}
 * (for kafkajs, `createInboxConsumer` of @onceflow/kafkajs does) and the inbox (a pg `pool` or a
 * `store`). Each message's handler runs in a transaction that also records the message id and the
 * partition position, so its effects commit once per consumer. Options are checked here, before
 * anything connects: invalid ones throw OF_INVALID_OPTIONS.
 */
export function createInboxConsumer<Ctx extends { outbox: TransactionalOutbox } = TransactionContext>(
  options: InboxConsumerOptions<Ctx>,
): InboxConsumer {
  if (options === null || typeof options !== 'object') invalidOptions(component, 'options must be an object');
  const { transport, pool: _pool, store: _store, ...settings } = options;
  const resolved = resolveInboxOptions(settings);
  if (transport === undefined || typeof transport.run !== 'function' || typeof transport.stop !== 'function')
    invalidOptions(component, 'transport must be a ConsumerTransport (run, stop)');
  const store = resolveStore(options, resolved.schema);
  const { logger, consumer } = resolved;
  const tracker = createStatusTracker(component, consumer);
  // Every error reported is the status's last error too.
  const userOnError = resolved.onError;
  const onError: typeof resolved.onError = (error) => {
    tracker.error(error);
    userOnError?.(error);
  };
  resolved.onError = onError;
  // A pool whose idle connections may break without a listener would end the process: say so now.
  if (options.pool !== undefined) {
    const warning = missingPoolErrorListener(options.pool, `${component} ${consumer}`);
    if (warning !== undefined) reportError({ logger, onError }, 'warn', warning);
  }
  const abort = new AbortController();
  const stoppedError = (): OnceflowError =>
    new OnceflowError('OF_STOPPED', `${component} ${consumer}: stop() was called before start() finished`);
  let starting: Promise<InboxConsumerHandle> | undefined;
  let stopping: Promise<void> | undefined;

  async function startOnce(): Promise<InboxConsumerHandle> {
    if (abort.signal.aborted) throw stoppedError();
    const runner = {
      options: resolved,
      store,
      stopSignal: abort.signal,
      status: tracker,
      gate: new TransactionGate(),
    };
    await ensureDeadLetterTopics({
      transport,
      consumer,
      deadLetterTopic: resolved.deadLetterTopic,
      policy: resolved.onMissingDeadLetterTopic,
    });
    try {
      await waitForService(() => store.declareRetention(consumer, resolved.retentionMs), {
        component: `${component} ${consumer}`,
        service: store.target ?? 'the database',
        hint: startupHint,
        timeoutMs: resolved.startupTimeoutMs,
        retry: resolved.retry,
        signal: abort.signal,
        onWait: (error) => {
          tracker.set('waiting-for-database');
          reportError({ logger, onError }, 'warn', error);
        },
      });
      tracker.set('starting');
    } catch (error) {
      throw toOnceflowError(error, 'OF_UNAVAILABLE', `${component} ${consumer} could not start`, {
        retriable: true,
        details: { consumer },
      });
    }

    let pruning: Promise<void> = Promise.resolve();
    const prune = (): void => {
      pruning = store.rotate().then(
        () => undefined,
        (error: unknown) =>
          reportError(
            { logger, onError },
            'warn',
            toOnceflowError(error, 'OF_UNAVAILABLE', 'inbox rotation failed, retrying later', {
              retriable: true,
              details: { consumer, operation: 'rotate' },
            }),
          ),
      );
    };
    const timer = resolved.pruneIntervalMs > 0 ? setInterval(prune, resolved.pruneIntervalMs) : undefined;
    timer?.unref();

    try {
      await transport.run((batch, control) => processBatch(runner, batch, control), {
        // A crashed Kafka consumer the transport restarted: the user hears of it like of any outage.
        onError: (error) => {
          tracker.set('waiting-for-broker');
          reportError({ logger, onError }, 'warn', error);
        },
        onJoined: () => tracker.set('running'),
      });
    } catch (error) {
      clearInterval(timer);
      abort.abort();
      await transport.stop().catch(() => undefined);
      throw toOnceflowError(error, 'OF_UNAVAILABLE', `${component} ${consumer} could not join its group`, {
        retriable: true,
        details: { consumer },
      });
    }
    const handle = createStoppable({ status: tracker.status }, async () => {
      tracker.set('stopping');
      clearInterval(timer);
      // Processing finishes the transaction in flight, then starts no other; sleeps end at once.
      abort.abort();
      await transport.stop();
      await pruning;
      tracker.set('stopped');
      logger.info('inbox consumer stopped');
    });
    if (abort.signal.aborted) {
      await handle.stop();
      throw stoppedError();
    }
    tracker.set('running');
    logger.info('inbox consumer started');
    return handle;
  }

  return {
    async start() {
      if (starting !== undefined) alreadyStarted(component);
      starting = startOnce();
      // A start that failed leaves the consumer stopped, with the error that ended it.
      starting.catch((error: unknown) =>
        tracker.set(
          'stopped',
          toOnceflowError(error, 'OF_UNAVAILABLE', `${component} ${consumer} could not start`),
        ),
      );
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        tracker.set('stopping');
        abort.abort();
        const handle = await starting?.catch(() => undefined);
        await handle?.stop();
        tracker.set('stopped');
      })();
      return stopping;
    },
    status: tracker.status,
  };
}
