// The Orders API process: `POST /orders` (Idempotency-Key required) and `GET /orders/:id`.
// Env: API_PORT (default 0, any free port; the ready line prints the URL) and the pipeline's names.
import { buildOrdersApp } from '../orders-app';
import { runProcess } from '../runtime';

await runProcess('orders-api', async ({ pool, config, logger }) => {
  const app = await buildOrdersApp(pool, config, logger);
  const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.API_PORT ?? 0) });
  return { service: { stop: () => app.close() }, info: address };
});
