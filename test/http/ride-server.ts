// A child server process for crash tests: the ride route, optionally freezing at a pause point
// so the test can SIGKILL it there. Prints `LISTENING <url>` when ready and `PAUSED <point>` when frozen.
import { idempotency, idempotent } from '@onceflow/http';
import Fastify from 'fastify';
import pg from 'pg';
import { type PausePoint, ridePhases } from './ride-phases';

const schema = process.env.RIDE_SCHEMA!;
const pause = (process.env.RIDE_PAUSE ?? 'none') as PausePoint;
const freeze = async (): Promise<never> => {
  console.log(`PAUSED ${pause}`);
  return new Promise<never>(() => undefined);
};

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
const app = Fastify({ logger: false });
await app.register(idempotency, {
  pool,
  schema,
  leaseMs: Number(process.env.RIDE_LEASE_MS ?? 1000),
  scope: (req) => req.headers['x-tenant'] as string | undefined,
  completer: false,
  reaper: false,
  testHooks: {
    afterPhaseCommit: async (info) => {
      if (pause === 'between-phases' && info.recoveryPoint === 'ride_created') await freeze();
    },
  },
});
app.post(
  '/rides',
  { config: { idempotency: { required: true } } },
  idempotent(ridePhases({ schema, providerUrl: process.env.PROVIDER_URL!, pause, onPause: freeze })),
);
const url = await app.listen({ host: '127.0.0.1', port: 0 });
console.log(`LISTENING ${url}`);
