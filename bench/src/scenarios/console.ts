import { createOnceflowAdmin, migrate, quoteIdentifier } from '@onceflow/postgres';
import { type BenchContext, round } from '../context';
import { nowMs, percentile } from '../shared';

/**
 * The console's "where is message X?" lookup (`traceMessage`) over a long history: `lookupHistoryRows`
 * published-ledger rows, as many inbox rows for each of two consumers, their positions, and a waiting
 * outbox of `lookupBacklogRows` events. Times lookups of ids that were published and consumed, of ids
 * still waiting, and of unknown ids, on a warm connection. The history lives in a schema of its own:
 * the run's schema holds whatever the earlier groups left (a bloated outbox after the relay runs), which
 * would measure those leftovers instead of the history.
 */
export async function runConsoleGroup(ctx: BenchContext): Promise<void> {
  const { config, pool } = ctx;
  const rows = config.lookupHistoryRows;
  const lookupSchema = `${ctx.schema}_lookup`;
  await migrate(pool, { schema: lookupSchema });
  const schema = quoteIdentifier(lookupSchema);
  const topic = `${ctx.runId}-history`;
  ctx.log(
    `console: "where is message X?" over ${rows} ledger rows and ${rows} inbox rows per consumer (2 consumers)`,
  );
  const seedStart = nowMs();
  await pool.query(
    `INSERT INTO ${schema}.outbox_published (event_id, slot, topic, lane, seq, relay, enqueued_at, published_at)
     SELECT 'hist-' || i, (i % 4)::smallint, $1, (i % 16)::smallint, i, 'relay-a', now() - interval '1 hour', now()
       FROM generate_series(1, $2::int) AS i`,
    [topic, rows],
  );
  for (const consumer of ['payments', 'fulfilment'])
    await pool.query(
      `INSERT INTO ${schema}.inbox (consumer, message_id, slot, generation, topic, kafka_partition, kafka_offset, processed_at)
       SELECT $1, 'hist-' || i, (i % 4)::smallint, 0, $2, i % 6, i / 6, now() FROM generate_series(1, $3::int) AS i`,
      [consumer, topic, rows],
    );
  await pool.query(
    `INSERT INTO ${schema}.inbox_position (consumer, topic, kafka_partition, next_offset)
     SELECT c, $1, p, $2::bigint / 6 FROM unnest(ARRAY['payments', 'fulfilment']) AS c, generate_series(0, 5) AS p`,
    [topic, rows],
  );
  await pool.query(
    `INSERT INTO ${schema}.outbox (seq, event_id, lane, topic, key, value)
     SELECT nextval('${lookupSchema}.outbox_seq'), 'wait-' || i, (i % 16)::smallint, $1, convert_to('k' || (i % 100), 'UTF8'),
            convert_to(repeat('x', 512), 'UTF8')
       FROM generate_series(1, $2::int) AS i`,
    [topic, config.lookupBacklogRows],
  );
  await pool.query(
    `ANALYZE ${schema}.outbox_published; ANALYZE ${schema}.inbox; ANALYZE ${schema}.outbox; ANALYZE ${schema}.inbox_position`,
  );
  ctx.log(`  seeded in ${((nowMs() - seedStart) / 1000).toFixed(1)} s`);
  const admin = createOnceflowAdmin({ pool, schema: lookupSchema });
  const timings: number[] = [];
  const lookups = 300;
  for (let n = 0; n < lookups + 20; n++) {
    const kind = n % 3;
    const id =
      kind === 0
        ? `hist-${1 + ((n * 7919) % rows)}`
        : kind === 1
          ? `wait-${1 + ((n * 31) % config.lookupBacklogRows)}`
          : `unknown-${n}`;
    const started = nowMs();
    const trace = await admin.traceMessage(id);
    const elapsed = nowMs() - started;
    if (n >= 20) timings.push(elapsed); // the first ones warm the connection and the plans
    if (kind === 0 && (trace.published.length !== 1 || trace.consumed.length !== 2))
      ctx.notes.push(
        `console lookup check: ${id} found ${trace.published.length} ledger and ${trace.consumed.length} inbox rows`,
      );
  }
  timings.sort((a, b) => a - b);
  ctx.log(
    `  where-lookup           p50 ${percentile(timings, 50).toFixed(2)} ms, p99 ${percentile(timings, 99).toFixed(2)} ms, max ${percentile(timings, 100).toFixed(2)} ms (${lookups} lookups; ${config.lookupBacklogRows} events waiting)`,
  );
  ctx.results.console_lookup_history_rows = rows;
  ctx.results.console_lookup_p50_ms = round(percentile(timings, 50), 2);
  ctx.results.console_lookup_p99_ms = round(percentile(timings, 99), 2);
  ctx.results.console_lookup_max_ms = round(percentile(timings, 100), 2);
  await pool.query(`DROP SCHEMA ${schema} CASCADE`);
}
