import formbody from '@fastify/formbody';
import { type FastifyIdempotencyOptions, idempotency, idempotent } from '@onceflow/http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Pool } from 'pg';

/** The form parameters of `POST /v1/customers` as stripe-node encodes them (flat `metadata[x]` names). */
export type CustomerParams = Record<string, string | string[] | undefined>;

/** A response the server sent, as the `onResponse` hook saw it. */
export interface SentResponse {
  status: number;
  replayed: boolean;
  key: string | undefined;
  elapsedMs: number;
}

/** Options of {@link startStripeApp}: engine options plus hooks the tests steer the handler with. */
export interface StripeAppOptions extends Partial<FastifyIdempotencyOptions> {
  /**
   * Called in the handler's transaction before the customer row is written, with the run number of
   * this handler in this app (1 for its first execution). A throw answers 500 and releases the key;
   * awaiting something keeps the request running.
   */
  beforeInsert?: (params: CustomerParams, run: number) => Promise<void> | void;
  /** Called for each response sent, replays and refusals included. */
  onResponse?: (response: SentResponse) => void;
  /** Called as each request arrives, before onceflow looks at it, with its Idempotency-Key. */
  onRequest?: (key: string | undefined) => void;
}

/** The customers table of the Stripe-shaped API, in the test's schema. */
export async function createCustomersTable(pool: Pool, schema: string): Promise<void> {
  await pool.query(
    `CREATE TABLE IF NOT EXISTS "${schema}".customers (
       id serial PRIMARY KEY, api_key text NOT NULL, name text, email text, metadata jsonb NOT NULL)`,
  );
}

/**
 * A Stripe-shaped API guarded by onceflow: `POST /v1/customers` takes form bodies (as stripe-node
 * sends them) and answers a customer object; keys are scoped to the API key of the bearer token.
 */
export async function startStripeApp(
  pool: Pool,
  schema: string,
  options: StripeAppOptions = {},
): Promise<{ app: FastifyInstance; url: string; runs: () => number }> {
  const { beforeInsert, onResponse, onRequest, ...engineOptions } = options;
  let runs = 0;
  const app = Fastify({ logger: false });
  await app.register(formbody);
  await app.register(idempotency, {
    pool,
    schema,
    scope: (req) => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1],
    completer: false,
    reaper: false,
    onError: () => undefined,
    ...engineOptions,
  });
  if (onRequest)
    app.addHook('onRequest', async (request) => {
      onRequest(request.headers['idempotency-key'] as string | undefined);
    });
  if (onResponse)
    app.addHook('onResponse', async (request, reply) => {
      onResponse({
        status: reply.statusCode,
        replayed: reply.getHeader('idempotent-replayed') === 'true',
        key: request.headers['idempotency-key'] as string | undefined,
        elapsedMs: reply.elapsedTime,
      });
    });

  app.post(
    '/v1/customers',
    idempotent<CustomerParams>(async (req, { client }) => {
      const run = ++runs;
      const params = req.body ?? {};
      await beforeInsert?.(params, run);
      const metadata: Record<string, string> = {};
      for (const [name, value] of Object.entries(params)) {
        const match = /^metadata\[(.+)\]$/.exec(name);
        if (match && typeof value === 'string') metadata[match[1]!] = value;
      }
      const { rows } = await client.query<{ id: number }>(
        `INSERT INTO "${schema}".customers (api_key, name, email, metadata) VALUES ($1, $2, $3, $4) RETURNING id`,
        [req.scope, params.name ?? null, params.email ?? null, JSON.stringify(metadata)],
      );
      return {
        status: 200,
        body: {
          id: `cus_${rows[0]!.id}`,
          object: 'customer',
          name: params.name ?? null,
          email: params.email ?? null,
          metadata,
        },
      };
    }),
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, runs: () => runs };
}
