import autocannon from 'autocannon';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import type { HttpServerParams } from '../workers/http-server';

interface LoadResult {
  okPerS: number;
  ok: number;
  other: number;
  p99Ms: number;
}

async function load(
  ctx: BenchContext,
  url: string,
  name: string,
  nextKey: (() => string) | undefined,
): Promise<LoadResult> {
  const body = JSON.stringify({ sku: 'sku-1', quantity: 2 });
  const result = await autocannon({
    url,
    method: 'POST',
    connections: ctx.config.httpConnections,
    duration: ctx.config.httpSeconds,
    headers: { 'content-type': 'application/json' },
    body,
    ...(nextKey
      ? {
          requests: [
            {
              method: 'POST',
              setupRequest: (request: autocannon.Request) => ({
                ...request,
                headers: { ...request.headers, 'idempotency-key': nextKey() },
                body,
              }),
            },
          ],
        }
      : {}),
  });
  const ok = result['2xx'];
  const other = result.non2xx + result.errors + result.timeouts;
  const okPerS = ok / result.duration;
  ctx.log(
    `  ${name.padEnd(22)} ${String(ok).padStart(7)} 2xx in ${result.duration.toFixed(1)} s = ${Math.round(okPerS)}/s (${other} other), p99 ${result.latency.p99} ms`,
  );
  return { okPerS, ok, other, p99Ms: result.latency.p99 };
}

/**
 * HTTP scenarios against one loopback Fastify server (its own process): a route writing one row
 * and one outbox event without idempotency, the same work behind onceflow's Idempotency-Key
 * (a fresh key per request), and replays of keys that already completed.
 */
export async function runHttpGroup(ctx: BenchContext): Promise<void> {
  const params: HttpServerParams = {
    ...ctx.services,
    schema: ctx.schema,
    syncCommit: 'server',
    topic: `${ctx.runId}-http`,
  };
  const server = spawnWorker<{ handlerRuns: { plain: number; idempotent: number }; peakRssMb: number }>(
    'http-server',
    params as unknown as Record<string, unknown>,
  );
  try {
    const { url } = (await server.ready()) as { url: string };
    ctx.log(`http: ${ctx.config.httpConnections} connections, ${ctx.config.httpSeconds} s per run, ${url}`);
    const plain = await load(ctx, `${url}/plain`, 'http-plain', undefined);
    let fresh = 0;
    const idempotentRun = await load(
      ctx,
      `${url}/orders`,
      'http-idempotent',
      () => `${ctx.runId}-k${fresh++}`,
    );
    // Keys that completed: the first ones handed out (each got its 201 before the run ended).
    const completed = Math.max(1, Math.min(1000, idempotentRun.ok));
    let replayed = 0;
    const replay = await load(
      ctx,
      `${url}/orders`,
      'http-replay',
      () => `${ctx.runId}-k${replayed++ % completed}`,
    );
    const final = await server.finish();
    const runs = final.handlerRuns.idempotent;
    // Requests still in flight when the load generator stopped completed on the server uncounted.
    if (runs < idempotentRun.ok || runs > idempotentRun.ok + ctx.config.httpConnections)
      ctx.notes.push(
        `http check failed: the idempotent handler ran ${runs} times for ${idempotentRun.ok} successful fresh requests (replays must not run it)`,
      );
    ctx.results.http_plain_req_per_s = round(plain.okPerS);
    ctx.results.http_idempotent_req_per_s = round(idempotentRun.okPerS);
    ctx.results.http_replay_req_per_s = round(replay.okPerS);
    ctx.results.http_idempotent_ratio_to_plain = round(idempotentRun.okPerS / plain.okPerS, 3);
    ctx.results.http_replay_ratio_to_fresh = round(replay.okPerS / idempotentRun.okPerS, 3);
    ctx.results.http_server_peak_rss_mb = final.peakRssMb;
  } finally {
    server.kill();
  }
}
