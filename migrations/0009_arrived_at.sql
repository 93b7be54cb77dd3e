-- When a document reached its source (first seen in the hot folder), if before its commit: the
-- sandbox's order for page 1, so a letter arriving while a stack of scans is taken in counts as
-- newer than the whole stack. NULL: the commit time (created_at) is the arrival.
ALTER TABLE documents ADD COLUMN arrived_at TEXT;
