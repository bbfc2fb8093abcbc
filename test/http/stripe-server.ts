// A child server process running the Stripe-shaped API, so tests can put two processes on one
// database. Prints `LISTENING <url>` when ready, and `RESPONSE <json>` for every response it sends.
import pg from 'pg';
import { createCustomersTable, startStripeApp } from './stripe-app';

const schema = process.env.STRIPE_APP_SCHEMA!;
const errorFormat = (process.env.STRIPE_APP_ERROR_FORMAT ?? 'stripe') as 'stripe' | 'problem+json';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
await createCustomersTable(pool, schema);
const { url } = await startStripeApp(pool, schema, {
  errorFormat,
  onResponse: (response) => console.log(`RESPONSE ${JSON.stringify(response)}`),
});
console.log(`LISTENING ${url}`);
