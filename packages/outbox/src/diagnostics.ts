import diagnosticsChannel from 'node:diagnostics_channel';
import {
  isOnceflowError,
  type LanePublisher,
  type PublisherTransport,
  type RelayBatchMessage,
  type RelayLaneMessage,
  type RelayParkedMessage,
  relayBatchChannel,
  relayLaneChannel,
  relayParkedChannel,
  type StatusTracker,
} from '@onceflow/core';
import type { OutboxRelayObserver, ResolvedRelayOptions } from './options';

// Published only when subscribed (hasSubscribers), so metrics cost nothing when nobody listens.
const batchChannel = diagnosticsChannel.channel(relayBatchChannel);
const parkedChannel = diagnosticsChannel.channel(relayParkedChannel);
const laneChannel = diagnosticsChannel.channel(relayLaneChannel);

/** The user's observer, also publishing what it sees on the relay's diagnostics channels. */
function publishingObserver(
  observer: OutboxRelayObserver,
  schema: string,
  relayId: string,
): OutboxRelayObserver {
  const lane = (number: number, change: RelayLaneMessage['change']): void => {
    if (laneChannel.hasSubscribers)
      laneChannel.publish({ schema, relayId, lane: number, change } satisfies RelayLaneMessage);
  };
  return {
    onPublished(batch) {
      if (batchChannel.hasSubscribers)
        batchChannel.publish({ schema, relayId, ...batch } satisfies RelayBatchMessage);
      observer.onPublished?.(batch);
    },
    // Backlog reports are read by the relay only when someone wants them: see relay.ts.
    ...(observer.onBacklog === undefined ? {} : { onBacklog: observer.onBacklog.bind(observer) }),
    onParked(event) {
      if (parkedChannel.hasSubscribers)
        parkedChannel.publish({
          schema,
          relayId,
          lane: event.lane,
          eventId: event.eventId,
          topic: event.topic,
          error: event.error,
        } satisfies RelayParkedMessage);
      observer.onParked?.(event);
    },
    onLaneAcquired(number, epoch) {
      lane(number, 'acquired');
      observer.onLaneAcquired?.(number, epoch);
    },
    onLaneReleased(number, reason) {
      lane(number, reason);
      observer.onLaneReleased?.(number, reason);
    },
  };
}

/** True for a failure that says the broker cannot be reached now (not a refusal of some records). */
function brokerUnavailable(error: unknown): boolean {
  return (
    (isOnceflowError(error, 'OF_PUBLISH_FAILED') || isOnceflowError(error, 'OF_UNAVAILABLE')) &&
    error.retriable
  );
}

/** `transport`, telling `status` whether the broker answers: every open and publish is a probe. */
function watchedTransport(transport: PublisherTransport, status: StatusTracker): PublisherTransport {
  const answered = (): void => {
    if (status.state === 'waiting-for-broker') status.set('running');
  };
  const failed = (error: unknown): void => {
    if (brokerUnavailable(error) && status.state === 'running') status.set('waiting-for-broker');
  };
  const watch = (publisher: LanePublisher): LanePublisher => ({
    async publish(records) {
      try {
        await publisher.publish(records);
      } catch (error) {
        failed(error);
        throw error;
      }
      answered();
    },
    close: () => publisher.close(),
  });
  return {
    async openLane(fencingId) {
      let publisher: LanePublisher;
      try {
        publisher = await transport.openLane(fencingId);
      } catch (error) {
        failed(error);
        throw error;
      }
      answered();
      return watch(publisher);
    },
    close: () => transport.close(),
  };
}

/**
 * The relay's options with the observer publishing on the diagnostics channels and the transport
 * feeding the relay's status.
 */
export function instrumentRelay(
  options: ResolvedRelayOptions,
  relayId: string,
  status: StatusTracker,
): ResolvedRelayOptions {
  return {
    ...options,
    observer: publishingObserver(options.observer, options.schema, relayId),
    transport: watchedTransport(options.transport, status),
  };
}
