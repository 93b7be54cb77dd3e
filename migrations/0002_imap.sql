-- IMAP intake: what became of each message seen on a server, so that nothing is taken twice
-- (UIDVALIDITY + UID, and Message-ID + body hash when UIDVALIDITY changes) and nothing is lost
-- (a committed message is marked on the server only afterwards; failures are retried).

CREATE TABLE imap_messages (
    account      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uidvalidity  BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    -- in_flight | committed | marked | quarantined
    state        TEXT NOT NULL,
    message_id   TEXT,
    body_sha256  TEXT,
    sha256       TEXT,
    document_id  TEXT,
    failures     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (account, folder, uidvalidity, uid)
);
CREATE INDEX imap_messages_message_id ON imap_messages (account, message_id);

-- The UIDVALIDITY last seen per folder: a change is logged and handled by re-identification.
CREATE TABLE imap_folders (
    account     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (account, folder)
);
