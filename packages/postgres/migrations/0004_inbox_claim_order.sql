-- The claim inserts the ids of a batch in id order on its fast path as well.
--
-- 0001's fast path inserted them in arrival (offset) order. Two batches from different partitions
-- holding some of the same ids in different orders then deadlocked: each inserted an id the other
-- still had to insert, and each waited on the other's uncommitted row (Postgres broke it after
-- deadlock_timeout with 40P01, about a second lost). In one order, the later claim waits for the
-- earlier one at the first shared id and holds nothing the earlier one needs. Same signature and
-- behaviour otherwise; see 0001_inbox.sql for the rest of the function.
CREATE OR REPLACE FUNCTION {{schema}}.inbox_claim(
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
       -- Id order here too, the same as below: two claims sharing ids insert them in one order and
       -- queue behind each other, instead of each waiting for an id the other inserted first.
       ORDER BY u.id
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
