-- Metadata read from a document (sender, date, references, IBANs, amounts, e-invoice facts)
-- as JSON, and the rendition that is delivered instead of the original bytes (the searchable
-- PDF of a scan), linked by its blob hash so a retried delivery sends the same bytes.
ALTER TABLE documents ADD COLUMN metadata TEXT;
ALTER TABLE documents ADD COLUMN rendition_sha256 TEXT;
ALTER TABLE documents ADD COLUMN rendition_media_type TEXT;
