import { type IdempotentPhases, recoveryPoint } from '@onceflow/http';

/** Where a test wants the server to stop dead: inside the charge phase after the foreign call, or between phases. */
export type PausePoint = 'none' | 'after-provider-call' | 'between-phases';

/** The tables the ride route writes. */
export async function createRideTables(
  query: (sql: string) => Promise<unknown>,
  schema: string,
): Promise<void> {
  await query(
    `CREATE TABLE IF NOT EXISTS "${schema}".rides (id serial PRIMARY KEY, request_id uuid NOT NULL UNIQUE, origin text NOT NULL, charge_id text)`,
  );
}

/**
 * Stripe-style multi-step request with a foreign side effect (Brandur Leach's rocket rides):
 * 1. `started`: create the ride row; 2. `ride_created`: charge the card at the provider, passing a
 * key derived from the request, then record the charge; 3. `charged`: enqueue the event and answer.
 */
export function ridePhases(options: {
  schema: string;
  providerUrl: string;
  pause: PausePoint;
  onPause?: () => Promise<never>;
}): IdempotentPhases<{ origin: string; amount: number }> {
  const { schema, providerUrl } = options;
  return {
    started: async (req, { client, requestId }) => {
      const { rows } = await client.query<{ id: number }>(
        `INSERT INTO "${schema}".rides (request_id, origin) VALUES ($1, $2) RETURNING id`,
        [requestId, req.body.origin],
      );
      return recoveryPoint('ride_created', { rideId: rows[0]!.id });
    },
    ride_created: async (req, { client, data, foreignKey }) => {
      const { rideId } = data as { rideId: number };
      const response = await fetch(`${providerUrl}/charges`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': foreignKey('charge') },
        body: JSON.stringify({ amount: req.body.amount }),
      });
      if (!response.ok) return { status: 502, body: { error: 'payment provider failed' } };
      const { chargeId } = (await response.json()) as { chargeId: string };
      if (options.pause === 'after-provider-call') await options.onPause?.();
      await client.query(`UPDATE "${schema}".rides SET charge_id = $2 WHERE id = $1`, [rideId, chargeId]);
      return recoveryPoint('charged', { rideId, chargeId });
    },
    charged: async (_req, { data, outbox }) => {
      const ride = data as { rideId: number; chargeId: string };
      await outbox.enqueue({ topic: 'rides', key: String(ride.rideId), value: ride });
      return { status: 201, body: ride };
    },
  };
}
