-- Claims that leave out whole topics: the relay holds back the events of a topic the broker refused
-- (it does not exist yet, this client may not write to it) until that topic is due for another try.
-- Left out by seq, as claim_outbox does, a refused topic with thousands of waiting events could fill
-- every claim of its lanes while the events of every other topic waited behind it; left out by topic,
-- they cost the claim only the index entries it steps over. claim_outbox stays for relays of earlier
-- versions during an upgrade.
CREATE FUNCTION {{schema}}.claim_outbox_topics(p_lanes smallint[], p_limit integer, p_exclude bigint[],
                                               p_exclude_topics text[])
RETURNS TABLE (lane smallint, seq bigint, event_id text, topic text, key bytea, value text,
               header_names text[], header_values bytea[], age_ms float8)
LANGUAGE sql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
  SELECT o.lane, o.seq, o.event_id, o.topic, o.key, encode(o.value, 'base64'),
         CASE WHEN cardinality(o.header_names) > 0 THEN o.header_names END,
         CASE WHEN cardinality(o.header_names) > 0 THEN o.header_values END,
         (extract(epoch FROM clock_timestamp() - o.created_at) * 1000)::float8
    FROM unnest(p_lanes) AS l(lane)
    CROSS JOIN LATERAL (
      SELECT * FROM {{schema}}.outbox c
       WHERE c.lane = l.lane AND c.parked_at IS NULL
         AND NOT (c.seq = ANY(p_exclude))
         AND NOT (c.topic = ANY(p_exclude_topics))
         AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.outbox p
            WHERE p.parked_at IS NOT NULL AND p.lane = l.lane AND p.topic = c.topic AND p.key = c.key)
       ORDER BY c.lane, c.seq
       LIMIT p_limit) o
$$;
