//! The `[api]` section: whether the HTTP API runs, where it listens and its bearer token
//! (`POSTSTELLE__API__TOKEN` or `token_file`, by the one secret rule of
//! [`crate::config::secret`]).

use crate::config::problem::Problems;
use crate::config::secret::{Secret, SecretSource};
use serde::Deserialize;
use std::path::PathBuf;

/// `[api]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    enabled: bool,
    listen: String,
    /// Only from the environment (refused in the file).
    token: Option<String>,
    token_file: Option<PathBuf>,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8470".into(),
            token: None,
            token_file: None,
        }
    }
}

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Whether the daemon serves the API.
    pub enabled: bool,
    /// Listen address.
    pub listen: String,
    /// Bearer token (from env or file); empty: every `/api` request is refused.
    pub token: Secret,
    /// The file named in `token_file` (`check-sandbox` tries to read it from inside a worker).
    pub token_file: Option<PathBuf>,
}

/// Validates `[api]`.
pub fn validate(raw: RawApi, problems: &mut Problems) -> ApiSettings {
    if raw.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push_key(
            &["api", "listen"],
            format!("api.listen \"{}\" is not an address:port", raw.listen),
            Some("e.g. 127.0.0.1:8470".into()),
        );
    }
    // A missing file leaves the API locked (every /api request is refused), not broken.
    let token = SecretSource::new(
        &["api", "token"],
        raw.token.as_deref(),
        raw.token_file.as_deref(),
    )
    .missing_file_is_unset()
    .resolve(problems)
    .unwrap_or_default();
    ApiSettings {
        enabled: raw.enabled,
        listen: raw.listen,
        token,
        token_file: raw.token_file,
    }
}
