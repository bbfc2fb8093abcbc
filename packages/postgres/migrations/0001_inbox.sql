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
-- position row, skips offsets below it, advances it to p_end, and inserts the ids not seen in any
-- generation. Returns the position found and the offsets that were new (to be handled now). p_ids
-- must be distinct (the caller keeps the first offset of an id repeated within its input).
--
-- The common case is one plain INSERT of the ids that no committed row holds. Only when another
-- transaction inserts one of the same ids at the same time (a copy in another partition) does it fail
-- with a unique violation; then, the concurrent row being committed or gone by now, the insert is
-- redone with ON CONFLICT DO NOTHING, whose speculative insertion costs more per row.
CREATE FUNCTION {{schema}}.inbox_claim(
  p_consumer text, p_topic text, p_partition integer, p_ids text[], p_offsets bigint[], p_end bigint
) RETURNS TABLE (prior_next_offset bigint, fresh_offsets bigint[]) LANGUAGE plpgsql
-- Every statement here is a keyed lookup of at most a batch of ids into tables that may hold
-- millions of rows. A plan cached while a slot was empty or not yet analysed would otherwise scan the
-- consumer's whole slot once per id (a materialised anti join); these settings leave index probes
-- in a nested loop as the only plan, whatever the statistics say.
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_material = off
SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
  v_next bigint;
  v_generation bigint;
  v_slot smallint;
  v_fresh bigint[];
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
  IF p_end > v_next THEN
    UPDATE {{schema}}.inbox_position p SET next_offset = p_end, updated_at = now()
     WHERE p.consumer = p_consumer AND p.topic = p_topic AND p.kafka_partition = p_partition;
  END IF;
  SELECT g.generation INTO v_generation FROM {{schema}}.inbox_generation g ORDER BY g.generation DESC LIMIT 1;
  v_slot := (v_generation % 4)::smallint;
  BEGIN
    WITH inserted AS (
      INSERT INTO {{schema}}.inbox AS t (consumer, message_id, slot, generation, topic, kafka_partition, kafka_offset)
      SELECT p_consumer, u.id, v_slot, v_generation, p_topic, p_partition, u.off
        FROM unnest(p_ids, p_offsets) AS u(id, off)
       WHERE u.off >= v_next
         AND NOT EXISTS (SELECT 1 FROM {{schema}}.inbox o WHERE o.consumer = p_consumer AND o.message_id = u.id)
      RETURNING t.kafka_offset
    )
    SELECT array_agg(inserted.kafka_offset) INTO v_fresh FROM inserted;
  EXCEPTION WHEN unique_violation THEN
    WITH inserted AS (
      INSERT INTO {{schema}}.inbox AS t (consumer, message_id, slot, generation, topic, kafka_partition, kafka_offset)
      SELECT p_consumer, u.id, v_slot, v_generation, p_topic, p_partition, u.off
        FROM unnest(p_ids, p_offsets) AS u(id, off)
       WHERE u.off >= v_next
         AND NOT EXISTS (SELECT 1 FROM {{schema}}.inbox o WHERE o.consumer = p_consumer AND o.message_id = u.id)
       -- Id order: two transactions racing for several of the same ids wait for each other in one
       -- order, instead of deadlocking.
       ORDER BY u.id
      ON CONFLICT DO NOTHING
      RETURNING t.kafka_offset
    )
    SELECT array_agg(inserted.kafka_offset) INTO v_fresh FROM inserted;
  END;
  RETURN QUERY SELECT v_next, coalesce(v_fresh, '{}'::bigint[]);
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
