//! Identities and roles: who is asking, and what they may see.
//!
//! Every request to the API and the web desk carries an [`Identity`]: a person signed in with a
//! session cookie, a person's or machine's API token, or the configured global token (an admin
//! machine token). Handlers never trust a name from the request body: the `actor` of every
//! audit event is [`Identity::actor`].
//!
//! Roles:
//! - `poststelle`: the review queue, assignment to any mailbox, upload, the quarantine list;
//! - `fachbereich`: only its own mailboxes (what was delivered there, send back or forward);
//!   any other document answers 404, its content, page images and blobs included;
//! - `admin`: everything, plus models, users, dead letters and targets.

pub mod authenticator;
pub mod ldap;
pub mod password;
pub mod settings;

pub use authenticator::{Authenticator, LoginOutcome};

use crate::domain::MailboxId;
use crate::store::DocumentRow;
use serde::{Deserialize, Serialize};

/// Why an account cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A name with other characters or too long.
    #[error("invalid name {0:?}: letters, digits, '.', '_', '-', '@', at most 64")]
    InvalidName(String),
    /// A name the daemon uses for its own audit events.
    #[error("the name {0:?} is reserved for the daemon's own audit events")]
    Reserved(String),
    /// Not a role.
    #[error("unknown role {0:?} (poststelle, fachbereich, admin)")]
    UnknownRole(String),
    /// Not a configured mailbox.
    #[error("unknown mailbox {0:?} (see config)")]
    UnknownMailbox(String),
    /// A department without a mailbox.
    #[error("a fachbereich account needs at least one --mailbox")]
    NoMailbox,
    /// Mailboxes for a role that sees all of them.
    #[error("--mailbox is only for role fachbereich (the other roles see every mailbox)")]
    MailboxNotAllowed,
}

impl AccountError {
    /// The reason in German, for the admin page.
    pub fn reason_de(&self) -> String {
        match self {
            AccountError::InvalidName(n) => format!(
                "Der Name „{n}“ ist ungültig: erlaubt sind Buchstaben, Ziffern, „.“, „_“, „-“, „@“, höchstens 64 Zeichen."
            ),
            AccountError::Reserved(n) => format!(
                "Der Name „{n}“ ist für die eigenen Einträge des Dienstes im Protokoll reserviert."
            ),
            AccountError::UnknownRole(r) => format!("Unbekannte Rolle „{r}“."),
            AccountError::UnknownMailbox(m) => format!("Unbekanntes Postfach „{m}“."),
            AccountError::NoMailbox => {
                "Ein Konto der Rolle Fachbereich braucht mindestens ein Postfach.".into()
            }
            AccountError::MailboxNotAllowed => {
                "Postfächer gibt es nur für die Rolle Fachbereich; die anderen Rollen sehen alle."
                    .into()
            }
        }
    }
}

/// Whether `name` is a login name an account may have.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Names the daemon writes into the audit trail for its own work; no account may have one.
pub const RESERVED_NAMES: [&str; 12] = [
    "api",
    "system",
    "pipeline",
    "outbox",
    "outgoing",
    "intake",
    "hot_folder",
    "imap",
    "upload",
    "ldap",
    "cli",
    "admin",
];

/// Checks a new account's name, role and mailboxes (ids of `known` mailboxes) as the command
/// line and the admin page give them.
pub fn check_account(
    name: &str,
    role: &str,
    mailboxes: &[String],
    known: &[MailboxId],
) -> Result<(Role, Vec<MailboxId>), AccountError> {
    if !valid_name(name) {
        return Err(AccountError::InvalidName(name.to_string()));
    }
    if RESERVED_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(AccountError::Reserved(name.to_string()));
    }
    let role = Role::parse(role).ok_or_else(|| AccountError::UnknownRole(role.to_string()))?;
    let mut ids = Vec::new();
    for m in mailboxes.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let id = MailboxId::parse(m)
            .filter(|id| known.contains(id))
            .ok_or_else(|| AccountError::UnknownMailbox(m.to_string()))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    match role {
        Role::Fachbereich if ids.is_empty() => Err(AccountError::NoMailbox),
        Role::Poststelle | Role::Admin if !ids.is_empty() => Err(AccountError::MailboxNotAllowed),
        _ => Ok((role, ids)),
    }
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A role, as stored and as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The Poststelle: review queue, assignment to any mailbox, upload, quarantine list.
    Poststelle,
    /// A department: only the mailboxes it is given.
    Fachbereich,
    /// Everything, plus models, users, dead letters and targets.
    Admin,
}

