//! The `[auth]` section: sessions, the login throttle, cookies and (optionally) the directory.

use super::ldap::LdapSettings;
use crate::config::problem::Problems;
use serde::Deserialize;

/// `[auth]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    session_minutes: u64,
    max_failures: u32,
    lockout_minutes: u64,
    secure_cookies: bool,
    ldap: Option<LdapSettings>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            session_minutes: 480,
            max_failures: 5,
            lockout_minutes: 15,
            secure_cookies: false,
            ldap: None,
        }
    }
}

/// Login and session settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A session ends this long after the login (a working day by default).
    pub session_minutes: u64,
    /// Failed logins of one name in a row before it is locked.
    pub max_failures: u32,
    /// How long a locked name stays locked.
    pub lockout_minutes: u64,
    /// Mark cookies `Secure` (the desk is served over TLS, e.g. behind a reverse proxy). Also
    /// set for a request that arrives with `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// `[auth.ldap]`: sign-in against LDAP / Active Directory, roles from its groups.
    pub ldap: Option<LdapSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        validate(
            RawAuth::default(),
            &mut Problems::new(std::path::Path::new(""), ""),
        )
    }
}

/// Validates `[auth]`.
pub fn validate(raw: RawAuth, problems: &mut Problems) -> AuthSettings {
    if raw.session_minutes == 0 || raw.session_minutes > 7 * 24 * 60 {
        problems.push_key(
            &["auth", "session_minutes"],
            format!(
                "auth.session_minutes = {} is outside 1..=10080 (one week)",
                raw.session_minutes
            ),
            None,
        );
    }
    if raw.max_failures == 0 {
        problems.push_key(
            &["auth", "max_failures"],
            "auth.max_failures must be at least 1".to_string(),
            None,
        );
    }
    if raw.lockout_minutes == 0 {
        problems.push_key(
            &["auth", "lockout_minutes"],
            "auth.lockout_minutes must be at least 1".to_string(),
            None,
        );
    }
    if let Some(l) = &raw.ldap {
        if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
            problems.push_key(
                &["auth", "ldap", "url"],
                format!(
                    "auth.ldap.url \"{}\" is not an ldap:// or ldaps:// URL",
                    l.url
                ),
                None,
            );
        }
        if l.url.starts_with("ldap://") && !l.starttls && !loopback_url(&l.url) {
            problems.push_key(
                &["auth", "ldap", "url"],
                format!(
                    "auth.ldap.url \"{}\" would send passwords in clear text",
                    l.url
                ),
                Some("use ldaps://, or starttls = true".into()),
            );
        }
        if !l.user_dn.contains("{username}") {
            problems.push_key(
                &["auth", "ldap", "user_dn"],
                "auth.ldap.user_dn must contain {username}".to_string(),
                Some("e.g. \"uid={username},ou=people,dc=musterstadt,dc=de\"".into()),
            );
        }
        for g in &l.groups {
            if let Some(m) = g
                .mailboxes
                .iter()
                .find(|m| crate::domain::MailboxId::parse(m).is_none())
            {
                problems.push_key(
                    &["auth", "ldap", "groups"],
                    format!(
                        "auth.ldap.groups: \"{m}\" of group \"{}\" is not a mailbox id",
                        g.group
                    ),
                    None,
                );
            }
        }
    }
    AuthSettings {
        ldap: raw.ldap,
        session_minutes: raw.session_minutes.clamp(1, 7 * 24 * 60),
        max_failures: raw.max_failures.max(1),
        lockout_minutes: raw.lockout_minutes.max(1),
        secure_cookies: raw.secure_cookies,
    }
}

/// Whether an `ldap://` URL names this machine (where clear text never leaves it).
fn loopback_url(url: &str) -> bool {
    let rest = url.trim_start_matches("ldap://");
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::loopback_url;

    #[test]
    fn clear_text_ldap_only_to_this_machine() {
        for ok in [
            "ldap://127.0.0.1:389",
            "ldap://localhost",
            "ldap://[::1]:389/",
        ] {
            assert!(loopback_url(ok), "{ok}");
        }
        for far in [
            "ldap://dc1.musterstadt.local",
            "ldap://10.0.0.5:389",
            "ldap://127.0.0.1.evil",
        ] {
            assert!(!loopback_url(far), "{far}");
        }
    }
}
