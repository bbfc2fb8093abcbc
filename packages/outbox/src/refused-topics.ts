import { performance } from 'node:perf_hooks';
import { backoffDelayMs, OnceflowError, type RetryPolicy } from '@onceflow/core';
import type { OutboxRow } from '@onceflow/postgres';
import type { BatchOutcome, RefusedTopicAction } from './publish-batch';

/** A topic the broker refused, while its events wait for another try. */
interface RefusedTopic {
  /** When the current run of refusals began (performance.now). */
  since: number;
  tries: number;
  /** No try before this (performance.now). */
  nextTryAt: number;
  /** Rows known to wait for the topic, left out of claims until the next try. */
  waiting: Set<string>;
}

/** Most waiting rows left out of a claim: the claim checks each candidate row against the list. */
const maxExcluded = 1_000;

/**
 * The relay's memory of topics the broker refused (OF_TOPIC_MISSING): their events are held back and
 * tried again with backoff while every other topic flows, and parked once a topic has been refused for
 * `parkAfterMs`. A topic is forgotten when one of its events is published or when its events are
 * parked, so a topic created later, or an event unparked after that, starts afresh.
 */
export class RefusedTopics {
  private readonly topics = new Map<string, RefusedTopic>();

  constructor(
    private readonly parkAfterMs: number,
    private readonly retry: RetryPolicy,
    private readonly report: (error: OnceflowError) => void,
  ) {}

  /** Seqs of waiting rows to leave out of the next claim: those of topics not yet due for a try. */
  excluded(): { seq: string }[] {
    const now = performance.now();
    const rows: { seq: string }[] = [];
    for (const topic of this.topics.values()) {
      if (topic.nextTryAt <= now) continue;
      for (const seq of topic.waiting) {
        if (rows.length >= maxExcluded) return rows;
        rows.push({ seq });
      }
    }
    return rows;
  }

  /** True when `row`'s topic was refused and is not due for another try yet. */
  waits(row: OutboxRow): boolean {
    const topic = this.topics.get(row.topic);
    return topic !== undefined && topic.nextTryAt > performance.now();
  }

  /** The decision for a topic the broker refused just now: wait and try again, or park. */
  readonly decide = (topic: string, refusal: OnceflowError): RefusedTopicAction => {
    const now = performance.now();
    const state = this.topics.get(topic) ?? { since: now, tries: 0, nextTryAt: now, waiting: new Set() };
    state.tries++;
    const waitedMs = now - state.since;
    if (!refusal.retriable || waitedMs >= this.parkAfterMs) {
      this.topics.delete(topic);
      return {
        action: 'park',
        error:
          `topic "${topic}" was refused ${state.tries} time(s) over ${Math.round(waitedMs / 1000)} s: ${refusal.message}. ` +
          `Create the topic (or let this client write to it), then unpark the event (unparkOutboxEvents from @onceflow/postgres); the later events of its key wait behind it.`,
      };
    }
    state.nextTryAt = now + backoffDelayMs(this.retry, state.tries);
    this.topics.set(topic, state);
    this.report(
      new OnceflowError(
        'OF_TOPIC_MISSING',
        `topic "${topic}" was refused (${refusal.message}); its events wait and are tried again, and parked after ${Math.round(this.parkAfterMs / 1000)} s of refusals. Create the topic, or let this client write to it`,
        { retriable: true, cause: refusal, details: { topics: [topic], tries: state.tries } },
      ),
    );
    return { action: 'defer' };
  };

  /** Notes that `row` waits for its refused topic, so that claims leave it out until the next try. */
  remember(row: OutboxRow): void {
    const waiting = this.topics.get(row.topic)?.waiting;
    if (waiting !== undefined && waiting.size < maxExcluded) waiting.add(row.seq);
  }

  /** Takes note of a settled batch: published topics are fine again, deferred rows wait. */
  settled(outcome: BatchOutcome): void {
    for (const row of outcome.published) this.topics.delete(row.topic);
    for (const { row } of outcome.parked) this.topics.delete(row.topic);
    for (const row of outcome.deferred ?? []) this.remember(row);
  }
}
