//! Secrets (passwords, tokens, API keys) and the one rule by which every secret is read.
//!
//! **The rule**, the same for the API token, the SMTP password, IMAP passwords and the secrets
//! of delivery targets:
//!
//! 1. A key holds a secret when its name is `password`, `token`, `api_key` or `secret`, or ends
//!    in `_password`, `_token`, `_api_key` or `_secret` ([`is_secret_key`]). Such a key is
//!    refused in the config file itself, wherever it stands (the loader checks this before the
//!    environment is applied).
//! 2. Its value comes from the environment (`POSTSTELLE__<PATH>__<KEY>`, e.g.
//!    `POSTSTELLE__DELIVER__TARGETS__DMS__TOKEN`) or from the file named in `<key>_file`.
//! 3. When both are set, **the environment wins** and the file is not read: an operator can
//!    override a deployed secret file without editing the configuration. An empty environment
//!    value counts as not set.
//! 4. A secret file is read whole; only the line break(s) at its end are removed (a password may
//!    contain or end in spaces). An unreadable or empty file is a configuration problem.
//!
//! [`SecretSource::resolve`] applies the rule; every section calls it for every secret.

use super::loader::ENV_PREFIX;
use super::problem::Problems;
use std::fmt;
use std::path::Path;

/// A secret value: its `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value itself, for the one place that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// True for the name of a key that holds a secret (see the module documentation).
pub fn is_secret_key(key: &str) -> bool {
    const NAMES: [&str; 4] = ["password", "token", "api_key", "secret"];
    NAMES
        .iter()
        .any(|n| key == *n || key.strip_suffix(n).is_some_and(|p| p.ends_with('_')))
}

/// The environment variable that sets the key with this dotted path.
pub fn env_name(path: &[&str]) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.iter()
            .map(|s| s.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join("__")
    )
}

/// Where one secret may come from: its key's path, the environment's value and the
/// `<key>_file` of the config.
#[derive(Debug, Clone, Copy)]
pub struct SecretSource<'a> {
    /// Dotted path of the secret's key, e.g. `["deliver", "targets", "dms", "token"]`.
    pub key: &'a [&'a str],
    /// The value of the key after the environment was applied: since the loader refuses the key
    /// in the file, only the environment can have set it.
    pub env: Option<&'a str>,
    /// The file named in `<key>_file`.
    pub file: Option<&'a Path>,
    /// When true, a file that does not exist means "no secret" instead of a problem (the API
    /// token: without it the API stays locked).
    pub missing_file_is_unset: bool,
}

impl<'a> SecretSource<'a> {
    /// A secret read from `env` or `file`.
    pub fn new(key: &'a [&'a str], env: Option<&'a str>, file: Option<&'a Path>) -> Self {
        Self {
            key,
            env,
            file,
            missing_file_is_unset: false,
        }
    }

    /// A missing file leaves the secret unset instead of being a problem.
    pub fn missing_file_is_unset(mut self) -> Self {
        self.missing_file_is_unset = true;
        self
    }

    /// The environment variable that sets this secret.
    pub fn env_name(&self) -> String {
        env_name(self.key)
    }

    /// The name of the key that names the secret's file (`<key>_file`).
    pub fn file_key(&self) -> String {
        format!("{}_file", self.key.last().copied().unwrap_or_default())
    }

    /// "set POSTSTELLE__…__KEY or name a file with key_file": for "no secret" problems.
    pub fn hint(&self) -> String {
        format!(
            "set {} or name a file with {}",
            self.env_name(),
            self.file_key()
        )
    }

    /// Applies the rule: the environment's value, else the file's content, else `None`.
    /// Problems with the file are pushed to `problems` (and give `None`).
    pub fn resolve(&self, problems: &mut Problems) -> Option<Secret> {
        if let Some(v) = self.env.filter(|v| !v.is_empty()) {
            return Some(Secret::new(v));
        }
        let file = self.file?;
        let file_key = self.file_key();
        let mut path: Vec<&str> = self.key.to_vec();
        path.pop();
        path.push(&file_key);
        let dotted = path.join(".");
        match std::fs::read_to_string(file) {
            Ok(t) => {
                let value = t.trim_end_matches(['\r', '\n']);
                if value.is_empty() {
                    problems.push_key(
                        &path,
                        format!("{dotted} {} is empty", file.display()),
                        Some(self.hint()),
                    );
                    None
                } else {
                    Some(Secret::new(value))
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.missing_file_is_unset => {
                None
            }
            Err(e) => {
                problems.push_key(&path, format!("{dotted} {}: {e}", file.display()), None);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_follow_one_naming_rule() {
        for k in [
            "password",
            "token",
            "api_key",
            "secret",
            "smtp_password",
            "bot_token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "password_file",
            "token_file",
            "tokens",
            "secretary",
            "passwordless",
            "user",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
        assert_eq!(
            env_name(&["deliver", "targets", "dms", "api_key"]),
            "POSTSTELLE__DELIVER__TARGETS__DMS__API_KEY"
        );
        assert_eq!(format!("{:?}", Secret::new("x")), "<redacted>");
        assert_eq!(Secret::new("x").to_string(), "<redacted>");
    }

    #[test]
    fn environment_wins_over_the_file_and_file_problems_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, " from file \n").expect("write");
        let key = ["outgoing", "smtp", "password"];
        let mut p = Problems::new(Path::new("t.toml"), "");
        let s = SecretSource::new(&key, Some("from env"), Some(&file)).resolve(&mut p);
        assert_eq!(s, Some(Secret::new("from env")));
        let s = SecretSource::new(&key, Some(""), Some(&file)).resolve(&mut p);
        assert_eq!(
            s,
            Some(Secret::new(" from file ")),
            "only the line break goes"
        );
        let missing = dir.path().join("missing");
        assert_eq!(
            SecretSource::new(&key, Some("e"), Some(&missing)).resolve(&mut p),
            Some(Secret::new("e")),
            "the file is not read when the environment is set"
        );
        assert!(p.is_empty(), "{:?}", p.list());
        assert_eq!(
            SecretSource::new(&key, None, Some(&missing))
                .missing_file_is_unset()
                .resolve(&mut p),
            None
        );
        assert!(p.is_empty());
        assert_eq!(
            SecretSource::new(&key, None, Some(&missing)).resolve(&mut p),
            None
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert_eq!(
            SecretSource::new(&key, None, Some(&empty)).resolve(&mut p),
            None
        );
        let msgs: Vec<&str> = p.list().iter().map(|x| x.message.as_str()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("outgoing.smtp.password_file "),
            "{msgs:?}"
        );
        assert!(msgs[1].ends_with("is empty"), "{msgs:?}");
    }
}
