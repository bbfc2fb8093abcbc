import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import {
  type BatchControl,
  backoffDelayMs,
  type InboundMessage,
  type InboxBatchMessage,
  type InboxDeadLetterMessage,
  type InboxHandleContext,
  type InboxPositionAheadMessage,
  type InboxRetryMessage,
  type InboxTransactionMessage,
  inboxBatchChannel,
  inboxDeadLetterChannel,
  inboxHandleChannel,
  inboxPositionAheadChannel,
  inboxRetryChannel,
  inboxTransactionChannel,
  isConnectionError,
  isOnceflowError,
  isTransientDatabaseError,
  type LogOffsets,
  OnceflowError,
  reportError,
  resolveMessageId,
  type StatusTracker,
  sleep,
  type TransactionalOutbox,
  type TransportBatch,
  toOnceflowError,
  traceCall,
} from '@onceflow/core';
import type { InboxClaim, InboxStore, InboxTransaction } from '@onceflow/postgres';
import { acceptRedrives, deadLetterErrorText, deadLetterEvent } from './dead-letter';
import { type DeadLetterReason, defaultInboxConsumerOptions, type ResolvedInboxOptions } from './options';
import type { TransactionGate } from './transaction-gate';

// Published only when subscribed (hasSubscribers), so metrics cost nothing when nobody listens.
const batchChannel = diagnosticsChannel.channel(inboxBatchChannel);
const transactionChannel = diagnosticsChannel.channel(inboxTransactionChannel);
const retryChannel = diagnosticsChannel.channel(inboxRetryChannel);
const deadLetterChannel = diagnosticsChannel.channel(inboxDeadLetterChannel);
const positionAheadChannel = diagnosticsChannel.channel(inboxPositionAheadChannel);

const handleTracing = diagnosticsChannel.tracingChannel<unknown, InboxHandleContext>(inboxHandleChannel);

/** A message with its resolved id; `invalid` when the id was refused (it is then keyed by position). */
interface Entry {
  message: InboundMessage;
  invalid: string | undefined;
}

/**
 * How a transaction ended. `failedIndex` is the entry whose handler (or dead-lettering) threw, `'run'`
 * when a batch handler threw (one of the entries it was given failed, which one is unknown), and
 * undefined when the failure is not a message's fault (database outage, lost race).
 */
type TxResult =
  | { ok: true; claim: InboxClaim }
  | { ok: false; error: unknown; failedIndex: number | 'run' | undefined };

/** What a transaction does with its new entries: run the handler, or dead-letter them after failures. */
type Disposition = { kind: 'handle' } | { kind: 'give-up'; error: unknown; attempts: number };

/** Everything a batch run needs from the engine. */
export interface BatchRunner<Ctx extends { outbox: TransactionalOutbox }> {
  options: ResolvedInboxOptions<Ctx>;
  store: InboxStore<Ctx>;
  /** Aborted when the consumer stops. */
  stopSignal: AbortSignal;
  /** The consumer's state, for `status()`: told of database outages and of commits. */
  status?: StatusTracker;
  /** Shared by the partitions of one consumer: runs their transactions one at a time after lost races. */
  gate?: TransactionGate;
}

function toEntries(
  batch: TransportBatch,
  options: ResolvedInboxOptions<{ outbox: TransactionalOutbox }>,
): Entry[] {
  const idOptions = {
    header: options.messageIdHeader,
    onMissing: options.onMissingId,
    ...(options.extractMessageId ? { extract: options.extractMessageId } : {}),
  };
  const { topic, partition } = batch;
  return batch.messages.map((raw) => {
    // One object per message, built once with every field (no spreads): this runs for every message.
    const message: { -readonly [K in keyof InboundMessage]: InboundMessage[K] } = {
      id: '',
      idSource: 'position',
      topic,
      partition,
      offset: raw.offset,
      timestamp: raw.timestamp,
      key: raw.key,
      value: raw.value,
      headers: raw.headers,
    };
    let result: ReturnType<typeof resolveMessageId>;
    try {
      result = resolveMessageId(message, idOptions);
    } catch (error) {
      result = { ok: false, reason: 'not-text', detail: `id extractor threw: ${String(error)}` };
    }
    if (result.ok) {
      message.id = result.id;
      message.idSource = result.source;
      return { message, invalid: undefined };
    }
    message.id = `${topic}/${partition}/${raw.offset}`;
    return { message, invalid: `${result.reason}: ${result.detail}` };
  });
}

