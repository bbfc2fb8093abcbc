-- Dead letters: every message an inbox consumer gave up on, kept with its payload so that an operator
-- can look at it and redrive it once its cause is fixed.
--
-- A row is written in the same transaction as the message's inbox row (and its dead-letter topic
-- event), so a dead letter exists exactly when the inbox recorded the message as dead-lettered.
-- One row per (consumer, message id): a message dead-lettered again after a failed redrive
-- overwrites its row (state back to 'dead').
--
-- Redrive, exactly once (see docs/operations.md):
--   1. `redriveDeadLetters` moves rows from 'dead' to 'redrive_requested' with a fresh random
--      `redrive_token`, and in the same transaction enqueues a copy of each message into the outbox:
--      original topic, key, value and headers, `message-id` = the original id, plus the header
--      `onceflow-redrive: <token>`. The relay publishes it (at least once).
--   2. The inbox sees the copy as a duplicate (the id has an inbox row), but since it carries a
--      token, it asks this table in the message's own transaction: the conditional UPDATE
--      'redrive_requested' -> 'redriven' for that token succeeds once, under the row's lock, and then
--      the handler runs in that transaction. If the transaction rolls back (handler failure, crash),
--      so does the flip; if it commits, every further copy finds 'redriven' and is a duplicate again.
CREATE TABLE {{schema}}.dead_letter (
  consumer text NOT NULL,
  message_id text NOT NULL,
  topic text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset bigint NOT NULL,
  key bytea,
  payload bytea,
  header_names text[] NOT NULL DEFAULT '{}',
  header_values bytea[] NOT NULL DEFAULT '{}',
  -- 'handler-failed', 'invalid-id' or 'too-old'.
  reason text NOT NULL,
  -- The onceflow error code reported with it (OF_HANDLER_FAILED, OF_INVALID_MESSAGE_ID, OF_MESSAGE_TOO_OLD).
  error_code text NOT NULL,
  error_message text NOT NULL,
  attempts integer NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  state text NOT NULL DEFAULT 'dead' CHECK (state IN ('dead', 'redrive_requested', 'redriven')),
  -- The token of the latest redrive; kept after it is done, so that its copies stay recognised.
  redrive_token text,
  redrive_requested_at timestamptz,
  redriven_at timestamptz,
  -- Redrives requested so far.
  redrives integer NOT NULL DEFAULT 0,
  PRIMARY KEY (consumer, message_id)
);

-- Operators list a consumer's dead letters by state, oldest first.
CREATE INDEX dead_letter_state_idx ON {{schema}}.dead_letter (consumer, state, dead_lettered_at);
