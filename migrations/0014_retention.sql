-- Retention and erasure (DSGVO): a document whose content was deleted (after its retention
-- period or on request) keeps its row, its decision without personal data and its audit
-- events; `purged_at` says when the rest went.
ALTER TABLE documents ADD COLUMN purged_at TEXT;
ALTER TABLE outgoing_mail ADD COLUMN purged_at TEXT;

-- Secrets of this installation kept with its data: the key of the audit trail's pseudonyms,
-- and markers of one-time data migrations.
CREATE TABLE store_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Blobs whose documents were purged: deleted from the blob directory after the commit; a row
-- left by a crash is deleted by the next purge.
CREATE TABLE blob_deletions (
    sha256 TEXT PRIMARY KEY,
    at     TEXT NOT NULL
);
