//! Sign-in against an LDAP directory or Active Directory: a simple bind as the person, then a
//! search for the groups they are a member of (with their own bind, no service account), mapped
//! to a [`Role`] and mailboxes by `[auth.ldap]` of the config.
//!
//! `ldap://` (optionally with StartTLS) and `ldaps://` are supported; certificates are checked
//! against the system's trust store. For Active Directory with nested groups, a filter such as
//! `(member:1.2.840.113556.1.4.1941:={dn})` finds indirect memberships too.

use super::Role;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::future::Future;
use std::time::Duration;

/// Longest username accepted (bytes).
const MAX_USERNAME_BYTES: usize = 128;

/// LDAP result code `invalidCredentials` (RFC 4511).
const RC_INVALID_CREDENTIALS: u32 = 49;

/// `[auth.ldap]` of the config.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// Server URL: `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before the bind (refused if the server
    /// does not offer it; never falls back to plain text).
    #[serde(default)]
    pub starttls: bool,
    /// The DN a person binds as; `{username}` is replaced by the username, escaped as an RDN
    /// value (RFC 4514), e.g. `uid={username},ou=people,dc=musterstadt,dc=de`.
    pub user_dn: String,
    /// Where groups are searched (subtree), e.g. `ou=groups,dc=musterstadt,dc=de`.
    pub group_base: String,
    /// The filter for the person's groups; `{dn}` is replaced by their DN and `{username}` by
    /// the username, both escaped as filter values (RFC 4515). Default `(member={dn})`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Which groups may sign in, with which role and mailboxes.
    #[serde(default)]
    pub groups: Vec<GroupMapping>,
    /// Limit of every network step (connect, TLS, bind, each search), in seconds. Default 5.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The person's attribute holding the name shown (e.g. `cn` or `displayName`); none: no
    /// display name is read.
    #[serde(default)]
    pub display_name_attribute: Option<String>,
}

fn default_group_filter() -> String {
    "(member={dn})".to_string()
}

fn default_timeout() -> u64 {
    5
}

/// One directory group that may sign in.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// The group's DN or its `cn` (compared case-insensitively).
    pub group: String,
    /// The role its members get.
    pub role: Role,
    /// The mailboxes its members get (for role `fachbereich`).
    #[serde(default)]
    pub mailboxes: Vec<String>,
}

/// What the directory says about a person who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The username as given at sign-in.
    pub username: String,
    /// The name shown, from [`LdapSettings::display_name_attribute`].
    pub display_name: Option<String>,
    /// The strongest role of the mapped groups.
    pub role: Role,
    /// The union of the mapped groups' mailboxes.
    pub mailboxes: Vec<String>,
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Connection refused, timed out or broken.
    #[error("Verzeichnisdienst nicht erreichbar: {0}")]
    Unreachable(String),
    /// The directory answered with an error (or the settings are unusable).
    #[error("Verzeichnisdienst-Fehler: {0}")]
    Directory(String),
}

/// Signs a person in: binds as them and maps their groups.
///
/// `Ok(None)`: wrong password, unknown user, a refused username, an empty password (never sent:
/// an LDAP bind with an empty password is an "unauthenticated bind" that succeeds), or no mapped
/// group (the person may not sign in).
pub async fn login(
    s: &LdapSettings,
    username: &str,
    password: &str,
) -> Result<Option<DirectoryUser>, LdapError> {
    if password.is_empty() || !acceptable_username(username) {
        return Ok(None);
    }
    let dn = user_dn(&s.user_dn, username)?;
    let filter = group_filter(&s.group_filter, &dn, username)?;
    let limit = Duration::from_secs(s.timeout_seconds.max(1));

    let settings = LdapConnSettings::new()
        .set_conn_timeout(limit)
        .set_starttls(s.starttls);
    let (conn, mut ldap) = step(
        limit,
        "Verbindung",
        LdapConnAsync::with_settings(settings, &s.url),
    )
    .await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection ended");
        }
    });
    let result = session(s, &mut ldap, username, password, &dn, &filter, limit).await;
    let _ = tokio::time::timeout(limit, ldap.unbind()).await;
    driver.abort();
    result
}

