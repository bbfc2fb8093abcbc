import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { type StatusChangeMessage, statusChannel } from './diagnostics';
import { OnceflowError } from './errors';
import { createStatusTracker } from './status';

describe('createStatusTracker', () => {
  it('moves between states, keeps the last error, stays stopping until stopped and stopped for good, and tells the channel', () => {
    const seen: StatusChangeMessage[] = [];
    const listener = (message: unknown): void => {
      seen.push(message as StatusChangeMessage);
    };
    diagnosticsChannel.subscribe(statusChannel, listener);
    try {
      const tracker = createStatusTracker('outbox relay', 'r1');
      expect(tracker.status().state).toBe('starting');
      const outage = new OnceflowError('OF_UNAVAILABLE', 'database away');
      tracker.set('waiting-for-database', outage);
      const waiting = tracker.status();
      expect(waiting).toMatchObject({ state: 'waiting-for-database', lastError: outage });
      tracker.set('waiting-for-database');
      expect(tracker.status().since).toBe(waiting.since);
      tracker.set('running');
      // The error is kept after the recovery.
      expect(tracker.status()).toMatchObject({ state: 'running', lastError: outage });
      tracker.set('stopping');
      tracker.set('running');
      expect(tracker.state).toBe('stopping');
      tracker.set('stopped');
      tracker.set('running');
      expect(tracker.state).toBe('stopped');
      expect(seen.map((m) => `${m.previous}>${m.state}`)).toEqual([
        'starting>waiting-for-database',
        'waiting-for-database>running',
        'running>stopping',
        'stopping>stopped',
      ]);
      expect(seen[0]).toMatchObject({ component: 'outbox relay', name: 'r1' });
    } finally {
      diagnosticsChannel.unsubscribe(statusChannel, listener);
    }
  });
});
