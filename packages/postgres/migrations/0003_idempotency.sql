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
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
  CONSTRAINT idempotency_keys_scope_key_uq UNIQUE (scope, key)
);

-- The reaper walks expired completed keys in small batches.
CREATE INDEX idempotency_keys_expires_idx ON {{schema}}.idempotency_keys (expires_at) WHERE state = 'completed';

-- The completer looks for unfinished requests whose lease ran out.
CREATE INDEX idempotency_keys_unfinished_idx ON {{schema}}.idempotency_keys (locked_until) WHERE state = 'in_progress';
