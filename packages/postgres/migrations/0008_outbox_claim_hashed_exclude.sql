-- The relay's claim, planned with its arguments: the same rows in the same order as 0007's, at a third
-- of the cost under load.
--
-- The claim leaves out the rows still in flight (the batch being published and the one being settled,
-- up to two batches of seqs), and those rows sit at the head of each lane, so every row a claim steps
-- over is checked against that list. As 0007's LANGUAGE sql function, the list was a parameter of a
-- plan made without it, and `seq = ANY(list)` compared each row with every seq of the list: with
-- 2,000 seqs in flight a claim of 1,000 rows made some 6 million comparisons (about 45 of its 60 ms,
-- the largest share of Postgres's time in a relay drain). Planned with its arguments (EXECUTE ...
-- USING), the list is a constant, which Postgres checks through a hash table: one probe per row.
--
-- jit is off: with the scans pinned to the primary key (the SET clauses below) and the limit unknown
-- to the plan, the estimated cost of a claim can pass jit_above_cost, and compiling the plan would then
-- cost more than running it, on every claim.
CREATE OR REPLACE FUNCTION {{schema}}.claim_outbox_topics(p_lanes smallint[], p_limit integer,
                                                         p_exclude bigint[], p_exclude_topics text[])
RETURNS TABLE (lane smallint, seq bigint, event_id text, topic text, key bytea, value text,
               header_names text[], header_values bytea[], age_ms float8)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $fn$
BEGIN
  RETURN QUERY EXECUTE $claim$
  SELECT o.lane, o.seq, o.event_id, o.topic, o.key, encode(o.value, 'base64'),
         CASE WHEN cardinality(o.header_names) > 0 THEN o.header_names END,
         CASE WHEN cardinality(o.header_names) > 0 THEN o.header_values END,
         (extract(epoch FROM clock_timestamp() - o.created_at) * 1000)::float8
    FROM unnest($1) AS l(lane)
    CROSS JOIN LATERAL (
      SELECT * FROM {{schema}}.outbox c
       WHERE c.lane = l.lane AND c.parked_at IS NULL
         AND NOT (c.seq = ANY($3))
         AND NOT (c.topic = ANY($4))
         AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.outbox p
            WHERE p.parked_at IS NOT NULL AND p.lane = l.lane AND p.topic = c.topic AND p.key = c.key)
       ORDER BY c.lane, c.seq
       LIMIT $2) o
  $claim$ USING p_lanes, p_limit, p_exclude, p_exclude_topics;
END
$fn$;
