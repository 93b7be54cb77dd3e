-- The web desk's overview and /metrics read events by kind and documents by arrival time.
CREATE INDEX events_kind ON events (kind, at);
CREATE INDEX documents_created ON documents (created_at);
