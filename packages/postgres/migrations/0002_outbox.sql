-- Outbox: events written in the producer's transaction, published by the relay.
--
-- Order: `seq` is taken by enqueue() while the transaction holds a transaction-scoped advisory
-- lock on the event's (topic, key). A second writer of the same key waits for the first to commit
-- or roll back before it takes its own seq, so for one key seq order is commit order. The relay
-- never keeps a high-water mark: it reads whatever unpublished rows are visible, so a row whose
-- transaction committed late is found on the next read, never skipped.
CREATE SEQUENCE {{schema}}.outbox_seq AS bigint;

CREATE TABLE {{schema}}.outbox (
  seq bigint NOT NULL,
  event_id text NOT NULL,
  lane smallint NOT NULL,
  topic text NOT NULL,
  key bytea,
  value bytea,
  header_names text[] NOT NULL DEFAULT '{}',
  header_values bytea[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  parked_at timestamptz,
  -- Lane first: the relay reads a lane in seq order, and with only this index on the table the
  -- planner cannot prefer a seq-ordered scan that filters out the other fifteen lanes.
  PRIMARY KEY (lane, seq)
) WITH (
  -- A queue table: rows live seconds. Vacuum early and often so deletes never pile up as bloat.
  autovacuum_vacuum_scale_factor = 0.0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_cost_delay = 0,
  fillfactor = 90
);

-- Parked rows are rare; the claim query probes this small index to hold back their keys.
CREATE INDEX outbox_parked_idx ON {{schema}}.outbox (lane, topic, key) WHERE parked_at IS NOT NULL;

-- Enqueue in one round trip: lock the key, take the order value while holding it, insert, wake the relay.
CREATE FUNCTION {{schema}}.enqueue(
  p_event_id text, p_lane smallint, p_lock_key integer, p_topic text, p_key bytea, p_value bytea,
  p_header_names text[], p_header_values bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
  v_names text[] := p_header_names;
  v_values bytea[] := p_header_values;
BEGIN
  -- The relay sends event_id as the message-id header; a copy in the arrays is not stored twice.
  IF v_names[1] = 'message-id' AND v_values[1] = convert_to(p_event_id, 'UTF8') THEN
    v_names := v_names[2:];
    v_values := v_values[2:];
  END IF;
  IF p_lock_key IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext('onceflow:outbox:{{schema_name}}'), p_lock_key);
  END IF;
  v_seq := nextval('{{schema}}.outbox_seq');
  INSERT INTO {{schema}}.outbox (seq, event_id, lane, topic, key, value, header_names, header_values)
  VALUES (v_seq, p_event_id, p_lane, p_topic, p_key, p_value, coalesce(v_names, '{}'), coalesce(v_values, '{}'));
  PERFORM pg_notify('onceflow_outbox_{{schema_name}}', p_lane::text);
  RETURN v_seq;
END
$$;

-- The relay's read: the oldest ready rows of each given lane, at most p_limit per lane, in seq order,
-- leaving out parked rows, every later row of a parked row's (topic, key), and rows already in flight.
-- Each lane must be an ordered range scan of the primary key that stops after p_limit rows. On a
-- queue table the statistics are often missing or stale (rows live seconds), and then the planner
-- would read and sort every row of a lane to return a few; the SET clauses rule those plans out.
CREATE FUNCTION {{schema}}.claim_outbox(p_lanes smallint[], p_limit integer, p_exclude bigint[])
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
         AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.outbox p
            WHERE p.parked_at IS NOT NULL AND p.lane = l.lane AND p.topic = c.topic AND p.key = c.key)
       ORDER BY c.lane, c.seq
       LIMIT p_limit) o
$$;

-- Lane leases: one row per lane, owned by at most one relay. A lease lives until `expires_at`
-- unless its owner renews it; every takeover increments `epoch`, and a relay settles a batch only
-- while owner and epoch are still its own, so a relay that lost its lane cannot delete rows.
-- `fencing_id` names the publisher (Kafka transactional id) the owner publishes the lane through;
-- a relay taking the lane over after expiry fences that publisher before it publishes a row, so the
-- previous owner cannot publish behind its back. A clean release clears it: nothing to fence.
CREATE TABLE {{schema}}.outbox_lanes (
  lane smallint PRIMARY KEY,
  owner text,
  epoch bigint NOT NULL DEFAULT 0,
  expires_at timestamptz,
  fencing_id text
);
INSERT INTO {{schema}}.outbox_lanes (lane) SELECT generate_series(0, 15);

-- Live relays, for a fair share of lanes: each relay targets ceil(lanes / live relays).
CREATE TABLE {{schema}}.outbox_relays (
  relay_id text PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
