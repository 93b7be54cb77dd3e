-- The capture record (Erfassungsprotokoll) of every document: made once before its first
-- delivery (JSON as delivered; `seal` = SHA-256 of that JSON, also in the `capture_recorded`
-- audit event). Deleted with the document's content; the event keeps the seal.
CREATE TABLE capture_records (
    document_id TEXT PRIMARY KEY REFERENCES documents (id),
    record      TEXT NOT NULL,
    seal        TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

-- The Sichtkontrolle: a share of the scans is looked at by a person in the Poststelle
-- (complete and legible, or to be scanned again). Written with the capture record; the verdict
-- is NULL while open. Delivery does not wait for it.
CREATE TABLE visual_checks (
    document_id TEXT PRIMARY KEY REFERENCES documents (id),
    queued_at   TEXT NOT NULL,
    -- NULL (open) | ok | rescan
    verdict     TEXT,
    note        TEXT,
    actor       TEXT,
    judged_at   TEXT
);
CREATE INDEX visual_checks_open ON visual_checks (verdict, queued_at);

-- An acknowledgement that waits for the routing decision (per-mailbox templates): the
-- e-mail's facts as JSON until it is written; then NULL.
ALTER TABLE acknowledgements ADD COLUMN pending_mail TEXT;
