-- Published ledger: what the relay published, kept after the outbox row is deleted, so an operator can
-- follow a message from its enqueue to its consumers ("where is message X?").
--
-- The relay's settle statement writes one compact row per published event in the same statement that
-- deletes the outbox row (no extra round trip). Retention works as the inbox's: a ring of 4 list
-- partitions, generation g writing into slot g % 4, rotation truncating the slot it reuses once the
-- generation it held ended at least the retention window ago. The window is the longest one the inbox
-- consumers declared (the horizon of their duplicate protection), or the relay's default when no
-- consumer declared one. Only the event id is indexed: the ledger is read by id, written by batch.
CREATE TABLE {{schema}}.outbox_published (
  event_id text NOT NULL,
  slot smallint NOT NULL,
  topic text NOT NULL,
  lane smallint NOT NULL,
  seq bigint NOT NULL,
  -- The relay (lane owner) whose settle recorded the publish.
  relay text NOT NULL,
  enqueued_at timestamptz NOT NULL,
  published_at timestamptz NOT NULL DEFAULT clock_timestamp()
) PARTITION BY LIST (slot);

CREATE TABLE {{schema}}.outbox_published_s0 PARTITION OF {{schema}}.outbox_published FOR VALUES IN (0);
CREATE TABLE {{schema}}.outbox_published_s1 PARTITION OF {{schema}}.outbox_published FOR VALUES IN (1);
CREATE TABLE {{schema}}.outbox_published_s2 PARTITION OF {{schema}}.outbox_published FOR VALUES IN (2);
CREATE TABLE {{schema}}.outbox_published_s3 PARTITION OF {{schema}}.outbox_published FOR VALUES IN (3);

CREATE INDEX outbox_published_event_idx ON {{schema}}.outbox_published (event_id);

-- Generations of the ledger started so far (the last 4 are kept); the highest is the one being written.
CREATE TABLE {{schema}}.outbox_published_generation (
  generation bigint PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {{schema}}.outbox_published_generation (generation) VALUES (0);

-- Starts the next ledger generation when due. A settle reads the written generation in its own
-- statement and writes into that slot; the truncated slot is the one of generation - 3, which no
-- settle has written for at least the retention window. A truncate that would wait for a lock gives up
-- ('lock-timeout') and is tried again at the next call.
CREATE FUNCTION {{schema}}.outbox_published_rotate(p_default_retention_seconds integer) RETURNS text
LANGUAGE plpgsql SET lock_timeout = '1s' AS $$
DECLARE
  v_retention interval;
  v_generation bigint;
  v_started timestamptz;
  v_reused_end timestamptz;
  v_slot smallint;
BEGIN
  SELECT make_interval(secs => coalesce(max(r.retention_seconds), p_default_retention_seconds))
    INTO v_retention FROM {{schema}}.inbox_retention r;
  SELECT g.generation, g.started_at INTO v_generation, v_started
    FROM {{schema}}.outbox_published_generation g ORDER BY g.generation DESC LIMIT 1;
  IF now() - v_started < v_retention / 3 THEN
    RETURN 'not-due';
  END IF;
  SELECT g.started_at INTO v_reused_end FROM {{schema}}.outbox_published_generation g
   WHERE g.generation = v_generation - 2;
  IF v_reused_end IS NOT NULL AND now() - v_reused_end < v_retention THEN
    RETURN 'retention-pending';
  END IF;
  v_slot := ((v_generation + 1) % 4)::smallint;
  BEGIN
    EXECUTE format('TRUNCATE %I.%I', '{{schema_name}}', 'outbox_published_s' || v_slot);
  EXCEPTION WHEN lock_not_available THEN
    RETURN 'lock-timeout';
  END;
  INSERT INTO {{schema}}.outbox_published_generation (generation) VALUES (v_generation + 1);
  DELETE FROM {{schema}}.outbox_published_generation g WHERE g.generation <= v_generation + 1 - 4;
  RETURN 'rotated';
END
$$;
