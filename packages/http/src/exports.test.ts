import { describe, expect, it } from 'vitest';
import * as http from './index';

describe('@onceflow/http public surface', () => {
  it('exports exactly the documented runtime symbols', () => {
    expect(Object.keys(http).sort()).toEqual([
      'createIdempotencyCompleter',
      'createIdempotencyEngine',
      'createIdempotencyReaper',
      'defaultIdempotencyCompleterOptions',
      'defaultIdempotencyEngineOptions',
      'defaultIdempotencyReaperOptions',
      'defineRoute',
      'errorResponse',
      'idempotency',
      'idempotencyKeyHeader',
      'idempotent',
      'idempotentListener',
      'parseIdempotencyKey',
      'problemResponse',
      'problemTypeUri',
      'problemTypes',
      'recoveryPoint',
      'replayedHeader',
      'requestFingerprint',
      'serializeResponse',
      'startedRecoveryPoint',
    ]);
  });
});
