import { backoffDelayMs, type RetryPolicy, sleep } from '@onceflow/core';
import type { Notification, Pool, PoolClient } from 'pg';
import { guardPoolConnections } from '../connection';

/** Options of {@link listenForWakeups}. */
export interface WakeupOptions {
  pool: Pool;
  /** Validated schema name; the channel is `onceflow_outbox_<schema>`. */
  schema: string;
  /** Called with the lane of a notification, or null when every lane should look (after a reconnect). */
  onWake: (lane: number | null) => void;
  onError: (error: unknown) => void;
  retry: RetryPolicy;
  signal: AbortSignal;
}

/** The channel the enqueue function notifies, with the lane as payload. */
export function outboxChannel(schema: string): string {
  return `onceflow_outbox_${schema}`;
}

/**
 * Holds one pooled connection in LISTEN and turns notifications into wake-ups. When the connection
 * drops it reconnects with backoff and wakes every lane, since notifications sent meanwhile are lost;
 * the lanes' polling covers the gap. Resolves when `signal` aborts.
 */
export async function listenForWakeups(options: WakeupOptions): Promise<void> {
  const { signal } = options;
  for (let attempt = 0; !signal.aborted; ) {
    let client: PoolClient | undefined;
    let broken: unknown;
    let wakeDropped = (): void => undefined;
    const dropped = new Promise<void>((resolve) => {
      wakeDropped = resolve;
    });
    const onError = (error: unknown): void => {
      broken = error;
      wakeDropped();
    };
    const onEnd = (): void => onError(new Error('LISTEN connection ended'));
    const onNotification = (message: Notification): void => {
      const lane = Number(message.payload);
      if (Number.isInteger(lane)) options.onWake(lane);
    };
    const onAbort = (): void => wakeDropped();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      guardPoolConnections(options.pool);
      client = await options.pool.connect();
      client.on('error', onError);
      client.on('end', onEnd);
      client.on('notification', onNotification);
      await client.query(`LISTEN "${outboxChannel(options.schema)}"`);
      attempt = 0;
      options.onWake(null);
      await dropped;
      if (broken !== undefined) options.onError(broken);
    } catch (error) {
      broken = error;
      if (!signal.aborted) options.onError(error);
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (client) {
        if (broken === undefined) await client.query('UNLISTEN *').catch(() => undefined);
        client.off('notification', onNotification);
        client.off('end', onEnd);
        client.off('error', onError);
        // A dropped connection may still report errors while it closes; they are already handled.
        if (broken !== undefined) client.on('error', () => undefined);
        client.release(broken === undefined ? undefined : true);
      }
    }
    if (signal.aborted) return;
    attempt++;
    await sleep(backoffDelayMs(options.retry, attempt), signal);
  }
}
