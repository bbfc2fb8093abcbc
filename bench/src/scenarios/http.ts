import { quoteIdentifier } from '@onceflow/postgres';
import autocannon from 'autocannon';
import { spawnWorker } from '../child';
import { type BenchContext, round } from '../context';
import type { HttpServerParams } from '../workers/http-server';

interface LoadResult {
  ok: number;
  other: number;
  durationS: number;
  p99Ms: number;
}

/** One autocannon run; `nextKey` adds a fresh Idempotency-Key to every request. */
async function load(
  ctx: BenchContext,
  url: string,
  seconds: number,
  nextKey: (() => string) | undefined,
): Promise<LoadResult> {
  const body = JSON.stringify({ sku: 'sku-1', quantity: 2 });
  const result = await autocannon({
    url,
    method: 'POST',
    connections: ctx.config.httpConnections,
    duration: seconds,
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
  return {
    ok: result['2xx'],
    other: result.non2xx + result.errors + result.timeouts,
    durationS: result.duration,
    p99Ms: result.latency.p99,
  };
}

/** Sums of several runs of one route. */
class Tally {
  ok = 0;
  other = 0;
  durationS = 0;
  p99Ms = 0;
  runs = 0;

  add(run: LoadResult): void {
    this.ok += run.ok;
    this.other += run.other;
    this.durationS += run.durationS;
    this.p99Ms = Math.max(this.p99Ms, run.p99Ms);
    this.runs++;
  }

  get okPerS(): number {
    return this.ok / this.durationS;
  }

  log(ctx: BenchContext, name: string): void {
    ctx.log(
      `  ${name.padEnd(22)} ${String(this.ok).padStart(7)} 2xx in ${this.durationS.toFixed(1)} s (${this.runs} runs) = ${Math.round(this.okPerS)}/s (${this.other} other), worst p99 ${this.p99Ms} ms`,
    );
  }
}

/** Seconds of unmeasured load per route before measuring: JIT, pool connections, caches. */
const warmUpSeconds = 2;

/**
 * HTTP scenarios against one loopback Fastify server (its own process): a route writing one row
 * and one outbox event without idempotency, the same work behind onceflow's Idempotency-Key
 * (a fresh key per request), and replays of keys that already completed.
 *
 * Both routes are warmed up first, then measured in alternating runs (plain, idempotent,
 * idempotent, plain, ...), so a change in the machine's background load during the group falls on
 * both alike and their ratio compares like with like.
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
    // Short alternating runs: a burst of background load lands on both routes rather than one.
    const rounds = Math.max(1, Math.min(10, Math.floor(ctx.config.httpSeconds)));
    const seconds = ctx.config.httpSeconds / rounds;
    ctx.log(
      `http: ${ctx.config.httpConnections} connections, ${warmUpSeconds} s warm-up per route, then ${rounds} alternating runs of ${seconds} s per route, ${url}`,
    );
    let fresh = 0;
    const freshKey = (): string => `${ctx.runId}-k${fresh++}`;
    const plain = new Tally();
    const idempotent = new Tally();
    const idempotentRuns = new Tally();
    const runPlain = async (s: number, into: Tally | undefined) => {
      into?.add(await load(ctx, `${url}/plain`, s, undefined));
    };
    const runIdempotent = async (s: number, into: Tally | undefined) => {
      const run = await load(ctx, `${url}/orders`, s, freshKey);
      idempotentRuns.add(run);
      into?.add(run);
    };
    await runPlain(warmUpSeconds, undefined);
    await runIdempotent(warmUpSeconds, undefined);
    for (let i = 0; i < rounds; i++) {
      // ABBA order: neither route is always the one measured first.
      if (i % 2 === 0) {
        await runPlain(seconds, plain);
        await runIdempotent(seconds, idempotent);
      } else {
        await runIdempotent(seconds, idempotent);
        await runPlain(seconds, plain);
      }
    }
    plain.log(ctx, 'http-plain');
    idempotent.log(ctx, 'http-idempotent');
    // Keys that completed: the first ones handed out (each got its 201 before its run ended).
    const completed = Math.max(1, Math.min(1000, idempotentRuns.ok - ctx.config.httpConnections));
    let replayed = 0;
    const replay = new Tally();
    replay.add(
      await load(
        ctx,
        `${url}/orders`,
        ctx.config.httpSeconds,
        () => `${ctx.runId}-k${replayed++ % completed}`,
      ),
    );
    replay.log(ctx, 'http-replay');
    const final = await server.finish();
    const runs = final.handlerRuns.idempotent;
    // Requests still in flight when a load run stopped completed on the server uncounted.
    const inFlightBound = idempotentRuns.runs * ctx.config.httpConnections;
    if (runs < idempotentRuns.ok || runs > idempotentRuns.ok + inFlightBound)
      ctx.notes.push(
        `http check failed: the idempotent handler ran ${runs} times for ${idempotentRuns.ok} successful fresh requests (replays must not run it)`,
      );
    ctx.results.http_plain_req_per_s = round(plain.okPerS);
    ctx.results.http_idempotent_req_per_s = round(idempotent.okPerS);
    ctx.results.http_replay_req_per_s = round(replay.okPerS);
    ctx.results.http_idempotent_ratio_to_plain = round(idempotent.okPerS / plain.okPerS, 3);
    ctx.results.http_replay_ratio_to_fresh = round(replay.okPerS / idempotent.okPerS, 3);
    ctx.results.http_server_peak_rss_mb = final.peakRssMb;
  } finally {
    server.kill();
    // No relay drains this group's events (their topic does not exist): they would stand in the way
    // of the relay drains of later groups in the same schema.
    await ctx.pool.query(`DELETE FROM ${quoteIdentifier(ctx.schema)}.outbox WHERE topic = $1`, [
      params.topic,
    ]);
  }
}
