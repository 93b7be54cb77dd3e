-- poststelle schema. Portable SQL (SQLite and PostgreSQL): TEXT timestamps in RFC 3339 UTC,
-- JSON kept as TEXT, no engine-specific types.

CREATE TABLE documents (
    id              TEXT PRIMARY KEY,
    sha256          TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    original_name   TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    mailbox         TEXT,
    confidence      DOUBLE PRECISION,
    decided_by      TEXT,
    decision        TEXT,
    text_content    TEXT,
    extraction      TEXT,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    delivery_ref    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX documents_state ON documents (state, next_attempt_at);

-- The audit trail: who did what when. Append-only (enforced by triggers below).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX events_document ON events (document_id, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Inputs that could not be read, with the reason shown to people (German).
CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id   TEXT,
    source        TEXT NOT NULL,
    original_name TEXT NOT NULL,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    path          TEXT,
    at            TEXT NOT NULL
);

-- A person's decision overriding or confirming the machine's: training data for the next model.
CREATE TABLE corrections (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  TEXT NOT NULL REFERENCES documents (id),
    from_mailbox TEXT,
    to_mailbox   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    origin       TEXT NOT NULL,
    at           TEXT NOT NULL
);

CREATE TABLE model_versions (
    version    TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    metrics    TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0
);
