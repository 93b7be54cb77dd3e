-- A document's decision version: counted up by every change of its decision (the machine's,
-- a person's assignment, a send-back). A delivery records the version it was sent with, and
-- the store marks the document delivered only when that version is still the current one
-- (compare-and-set): a document re-decided while its delivery was in flight is delivered
-- again with its new decision instead of being marked delivered where it is not.
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
