-- The extract and classify stages are retried like deliveries (attempts, next_attempt_at,
-- reason). A document that keeps failing becomes a dead letter; `failed_stage` names the state
-- a re-drive returns it to (NULL: the outbox, `queued`).
ALTER TABLE documents ADD COLUMN failed_stage TEXT;
