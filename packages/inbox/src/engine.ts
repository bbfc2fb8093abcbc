import {
  type ConsumerTransport,
  createStoppable,
  OnceflowError,
  type StartedHandle,
  type TransactionalOutbox,
  waitForService,
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
  /**
   * Declares the retention window, joins the group and starts processing. Call once. While the
   * database cannot be reached it waits with backoff, reporting each attempt through `onError`, up to
   * `startupTimeoutMs` (then OF_UNAVAILABLE); `stop()` ends the wait (then OF_STOPPED).
   */
  start(): Promise<StartedHandle>;
  /**
   * Stops the consumer: interrupts a `start()` still waiting (which then rejects with OF_STOPPED), or
   * does what the started handle's `stop()` does. Idempotent; a `start()` after it rejects.
   */
  stop(): Promise<void>;
}

/** What the engine says while it waits for an unreachable database at start. */
const startupHint =
  "Check that it runs and accepts connections at that address, and that the pool's connection settings are right; startupTimeoutMs bounds this wait.";

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
  const component = `inbox consumer ${resolved.consumer}`;
  const abort = new AbortController();
  const infrastructure = { topic: '', partition: -1, offset: '-1', attempts: 0 };
  const report = (error: unknown): void => {
    try {
      resolved.onError(error, infrastructure);
    } catch {
      // A failing reporter must not stop the consumer.
    }
  };
  const stoppedError = (): OnceflowError =>
    new OnceflowError('OF_STOPPED', `${component}: stop() was called before start() finished`);
  let starting: Promise<StartedHandle> | undefined;
  let stopping: Promise<void> | undefined;

  async function startOnce(): Promise<StartedHandle> {
    if (abort.signal.aborted) throw stoppedError();
    const runner = { options: resolved, store, stopSignal: abort.signal };
    await waitForService(() => store.declareRetention(resolved.consumer, resolved.retentionSeconds), {
      component,
      service: store.target ?? 'the database',
      hint: startupHint,
      timeoutMs: resolved.startupTimeoutMs,
      retry: resolved.retry,
      signal: abort.signal,
      onWait: report,
    });

    let pruning: Promise<void> = Promise.resolve();
    const prune = (): void => {
      pruning = store.rotate().then(() => undefined, report);
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
    const handle = createStoppable({}, async () => {
      clearInterval(timer);
      // Processing finishes the transaction in flight, then starts no other; sleeps end at once.
      abort.abort();
      await transport.stop();
      await pruning;
    });
    if (abort.signal.aborted) {
      await handle.stop();
      throw stoppedError();
    }
    return handle;
  }

  return {
    options: resolved as ResolvedInboxOptions<{ outbox: TransactionalOutbox }>,
    start() {
      if (starting !== undefined)
        return Promise.reject(
          new OnceflowError('OF_INVALID_OPTIONS', 'inbox consumer: start() was already called'),
        );
      starting = startOnce();
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        abort.abort();
        const handle = await starting?.catch(() => undefined);
        await handle?.stop();
      })();
      return stopping;
    },
  };
}
