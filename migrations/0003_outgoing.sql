-- Outgoing e-mail: acknowledgements (Eingangsbestätigungen) and digests. Every mail is stored
-- here, fully formatted, before anything is sent; a worker sends what is due and retries.

CREATE TABLE outgoing_mail (
    id              TEXT PRIMARY KEY,
    -- 'acknowledgement' or 'digest'
    kind            TEXT NOT NULL,
    -- One mail per key: 'ack:<message-id>' / 'digest:<run key>'.
    dedup_key       TEXT NOT NULL UNIQUE,
    document_id     TEXT,
    envelope_from   TEXT NOT NULL,
    -- JSON array of recipient addresses.
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    -- The complete RFC 5322 message as sent.
    message         BLOB NOT NULL,
    -- queued | sent | dead
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outgoing_mail_due ON outgoing_mail (state, next_attempt_at);

-- One row per received e-mail that was considered for an acknowledgement, whatever came of it:
-- makes the decision idempotent and is the basis of the per-sender rate limit.
CREATE TABLE acknowledgements (
    dedup_key   TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    sender      TEXT,
    -- 'queued' (a mail was stored) or 'suppressed'
    decision    TEXT NOT NULL,
    reason      TEXT,
    mail_id     TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX acknowledgements_sender ON acknowledgements (sender, decision, at);

-- Digest runs: one row per mailbox and period, written in the same transaction as the mail, so
-- a restart neither repeats nor skips a digest. `until_at` of the last run is the next `since_at`.
CREATE TABLE digest_runs (
    run_key   TEXT PRIMARY KEY,
    mailbox   TEXT NOT NULL,
    period    TEXT NOT NULL,
    since_at  TEXT NOT NULL,
    until_at  TEXT NOT NULL,
    items     INTEGER NOT NULL,
    mail_id   TEXT,
    at        TEXT NOT NULL
);
CREATE INDEX digest_runs_mailbox ON digest_runs (mailbox, until_at);
