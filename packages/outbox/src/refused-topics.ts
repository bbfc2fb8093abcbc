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
  /** Set once its events are parked: its later refused events are parked at once. */
  parking?: boolean;
}

/**
 * The relay's memory of topics the broker refused (OF_TOPIC_MISSING): their events are held back and
 * tried again with backoff while every other topic flows, and parked once a topic has been refused for
 * `parkAfterMs`; from then on its refused events are parked as soon as they are tried. Claims leave
 * out a waiting topic as a whole. A topic is forgotten when one of its events is published, so a topic
 * created later starts afresh.
 */
export class RefusedTopics {
  private readonly topics = new Map<string, RefusedTopic>();

  constructor(
    private readonly parkAfterMs: number,
    private readonly retry: RetryPolicy,
    private readonly report: (error: OnceflowError) => void,
  ) {}

  /**
   * Topics to leave out of the next claim: those not yet due for another try. Left out by topic, a
   * refused topic's waiting events never fill a claim, however many they are.
   */
  excludedTopics(): string[] {
    const now = performance.now();
    const topics: string[] = [];
    for (const [name, topic] of this.topics) if (topic.nextTryAt > now) topics.push(name);
    return topics;
  }

  /** True when `row`'s topic was refused and is not due for another try yet. */
  waits(row: OutboxRow): boolean {
    const topic = this.topics.get(row.topic);
    return topic !== undefined && topic.nextTryAt > performance.now();
  }

  /** The decision for a topic the broker refused just now: wait and try again, or park. */
  readonly decide = (topic: string, refusal: OnceflowError): RefusedTopicAction => {
    const now = performance.now();
    const state = this.topics.get(topic) ?? { since: now, tries: 0, nextTryAt: now };
    state.tries++;
    const waitedMs = now - state.since;
    if (!refusal.retriable || state.parking === true || waitedMs >= this.parkAfterMs) {
      // The topic's other waiting events (of other keys) are parked as soon as they are tried, without
      // waiting out parkAfterMs again each: thousands of them must not take hours to set aside.
      state.parking = true;
      state.nextTryAt = now;
      this.topics.set(topic, state);
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

  /** Takes note of a settled batch: a topic with an event published is fine again. */
  settled(outcome: BatchOutcome): void {
    for (const row of outcome.published) this.topics.delete(row.topic);
  }
}
