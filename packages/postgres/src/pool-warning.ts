import { OnceflowError } from '@onceflow/core';
import type { Pool } from 'pg';

const warned = new WeakSet<object>();

/**
 * A warning, once per pool, when `pool` has no `error` listener. pg emits `error` on the pool when
 * a connection idle in it breaks (server restart, failover, a proxy's idle timeout), and an
 * EventEmitter without an `error` listener ends the process: the first Postgres restart would kill a
 * service that onceflow would otherwise carry through. Undefined when there is a listener, when
 * the pool was checked before, or when `pool` is not an EventEmitter.
 */
export function missingPoolErrorListener(pool: Pool, component: string): OnceflowError | undefined {
  if (typeof pool?.listenerCount !== 'function' || pool.listenerCount('error') > 0 || warned.has(pool))
    return undefined;
  warned.add(pool);
  return new OnceflowError(
    'OF_INVALID_OPTIONS',
    `${component}: the pg Pool it was given has no 'error' listener, so the process will crash the first time the Postgres server restarts or drops an idle connection. Add one, for example pool.on('error', (error) => console.error('postgres pool:', error.message)); onceflow reconnects by itself.`,
    { details: { warning: true } },
  );
}
