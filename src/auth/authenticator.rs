//! Turns credentials into an [`Identity`]: a login (local password or the directory), a session
//! cookie, a personal API token or the configured global token.

use super::password::{self, PasswordError};
use super::settings::AuthSettings;
use super::{Identity, Role, Via};
use crate::config::secret::Secret;
use crate::domain::MailboxId;
use crate::store::users::{NewUser, UserRow};
use crate::store::{Store, StoreError};
use chrono::{Duration, Utc};

/// Prefix of personal API tokens (`pst_<id>_<secret>`), so that a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "pst_";

/// Longest user name accepted at the login.
const MAX_USERNAME: usize = 128;

/// Authentication errors (the store or the random source failed; not a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or randomness failed, or a password breaks the rules.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A blocking task failed.
    #[error("Anmeldung abgebrochen: {0}")]
    Task(String),
}

/// What a login attempt came to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in: the session cookie's value (the browser's secret) and who it is.
    SignedIn {
        /// The value of the session cookie.
        cookie: String,
        /// The new session's identity.
        identity: Identity,
    },
    /// Wrong name or password, disabled account, or no role in the directory.
    Refused,
    /// Too many failures: the name is locked until then (RFC 3339).
    Locked {
        /// End of the lockout.
        until: String,
    },
    /// The directory did not answer; nothing was counted against the person.
    DirectoryDown(String),
}

/// Checks credentials against the store (and the directory, when configured).
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    settings: AuthSettings,
    global_token: Secret,
}

fn identity(u: &UserRow, via: Via) -> Identity {
    Identity {
        name: u.name.clone(),
        role: u.role,
        mailboxes: u.mailboxes.clone(),
        via,
    }
}

/// Whether a user name can be one at all (length, no control characters).
pub fn plausible_username(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_USERNAME && !name.chars().any(char::is_control)
}

/// Password hashes computed at once at most: argon2id is made to be slow, and a burst of
/// logins must not occupy every core of the machine that also reads the post.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| AuthError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Task(e.to_string()))
}

impl Authenticator {
    /// An authenticator over `store`; `global_token` is the configured admin machine token
    /// (empty: none).
    pub fn new(store: Store, settings: AuthSettings, global_token: Secret) -> Self {
        Self {
            store,
            settings,
            global_token,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// A login with name and password. Failures are counted per name; after
    /// `max_failures` in a row the name is locked for `lockout_minutes`.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginOutcome, AuthError> {
        let username = username.trim();
        if !plausible_username(username) || password.is_empty() {
            return Ok(LoginOutcome::Refused);
        }
        // Failures are counted and names locked whatever their case: a directory compares
        // names without case, so "Erika" must not be a second chance for a locked "erika".
        let key = username.to_lowercase();
        if let Some(until) = self.store.login_locked_until(&key).await? {
            return Ok(LoginOutcome::Locked { until });
        }
        let user = self.store.user(username).await?;
        let local = user.as_ref().filter(|u| u.source == "local");
        if local.is_none()
            && let Some(directory) = &self.settings.ldap
        {
            // Directory accounts are kept under the name in lower case (one row a person).
            return self.directory_login(directory, &key, password).await;
        }
        let stored = local
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| password::dummy_hash().to_string());
        let given = password.to_string();
        let matches = blocking(move || password::verify(&given, &stored)).await?;
        let signed_in = match local {
            Some(u) if matches && !u.disabled => Some(u.clone()),
            Some(_) => None,
            None => None,
        };
        let Some(user) = signed_in else {
            return self.refused(&key).await;
        };
        self.store.clear_login_failures(&key).await?;
        self.start_session(&user).await
    }

