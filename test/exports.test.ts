// Pins the public surface of the packages that have no exports test of their own: adding or removing
// an export is a decision, so it shows up here as a failing test and a one-line change.
import * as core from '@onceflow/core';
import * as kafkajs from '@onceflow/kafkajs';
import * as outbox from '@onceflow/outbox';
import * as postgres from '@onceflow/postgres';
import { describe, expect, it } from 'vitest';

describe('public surface', () => {
  it('@onceflow/core exports exactly the documented primitives', () => {
    expect(Object.keys(core).sort()).toEqual([
      'OnceflowError',
      'backoffDelayMs',
      'cloudEventsIdHeader',
      'createStoppable',
      'defaultRetryPolicy',
      'defaultSchemaName',
      'errorCodes',
      'headerText',
      'invalidOptions',
      'isOnceflowError',
      'isTransientDatabaseError',
      'maxMessageIdLength',
      'messageIdHeader',
      'missingIdPolicies',
      'newEventId',
      'quoteIdentifier',
      'resolveMessageId',
      'retryPolicyProblems',
      'sleep',
      'transientSqlStates',
      'validateIdentifier',
      'valueAsJson',
    ]);
  });

  it('@onceflow/postgres exports exactly the migrator, the transaction runner and the stores', () => {
    expect(Object.keys(postgres).sort()).toEqual([
      'acquireLaneLeases',
      'claimOutboxBatch',
      'createPgIdempotencyKeyStore',
      'createPgInboxStore',
      'createTransactionContext',
      'defaultSchemaName',
      'encodeOutboxEvent',
      'enqueue',
      'heartbeatRelay',
      'idempotencyTables',
      'inboxTables',
      'isPgQueryable',
      'laneOf',
      'listParkedOutboxEvents',
      'loadMigrations',
      'migrate',
      'outboxLaneCount',
      'outboxTables',
      'quoteIdentifier',
      'readOutboxStatus',
      'releaseLaneLeases',
      'renewLaneLeases',
      'runInTransaction',
      'settleOutboxBatch',
      'unparkOutboxEvents',
      'unregisterRelay',
      'validateIdentifier',
    ]);
  });

  it('@onceflow/outbox exports exactly the relay engine and the enqueue API', () => {
    expect(Object.keys(outbox).sort()).toEqual([
      'createOutboxRelayEngine',
      'defaultOutboxRelayOptions',
      'enqueue',
      'outboxChannel',
      'publishBatch',
      'readOutboxStatus',
    ]);
  });

  it('@onceflow/kafkajs exports exactly the consumer, the relay and their transports', () => {
    expect(Object.keys(kafkajs).sort()).toEqual([
      'classifyPublishError',
      'createInboxConsumer',
      'createKafkajsConsumerTransport',
      'createKafkajsPublisherTransport',
      'createOutboxRelay',
      'defaultKafkajsPublisherOptions',
    ]);
  });
});
