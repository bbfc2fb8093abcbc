import {
  alreadyStarted,
  createStoppable,
  invalidOptions,
  isOnceflowError,
  reportError,
  type StartedHandle,
  type TransactionalOutbox,
  toOnceflowError,
} from '@onceflow/core';
import { createPgInboxStore, type InboxStore, type TransactionContext } from '@onceflow/postgres';
import { ensureDeadLetterTopics } from './dead-letter-topics';
import { type InboxConsumerOptions, resolveInboxOptions } from './options';
import { processBatch } from './process-batch';

/** A configured inbox consumer, not yet started. */
export interface InboxConsumer {
  /**
   * Checks the dead-letter topics, declares the retention window, joins the group and starts
   * processing; the handle's `stop()` finishes or rolls back the work in flight and leaves the group.
   * Rejects with OF_UNAVAILABLE when Postgres or the broker cannot be reached, OF_SCHEMA_MISMATCH when
   * the schema lacks the inbox tables, OF_TOPIC_MISSING when a dead-letter topic is missing. Call once: a second call rejects with OF_ALREADY_STARTED.
   */
  start(): Promise<StartedHandle>;
}

const component = 'inbox consumer';

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
  const { logger, onError, consumer } = resolved;
  let started = false;

  return {
    async start() {
      if (started) alreadyStarted(component);
      started = true;
      const abort = new AbortController();
      const runner = { options: resolved, store, stopSignal: abort.signal };
      await ensureDeadLetterTopics({
        transport,
        consumer,
        deadLetterTopic: resolved.deadLetterTopic,
        policy: resolved.onMissingDeadLetterTopic,
      });
      try {
        await store.declareRetention(consumer, resolved.retentionMs);
      } catch (error) {
        throw toOnceflowError(error, 'OF_UNAVAILABLE', `inbox consumer ${consumer} could not start`, {
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
          onError: (error) => reportError({ logger, onError }, 'warn', error),
        });
      } catch (error) {
        clearInterval(timer);
        abort.abort();
        await transport.stop().catch(() => undefined);
        if (isOnceflowError(error)) throw error;
        throw toOnceflowError(
          error,
          'OF_UNAVAILABLE',
          `inbox consumer ${consumer} could not join its group`,
          {
            retriable: true,
            details: { consumer },
          },
        );
      }
      logger.info('inbox consumer started');
      return createStoppable({}, async () => {
        clearInterval(timer);
        // Processing finishes the transaction in flight, then starts no other; sleeps end at once.
        abort.abort();
        await transport.stop();
        await pruning;
        logger.info('inbox consumer stopped');
      });
    },
  };
}