    /// A login of a name that has no local account, against the directory.
    async fn directory_login(
        &self,
        directory: &super::ldap::LdapSettings,
        username: &str,
        password: &str,
    ) -> Result<LoginOutcome, AuthError> {
        let found = match super::ldap::login(directory, username, password).await {
            Ok(found) => found,
            Err(e) => return Ok(LoginOutcome::DirectoryDown(e.to_string())),
        };
        let user = match found {
            Some(d) => {
                let mailboxes: Vec<MailboxId> = d
                    .mailboxes
                    .iter()
                    .filter_map(|m| MailboxId::parse(m))
                    .collect();
                self.store
                    .sync_directory_user(username, d.role, &mailboxes, d.display_name.as_deref())
                    .await?
            }
            None => None,
        };
        match user {
            Some(u) => {
                self.store.clear_login_failures(username).await?;
                self.start_session(&u).await
            }
            None => self.refused(username).await,
        }
    }

    /// Counts a refused login; the answer says whether the name is locked now.
    async fn refused(&self, username: &str) -> Result<LoginOutcome, AuthError> {
        let until = (Utc::now() + Duration::minutes(self.settings.lockout_minutes as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tracing::info!(user = username, "login refused");
        Ok(
            match self
                .store
                .record_login_failure(username, self.settings.max_failures, &until)
                .await?
            {
                Some(until) => LoginOutcome::Locked { until },
                None => LoginOutcome::Refused,
            },
        )
    }

    async fn start_session(&self, user: &UserRow) -> Result<LoginOutcome, AuthError> {
        let cookie = password::random_hex(32)?;
        let csrf = password::random_hex(32)?;
        let expires = (Utc::now() + Duration::minutes(self.settings.session_minutes as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.store
            .create_session(&password::secret_hash(&cookie), &user.name, &csrf, &expires)
            .await?;
        tracing::info!(user = %user.name, role = %user.role, "signed in");
        Ok(LoginOutcome::SignedIn {
            cookie,
            identity: identity(user, Via::Session { csrf }),
        })
    }

    /// The identity of a session cookie's value, while the session lives.
    pub async fn session(&self, cookie: &str) -> Result<Option<Identity>, AuthError> {
        if cookie.len() != 64 || !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .store
            .session(&password::secret_hash(cookie))
            .await?
            .map(|(u, csrf)| identity(&u, Via::Session { csrf })))
    }

    /// Ends the session of this cookie value.
    pub async fn logout(&self, cookie: &str) -> Result<(), AuthError> {
        self.store
            .delete_session(&password::secret_hash(cookie))
            .await?;
        Ok(())
    }

    /// The identity of a bearer token: the global token, or a personal token.
    pub async fn bearer(&self, token: &str) -> Result<Option<Identity>, AuthError> {
        let global = self.global_token.expose();
        if !global.is_empty() && super::constant_time_eq(token.as_bytes(), global.as_bytes()) {
            return Ok(Some(Identity::global_token()));
        }
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
            return Ok(None);
        }
        Ok(self
            .store
            .token_user(&password::secret_hash(token))
            .await?
            .map(|u| identity(&u, Via::Token)))
    }

    /// Creates a personal API token for `user`; returns its id and the token itself (shown
    /// once, stored only as a hash).
    pub async fn create_token(
        &self,
        user: &str,
        label: &str,
        actor: &str,
    ) -> Result<(String, String), AuthError> {
        let id = password::random_hex(6)?;
        let token = format!("{TOKEN_PREFIX}{id}_{}", password::random_hex(32)?);
        self.store
            .create_token(&id, &password::secret_hash(&token), user, label, actor)
            .await?;
        Ok((id, token))
    }

    /// Adds a local account with a password (hashed here).
    pub async fn add_local_user(
        &self,
        name: &str,
        role: Role,
        mailboxes: &[MailboxId],
        password: &str,
        display_name: Option<&str>,
        actor: &str,
    ) -> Result<(), AuthError> {
        let given = password.to_string();
        let hash = blocking(move || password::hash(&given)).await??;
        self.store
            .add_user(
                &NewUser {
                    name,
                    role,
                    mailboxes,
                    password_hash: Some(&hash),
                    source: "local",
                    display_name,
                },
                actor,
            )
            .await?;
        Ok(())
    }
}