/**
 * True when a failed transaction failed for a reason other than its messages, so that it is retried
 * without counting as a handler attempt: a lost race (40001, 40P01) or a lost database connection
 * (restart, terminated backend, network), however the handler reported it. A handler that throws
 * for a connection of its own (an HTTP call refused) while the transaction's connection is fine
 * counts. A timed-out handler counts too, although its connection was killed on purpose.
 */
function notTheMessage(tx: InboxTransaction<unknown>, error: unknown): boolean {
  if (isTransientDatabaseError(error)) return true;
  if (isOnceflowError(error, 'OF_HANDLER_TIMEOUT')) return false;
  return tx.connectionLost?.() ?? isConnectionError(error);
}

/**
 * Processes one fetched batch of one partition: transactions over runs of messages, isolation of a
 * failing message with retries in place (partition order is kept), dead letters after the limit, and
 * the broker offset commit strictly after each database commit. Returns early, leaving the rest for
 * redelivery, when the consumer stops or loses the partition.
 */
export async function processBatch<Ctx extends { outbox: TransactionalOutbox }>(
  runner: BatchRunner<Ctx>,
  batch: TransportBatch,
  control: BatchControl,
): Promise<void> {
  const { options, store, stopSignal } = runner;
  const { topic, partition } = batch;
  // A failed heartbeat means a rebalance (or a lost coordinator): finish the transaction in flight
  // and start no other, so that the member rejoins before the rebalance times out.
  let heartbeatFailed = false;
  const active = (): boolean => !stopSignal.aborted && !heartbeatFailed && control.isActive();
  // The group session must survive a long handler, a slow claim or a lock wait: the transport sends a
  // heartbeat only when one is due, so asking often costs nothing.
  const heartbeat = control.heartbeat?.bind(control);
  const heartbeats =
    heartbeat === undefined
      ? undefined
      : setInterval(() => {
          void heartbeat().catch(() => {
            heartbeatFailed = true;
          });
        }, heartbeatTickMs);
  heartbeats?.unref();

  async function pause(ms: number): Promise<boolean> {
    await sleep(ms, stopSignal);
    if (!active()) return false;
    try {
      await control.heartbeat?.();
    } catch {
      return false;
    }
    return active();
  }

  /** Runs one handler call under the time limit; on expiry the transaction is abandoned. */
  async function withinTimeLimit(
    tx: InboxTransaction<Ctx>,
    offset: string,
    call: () => Promise<void>,
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const work = Promise.resolve().then(call);
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new OnceflowError('OF_HANDLER_TIMEOUT', `handler exceeded ${options.handlerTimeoutMs} ms`, {
              retriable: true,
              details: { topic, partition, offset },
            }),
          ),
        options.handlerTimeoutMs,
      );
    });
    try {
      await Promise.race([work, expired]);
    } catch (error) {
      if (isOnceflowError(error, 'OF_HANDLER_TIMEOUT')) {
        // The handler keeps running; kill its connection so nothing it still writes can commit.
        work.catch(() => undefined);
        await tx.abandon();
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Calls a handler, traced on the inbox handle channel while someone listens. */
  function traced(messages: readonly InboundMessage[], batch: boolean, call: () => Promise<void>) {
    if (!handleTracing.hasSubscribers) return call;
    return () =>
      traceCall(handleTracing, { consumer: options.consumer, topic, partition, messages, batch }, call);
  }

  /** Where a message is, for the details of the errors reported about it. */
  const whereIs = (message: InboundMessage) => ({
    consumer: options.consumer,
    topic,
    partition,
    offset: message.offset,
    messageId: message.id,
  });

  /** Why a dead letter was written, reported once its transaction committed. */
  function deadLetterReport(
    entry: Entry,
    reason: DeadLetterReason,
    error: unknown,
    attempts: number,
  ): OnceflowError {
    const details = {
      ...whereIs(entry.message),
      attempts,
      reason,
      deadLetterTopic: options.deadLetterTopic(topic),
    };
    if (reason === 'invalid-id')
      return new OnceflowError(
        'OF_INVALID_MESSAGE_ID',
        `message dead-lettered: its id is invalid (${String(error)})`,
        {
          details,
        },
      );
    if (reason === 'too-old')
      return new OnceflowError('OF_MESSAGE_TOO_OLD', `message dead-lettered: ${String(error)}`, { details });
    return new OnceflowError(
      'OF_HANDLER_FAILED',
      `message dead-lettered after ${attempts} failed attempts: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error, details },
    );
  }

  async function deadLetter(
    tx: InboxTransaction<Ctx>,
    entry: Entry,
    reason: DeadLetterReason,
    error: unknown,
    attempts: number,
    reports: OnceflowError[],
  ) {
    const report = deadLetterReport(entry, reason, error, attempts);
    reports.push(report);
    await tx.context.outbox.enqueue(
      deadLetterEvent(entry.message, {
        consumer: options.consumer,
        topic: options.deadLetterTopic(topic),
        reason,
        error,
        attempts,
      }),
    );
    // The dead letter itself, with its payload, for `onceflow dlq` and its redrive.
    await tx.recordDeadLetter?.({
      consumer: options.consumer,
      messageId: entry.message.id,
      topic,
      partition,
      offset: entry.message.offset,
      key: entry.message.key,
      value: entry.message.value,
      headers: entry.message.headers,
      reason,
      errorCode: report.code,
      errorMessage: deadLetterErrorText(error),
      attempts,
    });
  }

  async function runTransaction(entries: Entry[], disposition: Disposition): Promise<TxResult> {
    const leave = await runner.gate?.enter();
    try {
      const result = await runGatedTransaction(entries, disposition);
      if (!result.ok && isTransientDatabaseError(result.error)) runner.gate?.lostRace();
      return result;
    } finally {
      leave?.();
    }
  }

  async function runGatedTransaction(entries: Entry[], disposition: Disposition): Promise<TxResult> {
    const startedAt = performance.now();
    let tx: InboxTransaction<Ctx>;
    try {
      tx = await store.begin();
    } catch (error) {
      return { ok: false, error, failedIndex: undefined };
    }
    let current: number | 'run' | undefined;
    // Consecutive new messages for the batch handler; flushed before a dead letter to keep order.
    let run: InboundMessage[] = [];
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      const messages = run;
      run = [];
      current = 'run';
      await withinTimeLimit(
        tx,
        messages[0]!.offset,
        traced(messages, true, () => handleBatch!(messages, tx.context)),
      );
    };
    const handleBatch = options.handleBatch;
    const handler = options.handler;
    const deadLettered: OnceflowError[] = [];
    try {
      const claim = await tx.claim({
        consumer: options.consumer,
        topic,
        partition,
        entries: entries.map((entry) => ({ id: entry.message.id, offset: entry.message.offset })),
      });
      // Redrive copies of dead letters are handled once although their ids were seen.
      const fresh = await acceptRedrives(tx, options.consumer, entries, claim);
      const oldest = Date.now() - options.retentionMs;
      for (const [index, entry] of entries.entries()) {
        if (!fresh.has(entry.message.offset)) continue;
        const handled =
          entry.invalid === undefined && entry.message.timestamp >= oldest && disposition.kind === 'handle';
        if (handled && handleBatch) {
          run.push(entry.message);
          continue;
        }
        await flush();
        current = index;
        if (entry.invalid !== undefined)
          await deadLetter(tx, entry, 'invalid-id', entry.invalid, 0, deadLettered);
        else if (entry.message.timestamp < oldest)
          await deadLetter(
            tx,
            entry,
            'too-old',
            `message timestamp ${new Date(entry.message.timestamp).toISOString()} is older than the ${Math.ceil(options.retentionMs / 1000)} s retention window`,
            0,
            deadLettered,
          );
        else if (disposition.kind === 'give-up')
          await deadLetter(
            tx,
            entry,
            'handler-failed',
            disposition.error,
            disposition.attempts,
            deadLettered,
          );
        else
          await withinTimeLimit(
            tx,
            entry.message.offset,
            traced([entry.message], false, () => handler!(entry.message, tx.context)),
          );
      }
      await flush();
      current = undefined;
      await tx.commit();
      if (transactionChannel.hasSubscribers || deadLetterChannel.hasSubscribers)
        publishCommitted(entries, fresh, deadLettered, performance.now() - startedAt);
      for (const report of deadLettered)
        reportError(
          { logger: options.logger, onError: options.onError },
          report.code === 'OF_HANDLER_FAILED' ? 'error' : 'warn',
          report,
        );
      return { ok: true, claim };
    } catch (error) {
      await tx.rollback();
      if (transactionChannel.hasSubscribers)
        transactionChannel.publish({
          consumer: options.consumer,
          topic,
          partition,
          outcome: 'rolled-back',
          messages: entries.length,
          processed: 0,
          duplicates: 0,
          deadLettered: 0,
          durationMs: performance.now() - startedAt,
        } satisfies InboxTransactionMessage);
      return { ok: false, error, failedIndex: notTheMessage(tx, error) ? undefined : current };
    }
  }

  /**
   * Publishes a committed transaction and its dead letters on the metrics channels. `handled` is the
   * offsets the transaction handled: the claim's fresh ones plus accepted redrive copies, which the
   * claim alone calls duplicates.
   */
  function publishCommitted(
    entries: Entry[],
    handled: ReadonlySet<string>,
    deadLettered: readonly OnceflowError[],
    durationMs: number,
  ): void {
    let fresh = 0;
    for (const entry of entries) if (handled.has(entry.message.offset)) fresh++;
    if (transactionChannel.hasSubscribers)
      transactionChannel.publish({
        consumer: options.consumer,
        topic,
        partition,
        outcome: 'committed',
        messages: entries.length,
        processed: fresh - deadLettered.length,
        duplicates: entries.length - fresh,
        deadLettered: deadLettered.length,
        durationMs,
      } satisfies InboxTransactionMessage);
    if (deadLetterChannel.hasSubscribers)
      for (const { details } of deadLettered)
        deadLetterChannel.publish({
          consumer: options.consumer,
          topic,
          partition,
          offset: String(details.offset),
          messageId: String(details.messageId),
          reason: String(details.reason),
          attempts: Number(details.attempts),
        } satisfies InboxDeadLetterMessage);
  }

  // Broker offsets are committed once per batch (and when it ends early), always after the database
  // commits they cover: a broker round trip per transaction would halve per-message throughput.
  let doneUpTo: bigint | undefined;
  let seekTo: bigint | undefined;
  // The stored position, when it lies beyond what the partition's log holds.
  let ahead: bigint | undefined;
  // Detection needs the batch's high watermark and a transport that can pause and read log offsets.
  const highWatermark =
    batch.highWatermark === undefined || control.logOffsets === undefined || control.pause === undefined
      ? undefined
      : BigInt(batch.highWatermark);

  function committed(entries: Entry[], claim: InboxClaim): void {
    runner.status?.set('running');
    const prior = BigInt(claim.priorNextOffset);
    if (highWatermark !== undefined && prior > highWatermark) {
      // No consumer can have read past the high watermark, so this position was taken on another log.
      // The transaction changed nothing (every message lay below the position); seeking there would
      // only make the broker reset the fetch to the log's start or end, and again, without end.
      ahead = prior;
      return;
    }
    const end = BigInt(entries.at(-1)!.message.offset) + 1n;
    const next = prior > end ? prior : end;
    if (doneUpTo === undefined || next > doneUpTo) doneUpTo = next;
    // The database is ahead of the broker (an earlier owner got further): skip what it already did.
    if (prior > end) seekTo = prior;
  }

  async function commitOffsets(): Promise<void> {
    if (doneUpTo === undefined) return;
    const nextOffset = doneUpTo.toString();
    await options.testHooks.beforeOffsetCommit?.({ topic, partition, nextOffset });
    await control.commit(nextOffset);
    if (seekTo !== undefined && seekTo >= doneUpTo && control.isActive()) control.seek?.(seekTo.toString());
  }

  /** Acts on a stored position beyond the log end, by the `onPositionAhead` policy. */
  async function positionAhead(stored: bigint, offset: string): Promise<void> {
    let log: LogOffsets;
    try {
      log = await control.logOffsets!();
    } catch (error) {
      // Unknown for now: the batch is fetched again after the longest retry delay and checked again.
      reportAt(error, offset);
      await sleep(options.retry.maxDelayMs, stopSignal);
      return;
    }
    if (stored <= BigInt(log.end)) {
      // The batch's high watermark was behind (a new leader catching up): the position is fine.
      if (control.isActive()) control.seek?.(stored.toString());
      return;
    }
    const where = `the stored position of consumer "${options.consumer}" in ${topic}[${partition}] is ${stored}, beyond the partition's log end ${log.end} (log start ${log.start})`;
    const details = {
      consumer: options.consumer,
      topic,
      partition,
      storedPosition: stored.toString(),
      logStart: log.start,
      logEnd: log.end,
      policy: options.onPositionAhead,
    };
    if (positionAheadChannel.hasSubscribers)
      positionAheadChannel.publish({
        consumer: options.consumer,
        topic,
        partition,
        storedPosition: details.storedPosition,
        logStart: log.start,
        logEnd: log.end,
        policy: options.onPositionAhead,
      } satisfies InboxPositionAheadMessage);
    if (options.onPositionAhead === 'fail') {
      control.pause!();
      const schema =
        options.schema === defaultInboxConsumerOptions.schema ? '' : ` --schema ${options.schema}`;
      const command = `onceflow inbox reset-positions${schema} --consumer ${options.consumer} --topic ${topic} --to earliest`;
      reportAt(
        new OnceflowError(
          'OF_POSITION_AHEAD',
          `${where}: the topic was deleted and recreated, the database restored or the log truncated. ` +
            `This partition is paused on this instance and none of its messages is processed. Stop the consumers, reset the positions (\`${command}\`, or \`--to latest\` to skip what the log holds), then start them again; or set onPositionAhead to 'reset-to-earliest' or 'reset-to-latest' to let the consumer do it.`,
          { details: { ...details, command } },
        ),
        offset,
        'error',
      );
      return;
    }
    const target = options.onPositionAhead === 'reset-to-earliest' ? log.start : log.end;
    const moved = await store
      .resetPosition({
        consumer: options.consumer,
        topic,
        partition,
        expected: stored.toString(),
        nextOffset: target,
      })
      .catch((error: unknown) => {
        reportAt(error, offset);
        return false;
      });
    if (!moved) return;
    reportAt(
      new OnceflowError(
        'OF_POSITION_AHEAD',
        `${where}: moved it to ${target} as onPositionAhead is '${options.onPositionAhead}'`,
        { retriable: true, details: { ...details, resetTo: target } },
      ),
      offset,
    );
    if (control.isActive()) control.seek?.(target);
  }

  /**
   * Reports trouble with the partition's position: an OF_POSITION_AHEAD (an `error` when the
   * partition is paused for an operator, a `warn` when the policy moved it), or a failure to ask the
   * broker for the log's offsets, retried.
   */
  function reportAt(error: unknown, offset: string, level: 'warn' | 'error' = 'warn'): void {
    reportError(
      { logger: options.logger, onError: options.onError },
      level,
      toOnceflowError(error, 'OF_UNAVAILABLE', 'could not read the partition log offsets, retrying', {
        retriable: true,
        details: { consumer: options.consumer, topic, partition, offset },
      }),
    );
  }

  /**
   * Reports a failure that will be retried: a handler's (`attempts` > 0, counted) or the database's
   * (`attempts` 0: an outage or a lost race, retried without counting).
   */
  function report(error: unknown, entries: Entry[], attempts: number): void {
    const message = entries[0]!.message;
    const failure =
      attempts > 0
        ? toOnceflowError(error, 'OF_HANDLER_FAILED', `handler failed on attempt ${attempts}, retrying`, {
            retriable: true,
            details: { ...whereIs(message), attempts },
          })
        : toOnceflowError(
            error,
            'OF_UNAVAILABLE',
            'inbox transaction failed, retrying without counting an attempt',
            {
              retriable: true,
              details: whereIs(message),
            },
          );
    reportError({ logger: options.logger, onError: options.onError }, 'warn', failure);
    // An outage (not a lost race) makes the consumer wait for its database until a commit succeeds.
    if (attempts === 0 && !isTransientDatabaseError(error))
      runner.status?.set('waiting-for-database', failure);
    if (retryChannel.hasSubscribers)
      retryChannel.publish({
        ...whereIs(message),
        cause: attempts > 0 ? 'handler' : 'database',
        attempts,
        code: failure.code,
      } satisfies InboxRetryMessage);
  }

  /** Runs `entries` in as few transactions as possible; false when interrupted. */
  async function processRun(entries: Entry[]): Promise<boolean> {
    let pending = entries;
    let outages = 0;
    while (pending.length > 0) {
      if (!active()) return false;
      const result = await runTransaction(pending, { kind: 'handle' });
      if (result.ok) {
        committed(pending, result.claim);
        return true;
      }
      if (result.failedIndex === undefined) {
        // Database outage or lost race (40001/40P01): not the message's fault, retry the same run.
        outages++;
        report(result.error, pending, 0);
        if (!(await pause(backoffDelayMs(options.retry, outages)))) return false;
        continue;
      }
      if (result.failedIndex === 'run') {
        // A batch handler failed for one of its messages: bisect. Each half runs in its own
        // transaction, in order; the half holding the culprit fails again and is split further until
        // the culprit is alone, and then it is retried alone like a failing per-message handler.
        if (pending.length === 1) {
          report(result.error, pending, 1);
          return processFailing(pending[0]!, result.error);
        }
        const half = Math.ceil(pending.length / 2);
        return (await processRun(pending.slice(0, half))) && processRun(pending.slice(half));
      }
      const failed = result.failedIndex;
      report(result.error, pending.slice(failed), 1);
      if (failed > 0 && !(await processRun(pending.slice(0, failed)))) return false;
      if (!(await processFailing(pending[failed]!, result.error))) return false;
      pending = pending.slice(failed + 1);
    }
    return true;
  }

  /** Retries one message alone until it succeeds or is dead-lettered; false when interrupted. */
  async function processFailing(entry: Entry, firstError: unknown): Promise<boolean> {
    let attempts = 1;
    let lastError = firstError;
    for (;;) {
      if (!(await pause(backoffDelayMs(options.retry, attempts)))) return false;
      const giveUp = attempts >= options.retry.maxAttempts;
      const result = await runTransaction(
        [entry],
        giveUp ? { kind: 'give-up', error: lastError, attempts } : { kind: 'handle' },
      );
      if (result.ok) {
        committed([entry], result.claim);
        return true;
      }
      if (result.failedIndex === undefined || giveUp) {
        report(result.error, [entry], 0);
        continue;
      }
      attempts++;
      lastError = result.error;
      report(result.error, [entry], attempts);
    }
  }

  const batchStartedAt = performance.now();
  const entries = toEntries(batch, options as ResolvedInboxOptions<{ outbox: TransactionalOutbox }>);
  const size = options.mode === 'batch' ? options.batchSize : 1;
  try {
    for (let start = 0; start < entries.length; start += size) {
      if (!(await processRun(entries.slice(start, start + size)))) return;
      if (ahead !== undefined) return;
      try {
        // Long batches must not let the group session expire; a rebalance ends this batch here.
        await control.heartbeat?.();
      } catch {
        return;
      }
    }
  } finally {
    if (heartbeats !== undefined) clearInterval(heartbeats);
    if (ahead === undefined) await commitOffsets();
    else await positionAhead(ahead, entries[0]!.message.offset);
    if (batchChannel.hasSubscribers) {
      const lag =
        batch.highWatermark === undefined || doneUpTo === undefined
          ? undefined
          : Number(BigInt(batch.highWatermark) - doneUpTo);
      batchChannel.publish({
        consumer: options.consumer,
        topic,
        partition,
        messages: batch.messages.length,
        durationMs: performance.now() - batchStartedAt,
        nextOffset: doneUpTo?.toString(),
        highWatermark: batch.highWatermark,
        lag: lag === undefined ? undefined : Math.max(0, lag),
      } satisfies InboxBatchMessage);
    }
  }
}

/** How often, in milliseconds, a batch in progress asks the transport for a heartbeat. */
const heartbeatTickMs = 500;
