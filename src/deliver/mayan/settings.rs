//! `kind = "mayan"`: a Mayan EDMS 4.x server, one cabinet per mailbox. Credentials are `user`
//! with `password`, or a REST API `token`; both secrets come from the environment or their
//! `*_file` (the one secret rule, see [`crate::config::secret`]).

use super::MayanTarget;
use crate::config::secret::Secret;
use crate::deliver::{BuildError, ConnectorSettings, Delivery, TargetCheck, TargetMailbox};
use crate::domain::MailboxId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn default_true() -> bool {
    true
}

fn default_timeout() -> u64 {
    30
}

fn default_file_wait() -> u64 {
    120
}

/// `[deliver.targets.NAME] kind = "mayan"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMayan {
    url: String,
    user: Option<String>,
    /// Only from the environment (refused in the file).
    password: Option<String>,
    password_file: Option<PathBuf>,
    /// Only from the environment (refused in the file).
    token: Option<String>,
    token_file: Option<PathBuf>,
    document_type: RawMayanRef,
    #[serde(default)]
    cabinets: BTreeMap<String, RawMayanRef>,
    #[serde(default = "default_true")]
    create_cabinets: bool,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_file_wait")]
    file_wait_secs: u64,
    /// Clerk id -> cabinet (label of a child of the mailbox's cabinet, or an id).
    #[serde(default)]
    clerk_cabinets: BTreeMap<String, RawMayanRef>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum RawMayanRef {
    Id(u64),
    Label(String),
}

impl From<RawMayanRef> for MayanRef {
    fn from(r: RawMayanRef) -> Self {
        match r {
            RawMayanRef::Id(id) => MayanRef::Id(id),
            RawMayanRef::Label(l) => MayanRef::Label(l),
        }
    }
}

/// A Mayan EDMS object named by its id or its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MayanRef {
    /// Database id.
    Id(u64),
    /// Label (looked up; cabinets are created when missing and allowed).
    Label(String),
}

/// How poststelle signs in to Mayan EDMS.
#[derive(Debug, Clone, PartialEq)]
pub enum MayanAuth {
    /// HTTP Basic with a user's name and password.
    Basic {
        /// User name.
        user: String,
        /// Password (from env or file).
        password: Secret,
    },
    /// A REST API token (`Authorization: Token ...`).
    Token(Secret),
}

/// Settings of a Mayan EDMS 4.x target.
#[derive(Debug, Clone, PartialEq)]
pub struct MayanSettings {
    /// Base URL, without `/api/v4`.
    pub url: String,
    /// Credentials.
    pub auth: MayanAuth,
    /// Document type of every filed document.
    pub document_type: MayanRef,
    /// Cabinet of each mailbox filed into this target (completed with a cabinet named after
    /// each mailbox that has none).
    pub cabinets: BTreeMap<MailboxId, MayanRef>,
    /// Whether cabinets named by label are created when missing.
    pub create_cabinets: bool,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// How long to wait for Mayan to process an uploaded file before the delivery counts as
    /// failed (and is retried).
    pub file_wait: Duration,
    /// Clerk id -> the clerk's cabinet: an id, or the label of a cabinet inside the mailbox's
    /// (default: the clerk's name).
    pub clerk_cabinets: BTreeMap<String, MayanRef>,
}

impl ConnectorSettings for MayanSettings {
    const KIND: &'static str = "mayan";
    type Raw = RawMayan;

    fn validate(raw: RawMayan, check: &mut TargetCheck<'_>) -> Self {
        let url = check.url("url", &raw.url);
        let token = check.secret("token", raw.token.as_deref(), raw.token_file.as_deref());
        let password = check.secret(
            "password",
            raw.password.as_deref(),
            raw.password_file.as_deref(),
        );
        let auth = match (token, raw.user, password) {
            (Some(t), _, _) => MayanAuth::Token(t),
            (None, Some(user), Some(password)) => MayanAuth::Basic { user, password },
            _ => {
                let hint = format!(
                    "set user and {}, or {}",
                    check.secret_hint("password"),
                    check.secret_hint("token")
                );
                check.push(
                    "kind = \"mayan\"",
                    "no credentials for Mayan EDMS",
                    Some(hint),
                );
                MayanAuth::Token(Secret::default())
            }
        };
        let mut cabinets = BTreeMap::new();
        for (mailbox, cabinet) in raw.cabinets {
            match MailboxId::parse(&mailbox) {
                Some(id) => {
                    cabinets.insert(id, cabinet.into());
                }
                None => check.push(
                    "cabinets",
                    format!("cabinets: mailbox id \"{mailbox}\" is not valid"),
                    None,
                ),
            }
        }
        Self {
            url,
            auth,
            document_type: raw.document_type.into(),
            cabinets,
            create_cabinets: raw.create_cabinets,
            timeout: TargetCheck::timeout(raw.timeout_secs),
            file_wait: Duration::from_secs(raw.file_wait_secs.max(1)),
            clerk_cabinets: raw
                .clerk_cabinets
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
        }
    }

    /// Every mailbox filed here gets a cabinet, by default one named after the mailbox.
    fn complete(&mut self, mailboxes: &[TargetMailbox<'_>]) {
        for m in mailboxes {
            self.cabinets
                .entry(m.id.clone())
                .or_insert_with(|| MayanRef::Label(m.name.to_string()));
        }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(MayanTarget::new(name, self.clone())?))
    }
}
