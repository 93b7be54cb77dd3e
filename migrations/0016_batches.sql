-- Stacks (Stapel): one scanned PDF of many letters, dropped into the hot folder's batch folder.
-- The stack's original is kept as a blob; its pages are analysed once (one row each, kept so
-- that a restart resumes where the analysis stopped); the split makes one document per letter.
CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    sha256          TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    original_name   TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    -- received | split | quarantined
    state           TEXT NOT NULL,
    page_count      INTEGER,
    -- The split as planned (JSON: parts with their pages, dropped pages, confidence).
    plan            TEXT,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    arrived_at      TEXT,
    updated_at      TEXT NOT NULL,
    purged_at       TEXT
);
CREATE INDEX batches_state ON batches (state, next_attempt_at);

-- One analysed page of a stack (JSON: ink, barcodes, patch code, OCR words), or why it could
-- not be read.
CREATE TABLE batch_pages (
    batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    page     INTEGER NOT NULL,
    analysis TEXT NOT NULL,
    PRIMARY KEY (batch_id, page)
);

-- A document made from a stack: its stack and its pages there ("3-5").
ALTER TABLE documents ADD COLUMN batch_id TEXT REFERENCES batches (id);
ALTER TABLE documents ADD COLUMN batch_pages TEXT;
CREATE INDEX documents_batch ON documents (batch_id);