impl Role {
    /// Parses `poststelle`, `fachbereich` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "poststelle" => Some(Role::Poststelle),
            "fachbereich" => Some(Role::Fachbereich),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Poststelle => "poststelle",
            Role::Fachbereich => "fachbereich",
            Role::Admin => "admin",
        }
    }

    /// The name people read.
    pub fn label_de(self) -> &'static str {
        match self {
            Role::Poststelle => "Poststelle",
            Role::Fachbereich => "Fachbereich",
            Role::Admin => "Verwaltung",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the identity was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session; every state-changing request must carry this CSRF token.
    Session {
        /// The session's CSRF token (hidden form field `csrf` or header `X-CSRF-Token`).
        csrf: String,
    },
    /// A per-user API token (`Authorization: Bearer ...`).
    Token,
    /// The configured global token: an admin machine token.
    GlobalToken,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account name (for the global token: `api`).
    pub name: String,
    /// The role.
    pub role: Role,
    /// The mailboxes of a `fachbereich` identity (ignored for the other roles, which see all).
    pub mailboxes: Vec<MailboxId>,
    /// How it was established.
    pub via: Via,
}

impl Identity {
    /// The identity of the configured global token.
    pub fn global_token() -> Identity {
        Identity {
            name: "api".into(),
            role: Role::Admin,
            mailboxes: Vec::new(),
            via: Via::GlobalToken,
        }
    }

    /// The audit trail's `actor` for what this identity does.
    pub fn actor(&self) -> &str {
        &self.name
    }

    /// Role `admin`.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// May work the review queue, assign to any mailbox, upload and see the quarantine list.
    pub fn is_poststelle(&self) -> bool {
        matches!(self.role, Role::Poststelle | Role::Admin)
    }

    /// Sees every mailbox (not limited to its own).
    pub fn sees_all(&self) -> bool {
        self.role != Role::Fachbereich
    }

    /// May see what was delivered to `mailbox`.
    pub fn sees_mailbox(&self, mailbox: &MailboxId) -> bool {
        self.sees_all() || self.mailboxes.contains(mailbox)
    }

    /// May see this document (its row, content, page images and blobs). A department sees a
    /// document only while it stands in one of its mailboxes and has left the review queue.
    pub fn sees_document(&self, doc: &DocumentRow) -> bool {
        if self.sees_all() {
            return true;
        }
        use crate::domain::DocState;
        matches!(
            doc.state,
            DocState::Queued | DocState::Delivered | DocState::DeadLetter
        ) && doc
            .mailbox
            .as_ref()
            .is_some_and(|m| self.mailboxes.contains(m))
    }

    /// The session's CSRF token, for forms.
    pub fn csrf(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf } => Some(csrf),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Poststelle, Role::Fachbereich, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_department_sees_only_its_mailboxes() {
        let m63 = MailboxId::parse("63").expect("id");
        let m20 = MailboxId::parse("20").expect("id");
        let id = Identity {
            name: "bau".into(),
            role: Role::Fachbereich,
            mailboxes: vec![m63.clone()],
            via: Via::Token,
        };
        assert!(id.sees_mailbox(&m63));
        assert!(!id.sees_mailbox(&m20));
        assert!(!id.is_poststelle());
        assert!(Identity::global_token().sees_mailbox(&m20));
    }
}
