-- The Stichprobe: a share of the documents routed straight through also gets a second look by
-- the Poststelle. One row per sampled document, written in the same transaction as the machine
-- decision; the verdict is NULL until a person confirms or overturns it.
CREATE TABLE samples (
    document_id     TEXT PRIMARY KEY REFERENCES documents(id),
    -- The mailbox the machine routed to, its confidence and what decided (rule, model, ...).
    mailbox         TEXT NOT NULL,
    confidence      REAL NOT NULL,
    decided_by      TEXT NOT NULL,
    sampled_at      TEXT NOT NULL,
    -- NULL (open) | confirmed | overturned
    verdict         TEXT,
    -- The right mailbox (overturned: another one; confirmed: the same).
    correct_mailbox TEXT,
    actor           TEXT,
    judged_at       TEXT
);
CREATE INDEX samples_open ON samples (verdict, sampled_at);
CREATE INDEX samples_mailbox ON samples (mailbox, verdict);

-- Review thresholds raised because a mailbox's measured precision fell below the target. The
-- newest row per mailbox is in force; `judged` is the number of judged samples it rests on, so
-- a mailbox is raised at most once per new evidence.
CREATE TABLE threshold_raises (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox   TEXT NOT NULL,
    threshold REAL NOT NULL,
    previous  REAL NOT NULL,
    judged    INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    -- German, as in the admins' e-mail.
    reason    TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX threshold_raises_mailbox ON threshold_raises (mailbox, id);
