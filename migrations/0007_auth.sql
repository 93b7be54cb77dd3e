-- People and machines that use the API and the web desk.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,               -- poststelle | fachbereich | admin
    mailboxes TEXT NOT NULL,          -- JSON array of mailbox ids (role fachbereich)
    password_hash TEXT,               -- argon2id (PHC string); NULL for directory accounts
    source TEXT NOT NULL,             -- local | ldap
    display_name TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Browser sessions: only the SHA-256 of the cookie's value is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_name);

-- Personal API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL REFERENCES users(name),
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_name);

-- Failed logins per user name, for the rate limit and the temporary lockout.
CREATE TABLE login_throttle (
    username TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until TEXT,
    updated_at TEXT NOT NULL
);
