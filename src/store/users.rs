//! Accounts, browser sessions, personal API tokens and the login throttle.
//!
//! Secrets are never stored: sessions and tokens by the SHA-256 of their value (they are long
//! random strings, so a plain hash suffices), passwords as argon2id hashes made by
//! [`crate::auth::password`]. Every change to an account or a token is an audit event.

use super::db::{Tx, query, query_scalar};
use super::{Result, Store, StoreError, insert_event, now_str};
use crate::auth::Role;
use crate::domain::MailboxId;
use serde::Serialize;
use sqlx::Row;

/// An account as the store knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Mailboxes of a `fachbereich` account.
    pub mailboxes: Vec<MailboxId>,
    /// `local` (password here) or `ldap` (the directory decides).
    pub source: String,
    /// Name to show, when known.
    pub display_name: Option<String>,
    /// A disabled account cannot sign in; its sessions and tokens stop working.
    pub disabled: bool,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// The argon2id hash (never serialized).
    #[serde(skip)]
    pub password_hash: Option<String>,
}

/// A personal API token as listed (the secret is shown once, at creation, never again).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id (the token's first part, `pst_<id>_...`).
    pub id: String,
    /// Whose.
    pub user_name: String,
    /// What it is for ("Scanner Poststelle").
    pub label: String,
    /// Created.
    pub created_at: String,
    /// Last used.
    pub last_used_at: Option<String>,
    /// Revoked.
    pub revoked_at: Option<String>,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Login name.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Mailboxes (role `fachbereich`).
    pub mailboxes: &'a [MailboxId],
    /// argon2id hash; `None` for a directory account.
    pub password_hash: Option<&'a str>,
    /// `local` or `ldap`.
    pub source: &'a str,
    /// Name to show.
    pub display_name: Option<&'a str>,
}

const USER_COLUMNS: &str =
    "name, role, mailboxes, password_hash, source, display_name, disabled, created_at, updated_at";

