-- The audit trail as a hash chain: every event stores
-- hash = SHA-256(previous event's hash || canonical form of its stored fields)
-- (store/audit.rs), so that an edited, deleted or reordered event shows in
-- `poststelle audit verify` even after the append-only triggers were dropped.
-- Events written before this migration get their hashes once when the store is opened.
ALTER TABLE events ADD COLUMN hash TEXT;
