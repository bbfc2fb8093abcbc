import type { Pool, PoolClient } from 'pg';

/** A pooled connection checked out for a transaction; see {@link holdConnection}. */
export interface HeldConnection {
  readonly client: PoolClient;
  /** The failure the connection reported while held (`error` or `end` event), or undefined. */
  lost(): unknown;
  /**
   * Gives the connection back to the pool, or destroys it when it failed or `destroy` is true (a
   * connection whose state is unknown must not serve anyone else). Later calls do nothing.
   */
  release(destroy?: boolean): void;
}

const ignore = (): void => undefined;
const guardedPools = new WeakSet<Pool>();

/**
 * Gives every connection `pool` opens from now on a permanent `error` listener that ignores what it
 * hears. pg-pool takes its own listener off a new connection when it hands it out, and the caller can
 * add one only once `pool.connect()` has resolved, a microtask later; a server ending the session in
 * the same network read that completed the handshake (a restart under way) emits `error` in between,
 * and Node ends the process. The listener added at the pool's `connect` event is there from the
 * start. It hides nothing: the pool's listener still hears an idle connection fail, a holder's
 * listener a held one, and the connection's next query fails.
 */
export function guardPoolConnections(pool: Pool): void {
  if (guardedPools.has(pool)) return;
  guardedPools.add(pool);
  pool.on('connect', (client) => client.on('error', ignore));
}

/**
 * Checks a connection out of `pool` with an `error` listener for as long as it is held. pg-pool
 * listens for errors of idle connections only: a backend terminated between two queries of a
 * transaction (server restart, pg_terminate_backend, failover, a proxy's idle timeout) makes the
 * checked-out client emit `error`, and without a listener Node ends the process, whatever listens on
 * the pool. The failure is recorded instead; the next query fails on its own ("not queryable") and
 * the caller retries on a fresh connection.
 */
export async function holdConnection(pool: Pool): Promise<HeldConnection> {
  guardPoolConnections(pool);
  const client = await pool.connect();
  let lost: unknown;
  let released = false;
  const onError = (error: unknown): void => {
    lost ??= error;
  };
  const onEnd = (): void => {
    lost ??= new Error('Connection terminated unexpectedly');
  };
  client.on('error', onError);
  client.on('end', onEnd);
  return {
    client,
    lost: () => lost,
    release(destroy = false) {
      if (released) return;
      released = true;
      client.off('end', onEnd);
      client.off('error', onError);
      if (lost === undefined && !destroy) {
        client.release();
        return;
      }
      // A broken connection may report more errors while it closes; they say nothing new.
      client.on('error', ignore);
      client.release(true);
    },
  };
}
