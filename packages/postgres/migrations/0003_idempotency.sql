-- Idempotency keys of HTTP requests (Stripe semantics, IETF Idempotency-Key draft).
--
-- One row per (scope, key): scope is the principal or tenant, so one principal never sees
-- another's stored response. A request's first atomic phase inserts the row in the same
-- transaction as its business rows and outbox rows; a single-phase request therefore leaves
-- either a completed row or nothing. Multi-phase requests commit a recovery point after each
-- phase and hold a lease (`lease_token`, `locked_until`) between phases, so a retry can take over
-- once the process that started it died. Concurrent requests for one key are serialised with a
-- transaction-scoped advisory lock, never by waiting on this table.
CREATE TABLE {{schema}}.idempotency_keys (
  -- Stable id of the logical request, handed to phases to derive keys for foreign calls.
  request_id uuid NOT NULL,
  scope text NOT NULL,
  key text NOT NULL,
  -- SHA-256 of method, route, canonical body and chosen headers.
  fingerprint bytea NOT NULL,
  route text NOT NULL,
  state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
  recovery_point text NOT NULL,
  -- Data a phase hands to the next one.
  phase_data jsonb,
  -- What a completer needs to finish an abandoned request (multi-phase routes only).
  request jsonb,
  request_body bytea,
  response_status integer,
  response_headers jsonb,
  response_body bytea,
  lease_token uuid,
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  -- The key is the row's identity: no surrogate id, so writing a key maintains one index fewer.
  CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);

-- The reaper walks expired completed keys in small batches.
CREATE INDEX idempotency_keys_expires_idx ON {{schema}}.idempotency_keys (expires_at) WHERE state = 'completed';

-- The completer looks for unfinished requests whose lease ran out.
CREATE INDEX idempotency_keys_unfinished_idx ON {{schema}}.idempotency_keys (locked_until) WHERE state = 'in_progress';

-- Claims a key in one round trip: takes the key's transaction-scoped advisory lock (waiting for it,
-- or giving up at once with claim = 'busy'), then reads the key. VOLATILE, so the read takes its
-- snapshot after the lock is held and sees whatever the previous holder committed. A completed key
-- past its expiry is deleted here and reported 'absent', as if never seen. Without a row the
-- result is claim = 'absent'; with one, claim = 'found' and the row's columns.
CREATE FUNCTION {{schema}}.idempotency_claim(
  p_scope text, p_key text, p_wait boolean,
  OUT claim text, OUT request_id uuid, OUT fingerprint bytea, OUT route text, OUT state text,
  OUT recovery_point text, OUT phase_data jsonb, OUT request jsonb, OUT request_body bytea,
  OUT response_status integer, OUT response_headers jsonb, OUT response_body bytea, OUT lease_token uuid,
  OUT lease_remaining_ms double precision
) RETURNS record LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_lock integer := hashtext(length(p_scope)::text || ':' || p_scope || ':' || p_key);
  v_row {{schema}}.idempotency_keys%ROWTYPE;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(hashtext('onceflow:idempotency:{{schema_name}}'), v_lock);
  ELSIF NOT pg_try_advisory_xact_lock(hashtext('onceflow:idempotency:{{schema_name}}'), v_lock) THEN
    claim := 'busy';
    RETURN;
  END IF;
  SELECT * INTO v_row FROM {{schema}}.idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key;
  IF FOUND AND v_row.state = 'completed' AND v_row.expires_at <= now() THEN
    DELETE FROM {{schema}}.idempotency_keys k WHERE k.scope = p_scope AND k.key = p_key;
  ELSIF FOUND THEN
    claim := 'found';
    request_id := v_row.request_id;
    fingerprint := v_row.fingerprint;
    route := v_row.route;
    state := v_row.state;
    recovery_point := v_row.recovery_point;
    phase_data := v_row.phase_data;
    request := v_row.request;
    request_body := v_row.request_body;
    response_status := v_row.response_status;
    response_headers := v_row.response_headers;
    response_body := v_row.response_body;
    lease_token := v_row.lease_token;
    lease_remaining_ms := greatest(0, coalesce(extract(epoch FROM (v_row.locked_until - now())) * 1000, 0));
    RETURN;
  END IF;
  claim := 'absent';
END
$$;
