-- Sender memory: the keys that identify each document's sender (e-mail address, IBAN, customer
-- number, Kassenzeichen, Aktenzeichen, name + postal address), normalised. A document's history
-- is found through them: other documents with the same key and their final mailbox. Keys are
-- personal data and go with their document (ON DELETE CASCADE).
CREATE TABLE sender_keys (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (document_id, kind, value)
);
CREATE INDEX sender_keys_value ON sender_keys (kind, value);