fn user_from(row: &sqlx::any::AnyRow) -> Result<UserRow> {
    let role: String = row.try_get("role")?;
    let role =
        Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?;
    let mailboxes: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("mailboxes")?)?;
    let mailboxes = mailboxes
        .iter()
        .map(|m| {
            MailboxId::parse(m).ok_or_else(|| StoreError::Corrupt(format!("mailbox id {m:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(UserRow {
        name: row.try_get("name")?,
        role,
        mailboxes,
        source: row.try_get("source")?,
        display_name: row.try_get("display_name")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        password_hash: row.try_get("password_hash")?,
    })
}

fn token_from(row: &sqlx::any::AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        user_name: row.try_get("user_name")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn mailboxes_json(m: &[MailboxId]) -> String {
    serde_json::Value::from(m.iter().map(|m| m.as_str()).collect::<Vec<_>>()).to_string()
}

impl Store {
    /// Adds an account; [`StoreError::Exists`] when the name is taken.
    pub async fn add_user(&self, u: &NewUser<'_>, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if query("SELECT 1 FROM users WHERE name = ?")
            .bind(u.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(StoreError::Exists(format!("Benutzer „{}“", u.name)));
        }
        let now = now_str();
        query(
            "INSERT INTO users (name, role, mailboxes, password_hash, source, display_name, disabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(u.name)
        .bind(u.role.as_str())
        .bind(mailboxes_json(u.mailboxes))
        .bind(u.password_hash)
        .bind(u.source)
        .bind(u.display_name)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            None,
            actor,
            "user_added",
            &serde_json::json!({"user": u.name, "role": u.role, "mailboxes": u.mailboxes, "source": u.source}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what the directory said about a person who signed in (role and mailboxes are
    /// the directory's, refreshed at every login). `Ok(None)` when the name belongs to a local
    /// account or a disabled one: the directory cannot take those over.
    pub async fn sync_directory_user(
        &self,
        name: &str,
        role: Role,
        mailboxes: &[MailboxId],
        display_name: Option<&str>,
    ) -> Result<Option<UserRow>> {
        let mut tx = self.begin_write().await?;
        let now = now_str();
        let existing = query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| user_from(&r))
            .transpose()?;
        match existing {
            Some(u) if u.source != "ldap" || u.disabled => return Ok(None),
            Some(u) => {
                if u.role != role || u.mailboxes != mailboxes {
                    insert_event(
                        &mut tx,
                        None,
                        "ldap",
                        "user_changed",
                        &serde_json::json!({"user": name, "role": role, "mailboxes": mailboxes}),
                    )
                    .await?;
                }
                query(
                    "UPDATE users SET role = ?, mailboxes = ?, display_name = ?, updated_at = ? WHERE name = ?",
                )
                .bind(role.as_str())
                .bind(mailboxes_json(mailboxes))
                .bind(display_name)
                .bind(&now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                query(
                    "INSERT INTO users (name, role, mailboxes, password_hash, source, display_name, disabled, created_at, updated_at) \
                     VALUES (?, ?, ?, NULL, 'ldap', ?, 0, ?, ?)",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(mailboxes_json(mailboxes))
                .bind(display_name)
                .bind(&now)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                insert_event(
                    &mut tx,
                    None,
                    "ldap",
                    "user_added",
                    &serde_json::json!({"user": name, "role": role, "mailboxes": mailboxes, "source": "ldap"}),
                )
                .await?;
            }
        }
        let row = query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?"))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let user = user_from(&row)?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// One account.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>> {
        query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_from(&r))
            .transpose()
    }

    /// Every account, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    /// Disables (or enables again) an account. Disabling ends its sessions at once; its tokens
    /// stop working while it is disabled. [`StoreError::UnknownUser`] for an unknown name.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let n = query("UPDATE users SET disabled = ?, updated_at = ? WHERE name = ?")
            .bind(i64::from(disabled))
            .bind(now_str())
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::UnknownUser(name.to_string()));
        }
        if disabled {
            query("DELETE FROM sessions WHERE user_name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let kind = if disabled {
            "user_disabled"
        } else {
            "user_enabled"
        };
        insert_event(
            &mut tx,
            None,
            actor,
            kind,
            &serde_json::json!({"user": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a session (the cookie's value is known only to the browser).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        expires_at: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_str();
        query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        query(
            "INSERT INTO sessions (token_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(&now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            None,
            user,
            "signed_in",
            &serde_json::json!({"user": user}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account and CSRF token of a live session (not expired, account not disabled).
    pub async fn session(&self, token_hash: &str) -> Result<Option<(UserRow, String)>> {
        let cols = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = query(&format!(
            "SELECT {cols}, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("csrf")?)))
            .transpose()
    }

    /// Ends a session (logout). Recorded when there was one.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let user: Option<String> =
            query_scalar("DELETE FROM sessions WHERE token_hash = ? RETURNING user_name")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(u) = user {
            insert_event(
                &mut tx,
                None,
                &u,
                "signed_out",
                &serde_json::json!({"user": u}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new personal API token (by hash) for `user`.
    pub async fn create_token(
        &self,
        id: &str,
        token_hash: &str,
        user: &str,
        label: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if self_user_missing(&mut tx, user).await? {
            return Err(StoreError::UnknownUser(user.to_string()));
        }
        query(
            "INSERT INTO api_tokens (id, token_hash, user_name, label, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(user)
        .bind(label)
        .bind(now_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            None,
            actor,
            "token_created",
            &serde_json::json!({"user": user, "token": id, "label": label}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account a token belongs to (not revoked, account not disabled); notes its use.
    pub async fn token_user(&self, token_hash: &str) -> Result<Option<UserRow>> {
        let cols = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = query(&format!(
            "SELECT {cols}, t.id AS token_id, t.last_used_at FROM api_tokens t JOIN users u ON u.name = t.user_name \
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = 0"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from(&row)?;
        // Last use to the minute: a busy scanner does not write on every request.
        let now = now_str();
        let last: Option<String> = row.try_get("last_used_at")?;
        if last.as_deref().map(|l| &l[..l.len().min(16)]) != Some(&now[..16]) {
            let id: String = row.try_get("token_id")?;
            query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
                .bind(&now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(user))
    }

    /// Tokens, of one account or all, newest first.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        let cols = "id, user_name, label, created_at, last_used_at, revoked_at";
        let rows =
            match user {
                Some(u) => query(&format!(
                    "SELECT {cols} FROM api_tokens WHERE user_name = ? ORDER BY created_at DESC, id"
                ))
                .bind(u)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    query(&format!(
                        "SELECT {cols} FROM api_tokens ORDER BY created_at DESC, id"
                    ))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
        rows.iter().map(token_from).collect()
    }

    /// One token's row.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        query(
            "SELECT id, user_name, label, created_at, last_used_at, revoked_at FROM api_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| token_from(&r))
        .transpose()
    }

    /// Revokes a token; `false` when it does not exist or was revoked before.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            insert_event(
                &mut tx,
                None,
                actor,
                "token_revoked",
                &serde_json::json!({"token": id}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Until when logins of `username` are refused (a lockout still running), if at all.
    pub async fn login_locked_until(&self, username: &str) -> Result<Option<String>> {
        let until: Option<Option<String>> =
            query_scalar("SELECT locked_until FROM login_throttle WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        Ok(until.flatten().filter(|u| u.as_str() > now_str().as_str()))
    }

    /// Counts a failed login. After `max_failures` in a row the name is locked until
    /// `lock_until` (returned then), and the count starts again.
    pub async fn record_login_failure(
        &self,
        username: &str,
        max_failures: u32,
        lock_until: &str,
    ) -> Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let now = now_str();
        let failures: i64 = query_scalar(
            "INSERT INTO login_throttle (username, failures, locked_until, updated_at) VALUES (?, 1, NULL, ?) \
             ON CONFLICT(username) DO UPDATE SET failures = login_throttle.failures + 1, updated_at = excluded.updated_at \
             RETURNING failures",
        )
        .bind(username)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?;
        let locked = failures >= i64::from(max_failures.max(1));
        if locked {
            query("UPDATE login_throttle SET failures = 0, locked_until = ? WHERE username = ?")
                .bind(lock_until)
                .bind(username)
                .execute(&mut *tx)
                .await?;
            insert_event(
                &mut tx,
                None,
                "system",
                "login_locked",
                &serde_json::json!({"user": username, "until": lock_until}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(locked.then(|| lock_until.to_string()))
    }

    /// Forgets failed logins after a successful one.
    pub async fn clear_login_failures(&self, username: &str) -> Result<()> {
        query("DELETE FROM login_throttle WHERE username = ?")
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn self_user_missing(tx: &mut Tx<'_>, user: &str) -> Result<bool> {
    Ok(query("SELECT 1 FROM users WHERE name = ?")
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?
        .is_none())
}