async fn session(
    s: &LdapSettings,
    ldap: &mut ldap3::Ldap,
    username: &str,
    password: &str,
    dn: &str,
    filter: &str,
    limit: Duration,
) -> Result<Option<DirectoryUser>, LdapError> {
    let bind = step(
        limit,
        "Anmeldung",
        ldap.with_timeout(limit).simple_bind(dn, password),
    )
    .await?;
    match bind.rc {
        0 => {}
        RC_INVALID_CREDENTIALS => {
            tracing::info!(username, "LDAP bind refused (invalid credentials)");
            return Ok(None);
        }
        _ => return Err(LdapError::Directory(bind.to_string())),
    }

    let groups = step(
        limit,
        "Gruppensuche",
        ldap.with_timeout(limit)
            .search(&s.group_base, Scope::Subtree, filter, vec!["cn"]),
    )
    .await?;
    let (entries, _) = groups
        .success()
        .map_err(|e| LdapError::Directory(e.to_string()))?;
    let mut found = Vec::new();
    for e in entries {
        if e.is_ref() || e.is_intermediate() {
            continue;
        }
        let entry = parse_entry(e)?;
        let cns = entry.attrs.get("cn").cloned().unwrap_or_default();
        found.push((entry.dn, cns));
    }
    let Some((role, mailboxes)) = merge(&s.groups, &found) else {
        tracing::info!(username, groups = found.len(), "LDAP: no mapped group");
        return Ok(None);
    };

    let display_name = match &s.display_name_attribute {
        None => None,
        Some(attr) => {
            let r = step(
                limit,
                "Namenssuche",
                ldap.with_timeout(limit).search(
                    dn,
                    Scope::Base,
                    "(objectClass=*)",
                    vec![attr.as_str()],
                ),
            )
            .await?;
            let (entries, _) = r
                .success()
                .map_err(|e| LdapError::Directory(e.to_string()))?;
            let mut name = None;
            for e in entries {
                if e.is_ref() || e.is_intermediate() {
                    continue;
                }
                let entry = parse_entry(e)?;
                name = entry
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                    .and_then(|(_, v)| v.first().cloned());
                if name.is_some() {
                    break;
                }
            }
            name
        }
    };
    Ok(Some(DirectoryUser {
        username: username.to_string(),
        display_name,
        role,
        mailboxes,
    }))
}

/// Runs one network step under the time limit; connection failures and timeouts are
/// [`LdapError::Unreachable`].
async fn step<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, ldap3::LdapError>>,
) -> Result<T, LdapError> {
    match tokio::time::timeout(limit, f).await {
        Err(_) => Err(LdapError::Unreachable(format!(
            "{what}: keine Antwort nach {} s",
            limit.as_secs()
        ))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(what, e)),
    }
}

fn classify(what: &str, e: ldap3::LdapError) -> LdapError {
    use ldap3::LdapError as E;
    match e {
        E::Io { .. }
        | E::Timeout { .. }
        | E::OpSend { .. }
        | E::ResultRecv { .. }
        | E::EndOfStream => LdapError::Unreachable(format!("{what}: {e}")),
        e => LdapError::Directory(format!("{what}: {e}")),
    }
}

/// Parses a search entry; `ldap3` panics on malformed BER from the server, which must not take
/// the caller down.
fn parse_entry(e: ldap3::ResultEntry) -> Result<SearchEntry, LdapError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e)))
        .map_err(|_| LdapError::Directory("unlesbarer Eintrag in der Antwort".into()))
}

/// A username that may be sent to the directory: not empty, at most 128 bytes, no control
/// characters.
fn acceptable_username(u: &str) -> bool {
    !u.is_empty() && u.len() <= MAX_USERNAME_BYTES && !u.chars().any(char::is_control)
}

/// The bind DN: `{username}` of the template replaced by the username escaped as an RDN value
/// (RFC 4514).
fn user_dn(template: &str, username: &str) -> Result<String, LdapError> {
    if !template.contains("{username}") {
        return Err(LdapError::Directory(
            "auth.ldap.user_dn enthält kein {username}".into(),
        ));
    }
    Ok(template.replace("{username}", &ldap3::dn_escape(username)))
}

/// The group filter: `{dn}` and `{username}` replaced by the values escaped for a filter
/// (RFC 4515). One of them must occur, or every group would count for everybody.
fn group_filter(template: &str, dn: &str, username: &str) -> Result<String, LdapError> {
    if !template.contains("{dn}") && !template.contains("{username}") {
        return Err(LdapError::Directory(
            "auth.ldap.group_filter enthält weder {dn} noch {username}".into(),
        ));
    }
    Ok(template
        .replace("{dn}", &ldap3::ldap_escape(dn))
        .replace("{username}", &ldap3::ldap_escape(username)))
}

/// A DN in a form to compare: lower case, no blanks around the separators.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

fn strength(r: Role) -> u8 {
    match r {
        Role::Fachbereich => 0,
        Role::Poststelle => 1,
        Role::Admin => 2,
    }
}

