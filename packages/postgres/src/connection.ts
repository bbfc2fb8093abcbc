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

/**
 * Checks a connection out of `pool` with an `error` listener for as long as it is held. pg-pool
 * listens for errors of idle connections only: a backend terminated between two queries of a
 * transaction (server restart, pg_terminate_backend, failover, a proxy's idle timeout) makes the
 * checked-out client emit `error`, and without a listener Node ends the process, whatever listens on
 * the pool. The failure is recorded instead; the next query fails on its own ("not queryable") and
 * the caller retries on a fresh connection.
 */
export async function holdConnection(pool: Pool): Promise<HeldConnection> {
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
