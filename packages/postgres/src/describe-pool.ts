import type { Pool, PoolConfig } from 'pg';

/**
 * Where a pg Pool connects, for messages an operator acts on: `Postgres at db.internal:5432
 * (database app, user svc)`. Read from the pool's settings the way node-postgres does (connection
 * string first, then host/port/database/user, then PGHOST, PGPORT, PGDATABASE, PGUSER); never
 * includes the password.
 */
export function describePool(pool: Pool): string {
  const options: PoolConfig = (pool as { options?: PoolConfig }).options ?? {};
  let { host, port, database, user } = options;
  if (typeof options.connectionString === 'string') {
    try {
      const url = new URL(options.connectionString);
      host = decodeURIComponent(url.hostname) || url.searchParams.get('host') || host;
      if (url.port !== '') port = Number(url.port);
      database = decodeURIComponent(url.pathname.replace(/^\//, '')) || database;
      user = decodeURIComponent(url.username) || user;
    } catch {
      // Not a URL (a bare socket path, for instance): the other settings still say something.
    }
  }
  host ??= process.env.PGHOST ?? 'localhost';
  port ??= Number(process.env.PGPORT ?? 5432);
  user ??= process.env.PGUSER;
  database ??= process.env.PGDATABASE ?? user;
  const about = [database && `database ${database}`, user && `user ${user}`].filter(Boolean).join(', ');
  return `Postgres at ${host}:${port}${about === '' ? '' : ` (${about})`}`;
}
