import diagnosticsChannel from 'node:diagnostics_channel';
import { type StatusChangeMessage, statusChannel } from './diagnostics';
import type { OnceflowError } from './errors';

/**
 * Where a component is in its life: `starting` until it first runs, `running` while it does its work,
 * `waiting-for-database` / `waiting-for-broker` while a server it needs cannot be reached (it retries on
 * its own), `stopping` during `stop()`, and `stopped` after it (or after a start that failed).
 */
export type ComponentState =
  | 'starting'
  | 'running'
  | 'waiting-for-database'
  | 'waiting-for-broker'
  | 'stopping'
  | 'stopped';

/** What `status()` of a component returns: for health and readiness probes. */
export interface ComponentStatus {
  readonly state: ComponentState;
  /** When the component entered `state`. */
  readonly since: Date;
  /** The last error the component reported (recovered from or not), kept after it recovered. */
  readonly lastError?: OnceflowError;
  /** When `lastError` was reported. */
  readonly lastErrorAt?: Date;
}

/** A component's state as it changes; `status()` of its handles reads it. Internal to the engines. */
export interface StatusTracker {
  status(): ComponentStatus;
  /** Moves to `state` (no-op when already there, or once `stopped`), recording `error` if given. */
  set(state: ComponentState, error?: OnceflowError): void;
  /** Records an error without changing the state. */
  error(error: OnceflowError): void;
  /** The current state. */
  readonly state: ComponentState;
}

const channel = diagnosticsChannel.channel(statusChannel);

/**
 * A {@link StatusTracker} for `component` named `name`, starting in `starting`. Each change is
 * published on the `onceflow:status` diagnostics channel.
 */
export function createStatusTracker(component: string, name: string): StatusTracker {
  let current: ComponentStatus = { state: 'starting', since: new Date() };
  const tracker: StatusTracker = {
    status: () => current,
    get state() {
      return current.state;
    },
    error(error) {
      current = { ...current, lastError: error, lastErrorAt: new Date() };
    },
    set(state, error) {
      if (error !== undefined) tracker.error(error);
      const previous = current.state;
      if (previous === state || previous === 'stopped') return;
      // A component stopping stays so until stopped, whatever its last work reports.
      if (previous === 'stopping' && state !== 'stopped') return;
      current = { ...current, state, since: new Date() };
      if (channel.hasSubscribers)
        channel.publish({ component, name, state, previous } satisfies StatusChangeMessage);
    },
  };
  return tracker;
}
