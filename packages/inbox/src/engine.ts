import {
  type ConsumerTransport,
  createStoppable,
  OnceflowError,
  type StartedHandle,
  type TransactionalOutbox,
} from '@onceflow/core';
import type { InboxStore } from '@onceflow/postgres';
import { type InboxOptions, type ResolvedInboxOptions, resolveInboxOptions } from './options';
import { processBatch } from './process-batch';

/** Options of {@link createInboxEngine}: the inbox options plus the transport and store to run on. */
export interface InboxEngineOptions<Ctx extends { outbox: TransactionalOutbox }> extends InboxOptions<Ctx> {
  /** The Kafka side, for example `createKafkajsConsumerTransport` from @onceflow/kafkajs. Required. */
  transport: ConsumerTransport;
  /** The database side, for example `createPgInboxStore` from @onceflow/postgres. Required. */
  store: InboxStore<Ctx>;
}

/** A configured, not yet started inbox consumer. */
export interface InboxEngine {
  /** The validated options. */
  readonly options: Readonly<ResolvedInboxOptions<{ outbox: TransactionalOutbox }>>;
  /** Declares the retention window, joins the group and starts processing. Call once. */
  start(): Promise<StartedHandle>;
}

/**
 * Creates the effectively-once consumer engine over any {@link ConsumerTransport} and
 * {@link InboxStore}. Options are validated here: invalid ones throw OF_INVALID_OPTIONS.
 */
export function createInboxEngine<Ctx extends { outbox: TransactionalOutbox }>(
  options: InboxEngineOptions<Ctx>,
): InboxEngine {
  const resolved = resolveInboxOptions(options);
  if (options.transport === undefined || typeof options.transport.run !== 'function')
    throw new OnceflowError('OF_INVALID_OPTIONS', 'inbox consumer: transport must be a ConsumerTransport');
  if (options.store === undefined || typeof options.store.begin !== 'function')
    throw new OnceflowError('OF_INVALID_OPTIONS', 'inbox consumer: store must be an InboxStore');
  const { transport, store } = options;
  let started = false;

  return {
    options: resolved as ResolvedInboxOptions<{ outbox: TransactionalOutbox }>,
    async start() {
      if (started)
        throw new OnceflowError('OF_INVALID_OPTIONS', 'inbox consumer: start() was already called');
      started = true;
      const abort = new AbortController();
      const runner = { options: resolved, store, stopSignal: abort.signal };
      await store.declareRetention(resolved.consumer, resolved.retentionSeconds);

      let pruning: Promise<void> = Promise.resolve();
      const prune = (): void => {
        pruning = store.rotate().then(
          () => undefined,
          (error: unknown) => {
            try {
              resolved.onError(error, { topic: '', partition: -1, offset: '-1', attempts: 0 });
            } catch {
              // A failing reporter must not leave a rejected promise behind.
            }
          },
        );
      };
      const timer = resolved.pruneIntervalMs > 0 ? setInterval(prune, resolved.pruneIntervalMs) : undefined;
      timer?.unref();

      try {
        await transport.run((batch, control) => processBatch(runner, batch, control));
      } catch (error) {
        clearInterval(timer);
        abort.abort();
        await transport.stop().catch(() => undefined);
        throw error;
      }
      return createStoppable({}, async () => {
        clearInterval(timer);
        // Processing finishes the transaction in flight, then starts no other; sleeps end at once.
        abort.abort();
        await transport.stop();
        await pruning;
      });
    },
  };
}