/// The role and mailboxes of the groups found (`(dn, cn values)`): the strongest role of every
/// matching mapping, the union of their mailboxes (in order of first mention). `None`: no mapping
/// matches.
fn merge(
    mappings: &[GroupMapping],
    found: &[(String, Vec<String>)],
) -> Option<(Role, Vec<String>)> {
    let mut role: Option<Role> = None;
    let mut mailboxes: Vec<String> = Vec::new();
    for m in mappings {
        let wanted = m.group.trim();
        let wanted_dn = normalize_dn(wanted);
        let hit = found.iter().any(|(dn, cns)| {
            normalize_dn(dn) == wanted_dn
                || cns
                    .iter()
                    .any(|cn| cn.trim().to_lowercase() == wanted.to_lowercase())
        });
        if !hit {
            continue;
        }
        if role.is_none_or(|r| strength(m.role) > strength(r)) {
            role = Some(m.role);
        }
        for mb in &m.mailboxes {
            if !mailboxes.contains(mb) {
                mailboxes.push(mb.clone());
            }
        }
    }
    role.map(|r| (r, mailboxes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(group: &str, role: Role, mailboxes: &[&str]) -> GroupMapping {
        GroupMapping {
            group: group.into(),
            role,
            mailboxes: mailboxes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn username_is_escaped_as_rdn_value() {
        let t = "uid={username},ou=people,dc=musterstadt,dc=de";
        assert_eq!(
            user_dn(t, "erika").unwrap(),
            "uid=erika,ou=people,dc=musterstadt,dc=de"
        );
        assert_eq!(
            user_dn(t, "a,uid=admin").unwrap(),
            "uid=a\\2cuid\\3dadmin,ou=people,dc=musterstadt,dc=de"
        );
        assert_eq!(
            user_dn(t, " #x+y\\\"<;> ").unwrap(),
            "uid=\\20#x\\2by\\5c\\22\\3c\\3b\\3e\\20,ou=people,dc=musterstadt,dc=de"
        );
        assert_eq!(
            user_dn(t, "#x").unwrap(),
            "uid=\\23x,ou=people,dc=musterstadt,dc=de"
        );
        assert!(user_dn("uid=fixed,dc=de", "erika").is_err());
    }

    #[test]
    fn dn_is_escaped_as_filter_value() {
        assert_eq!(
            group_filter("(member={dn})", "uid=a,dc=de", "a").unwrap(),
            "(member=uid=a,dc=de)"
        );
        assert_eq!(
            group_filter("(member={dn})", "uid=*)(uid=\\2a,dc=de", "x").unwrap(),
            "(member=uid=\\2a\\29\\28uid=\\5c2a,dc=de)"
        );
        assert_eq!(
            group_filter("(memberUid={username})", "uid=x,dc=de", "*").unwrap(),
            "(memberUid=\\2a)"
        );
        assert!(group_filter("(objectClass=groupOfNames)", "uid=x", "x").is_err());
    }

    #[test]
    fn usernames_refused() {
        assert!(acceptable_username("erika.mustermann"));
        assert!(acceptable_username(&"a".repeat(128)));
        assert!(!acceptable_username(&"a".repeat(129)));
        assert!(!acceptable_username(""));
        assert!(!acceptable_username("erika\0"));
        assert!(!acceptable_username("erika\nadmin"));
    }

    #[test]
    fn strongest_role_wins_and_mailboxes_are_merged() {
        let maps = vec![
            mapping(
                "cn=bauamt,ou=groups,dc=de",
                Role::Fachbereich,
                &["63", "61"],
            ),
            mapping("Poststelle", Role::Poststelle, &[]),
            mapping("ordnungsamt", Role::Fachbereich, &["32", "63"]),
            mapping("cn=it,ou=groups,dc=de", Role::Admin, &[]),
        ];
        let bau = (
            "CN=Bauamt, OU=Groups, DC=de".to_string(),
            vec!["Bauamt".to_string()],
        );
        let ord = (
            "cn=ordnungsamt,ou=groups,dc=de".to_string(),
            vec!["Ordnungsamt".to_string()],
        );
        let post = (
            "cn=post,ou=groups,dc=de".to_string(),
            vec!["poststelle".to_string()],
        );
        let it = ("cn=it,ou=groups,dc=de".to_string(), vec!["it".to_string()]);
        let other = (
            "cn=kantine,ou=groups,dc=de".to_string(),
            vec!["kantine".to_string()],
        );

        assert_eq!(
            merge(&maps, std::slice::from_ref(&bau)),
            Some((Role::Fachbereich, vec!["63".into(), "61".into()]))
        );
        assert_eq!(
            merge(&maps, &[ord.clone(), bau.clone()]),
            Some((
                Role::Fachbereich,
                vec!["63".into(), "61".into(), "32".into()]
            ))
        );
        assert_eq!(
            merge(&maps, &[bau.clone(), post.clone()]).map(|m| m.0),
            Some(Role::Poststelle)
        );
        assert_eq!(
            merge(&maps, &[post.clone(), it, bau]).map(|m| m.0),
            Some(Role::Admin)
        );
        assert_eq!(merge(&maps, std::slice::from_ref(&other)), None);
        assert_eq!(merge(&maps, &[]), None);
        assert_eq!(merge(&[], &[other]), None);
    }
}
