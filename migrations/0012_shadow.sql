-- Shadow model (issue 12): for every routed document, the decision of the active model and that
-- of the model version running in shadow, side by side; one row per document and shadow
-- version. The shadow's decision never routes; `poststelle model compare` scores both against
-- the outcome (delivered without correction, or the mailbox a person corrected to).
CREATE TABLE shadow_decisions (
    document_id       TEXT NOT NULL REFERENCES documents (id),
    shadow_version    TEXT NOT NULL,
    active_version    TEXT,
    active_mailbox    TEXT,
    active_confidence DOUBLE PRECISION NOT NULL,
    active_review     INTEGER NOT NULL,
    shadow_mailbox    TEXT,
    shadow_confidence DOUBLE PRECISION NOT NULL,
    shadow_review     INTEGER NOT NULL,
    at                TEXT NOT NULL,
    PRIMARY KEY (document_id, shadow_version)
);
CREATE INDEX shadow_decisions_version ON shadow_decisions (shadow_version, at);
