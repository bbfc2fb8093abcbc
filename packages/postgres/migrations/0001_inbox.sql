-- Inbox: which messages a consumer has processed, and how far it got in each partition.
--
-- Retention without DELETE: inbox rows live in a ring of 4 list partitions ("slots"). Generation g
-- writes into slot g % 4. Rotation starts generation g + 1 by truncating the slot it reuses, which
-- holds generation g - 3; that is allowed only once generation g - 3 ended at least the retention
-- window ago. TRUNCATE frees the space at once: no row-by-row delete, no bloat, no long vacuum.
-- Deduplication looks into every slot, so a duplicate is recognised whichever generation holds the
-- first copy.
CREATE TABLE {{schema}}.inbox (
  consumer text NOT NULL,
  message_id text NOT NULL,
  slot smallint NOT NULL,
  generation bigint NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset bigint NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id, slot)
) PARTITION BY LIST (slot);

CREATE TABLE {{schema}}.inbox_s0 PARTITION OF {{schema}}.inbox FOR VALUES IN (0);
CREATE TABLE {{schema}}.inbox_s1 PARTITION OF {{schema}}.inbox FOR VALUES IN (1);
CREATE TABLE {{schema}}.inbox_s2 PARTITION OF {{schema}}.inbox FOR VALUES IN (2);
CREATE TABLE {{schema}}.inbox_s3 PARTITION OF {{schema}}.inbox FOR VALUES IN (3);

-- Generations started so far (the last 4 are kept); the highest is the one being written.
CREATE TABLE {{schema}}.inbox_generation (
  generation bigint PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {{schema}}.inbox_generation (generation) VALUES (0);

-- Each consumer declares its retention window; rotation honours the longest one.
CREATE TABLE {{schema}}.inbox_retention (
  consumer text PRIMARY KEY,
  retention_seconds integer NOT NULL CHECK (retention_seconds > 0),
  declared_at timestamptz NOT NULL DEFAULT now()
);

-- The next offset to process per consumer and partition, written in the same transaction as the
-- inbox rows and the handler's effects. Locked FOR UPDATE by every processing transaction, so two
-- instances briefly owning one partition take turns and the second sees how far the first got.
CREATE TABLE {{schema}}.inbox_position (
  consumer text NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, kafka_partition)
) WITH (fillfactor = 50);

-- Claims messages in one round trip: takes the rotation lock in shared mode, locks the partition's
-- position row, skips offsets below it, advances it past p_offsets, and inserts the ids not seen in
-- any generation. Returns the position found and the offsets that were new (to be handled now).
CREATE FUNCTION {{schema}}.inbox_claim(
  p_consumer text, p_topic text, p_partition integer, p_ids text[], p_offsets bigint[]
) RETURNS TABLE (prior_next_offset bigint, fresh_offsets bigint[]) LANGUAGE plpgsql AS $$
DECLARE
  v_next bigint;
  v_generation bigint;
  v_slot smallint;
BEGIN
  -- Rotation takes this lock exclusively: no claim runs while the written generation changes, so
  -- two transactions can never write the same id into two different slots.
  PERFORM pg_advisory_xact_lock_shared(hashtext('onceflow:inbox:{{schema_name}}'), 0);
  SELECT p.next_offset INTO v_next FROM {{schema}}.inbox_position p
   WHERE p.consumer = p_consumer AND p.topic = p_topic AND p.kafka_partition = p_partition FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO {{schema}}.inbox_position (consumer, topic, kafka_partition, next_offset)
    VALUES (p_consumer, p_topic, p_partition, 0) ON CONFLICT DO NOTHING;
    SELECT p.next_offset INTO v_next FROM {{schema}}.inbox_position p
     WHERE p.consumer = p_consumer AND p.topic = p_topic AND p.kafka_partition = p_partition FOR UPDATE;
  END IF;
  SELECT g.generation INTO v_generation FROM {{schema}}.inbox_generation g ORDER BY g.generation DESC LIMIT 1;
  v_slot := (v_generation % 4)::smallint;
  UPDATE {{schema}}.inbox_position p
     SET next_offset = GREATEST(p.next_offset, (SELECT max(o) + 1 FROM unnest(p_offsets) AS o)), updated_at = now()
   WHERE p.consumer = p_consumer AND p.topic = p_topic AND p.kafka_partition = p_partition;
  RETURN QUERY
  WITH input AS (
    SELECT u.id, u.off FROM unnest(p_ids, p_offsets) AS u(id, off) WHERE u.off >= v_next
  ), inserted AS (
    INSERT INTO {{schema}}.inbox AS t (consumer, message_id, slot, generation, topic, kafka_partition, kafka_offset)
    SELECT p_consumer, i.id, v_slot, v_generation, p_topic, p_partition, i.off FROM input i
     WHERE NOT EXISTS (
       SELECT 1 FROM {{schema}}.inbox o WHERE o.consumer = p_consumer AND o.message_id = i.id AND o.slot <> v_slot)
     ORDER BY i.off
    ON CONFLICT DO NOTHING
    RETURNING t.kafka_offset
  )
  SELECT v_next, coalesce(array_agg(inserted.kafka_offset), '{}'::bigint[]) FROM inserted;
END
$$;

-- Starts the next generation when the current one is older than a third of the longest retention
-- window and the slot to reuse holds only rows older than that window. Returns what it did.
-- Callers set a short lock_timeout: the exclusive lock waits for claims in flight, and claims
-- queue behind it, so it must never wait long.
CREATE FUNCTION {{schema}}.inbox_rotate() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_retention interval;
  v_generation bigint;
  v_started timestamptz;
  v_reused_end timestamptz;
  v_slot smallint;
BEGIN
  SELECT make_interval(secs => max(r.retention_seconds)) INTO v_retention FROM {{schema}}.inbox_retention r;
  IF v_retention IS NULL THEN
    RETURN 'no-consumers';
  END IF;
  SELECT g.generation, g.started_at INTO v_generation, v_started
    FROM {{schema}}.inbox_generation g ORDER BY g.generation DESC LIMIT 1;
  IF now() - v_started < v_retention / 3 THEN
    RETURN 'not-due';
  END IF;
  -- The slot of generation + 1 holds generation - 3, which ended when generation - 2 started.
  SELECT g.started_at INTO v_reused_end FROM {{schema}}.inbox_generation g WHERE g.generation = v_generation - 2;
  IF v_reused_end IS NOT NULL AND now() - v_reused_end < v_retention THEN
    RETURN 'retention-pending';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('onceflow:inbox:{{schema_name}}'), 0);
  v_slot := ((v_generation + 1) % 4)::smallint;
  EXECUTE format('TRUNCATE %I.%I', '{{schema_name}}', 'inbox_s' || v_slot);
  INSERT INTO {{schema}}.inbox_generation (generation) VALUES (v_generation + 1);
  DELETE FROM {{schema}}.inbox_generation g WHERE g.generation <= v_generation + 1 - 4;
  RETURN 'rotated';
END
$$;
