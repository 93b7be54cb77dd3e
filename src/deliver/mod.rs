//! Deliver: filing a decided document into its mailbox's target, behind one trait.
//!
//! Delivery is an outbox step driven by the pipeline: a document counts as delivered only after
//! the target confirms, and a retried delivery carries the same document id, so targets can
//! recognise it and not create a duplicate.

pub mod breaker;
pub mod fields;
pub mod http;
pub mod registry;
pub mod settings;

// The connectors: one line each, `folder => its settings type` (see `registry`).
registry::connectors! {
    filesystem => FilesystemSettings,
    dvelop => DvelopSettings,
    cmis => CmisSettings,
    paperless => PaperlessSettings,
    mayan => MayanSettings,
    rest => RestSettings,
}

pub use registry::{ConnectorSettings, TargetCheck, TargetMailbox, TargetSettings};
pub use settings::DeliverSettings;

use crate::domain::{DocumentId, MailboxId};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Everything a target needs to file one document.
#[derive(Debug, Clone)]
pub struct DeliveryItem {
    /// Our id: the idempotency key.
    pub document_id: DocumentId,
    /// Target mailbox.
    pub mailbox: MailboxId,
    /// Mailbox name (for targets that show it).
    pub mailbox_name: String,
    /// Original file name.
    pub original_name: String,
    /// MIME type.
    pub media_type: String,
    /// File extension to use.
    pub extension: String,
    /// The document's bytes.
    pub bytes: Vec<u8>,
    /// Metadata, decision and explanation as JSON.
    pub sidecar: serde_json::Value,
    /// Facts read from the document, for targets that map them to properties.
    pub metadata: crate::domain::DocumentMetadata,
    /// The clerk inside the mailbox, when its assignment table names one (targets with the
    /// notion file it there: a task's assignee, a subfolder, an owner, a cabinet).
    pub clerk: Option<crate::domain::ClerkAssignment>,
}

/// What a target says after it accepted a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The target's reference (path, object id, ...).
    pub reference: String,
    /// True when the target already had this document (a retried delivery).
    pub already_present: bool,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (timeouts, connection errors, 408, 429, 5xx, full disk, ...).
    #[error("temporary: {0}")]
    Retriable(String),
    /// Retrying will not help (rejected request, misconfiguration).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Worth retrying, not before the delay the server asked for (`Retry-After`).
    #[error("temporary: {0} (retry after {1:?})")]
    RetryAfter(String, std::time::Duration),
}

impl DeliveryError {
    /// True for the temporary kinds.
    pub fn is_retriable(&self) -> bool {
        !matches!(self, DeliveryError::Permanent(_))
    }

    /// The message without its kind.
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Retriable(m)
            | DeliveryError::Permanent(m)
            | DeliveryError::RetryAfter(m, _) => m,
        }
    }
}

/// A failed delivery as the retry policy sees it (the same three kinds).
impl From<DeliveryError> for crate::retry::Outcome {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Retriable(m) => Self::Retry(m),
            DeliveryError::Permanent(m) => Self::Permanent(m),
            DeliveryError::RetryAfter(m, d) => Self::RetryAfter(m, d),
        }
    }
}

/// Boxed future returned by targets.
pub type DeliveryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// Boxed future of a health check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A delivery target (DMS connector).
pub trait Delivery: Send + Sync + std::fmt::Debug {
    /// Short name for logs and the audit trail.
    fn name(&self) -> &str;
    /// Files the document; must be idempotent per `document_id`.
    fn deliver<'a>(&'a self, item: &'a DeliveryItem) -> DeliveryFuture<'a>;
    /// Health check: the target is reachable and accepts our credentials (one cheap,
    /// authenticated request of its API; for the filesystem: the root is writable). Changes
    /// nothing in the DMS.
    fn check(&self) -> CheckFuture<'_>;
}

/// A target that cannot be built from its settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("target {target}: {reason}")]
pub struct BuildError {
    /// The target's name.
    pub target: String,
    /// Why it cannot be built.
    pub reason: String,
}

impl BuildError {
    /// The error of the target `target`.
    pub fn new(target: &str, reason: impl fmt::Display) -> Self {
        Self {
            target: target.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Builds the target described by settings.
pub fn build(name: &str, settings: &TargetSettings) -> Result<Arc<dyn Delivery>, BuildError> {
    settings.build(name)
}

/// Builds every configured target; the first that cannot be built is the error.
pub fn build_all(
    settings: &DeliverSettings,
) -> Result<BTreeMap<String, Arc<dyn Delivery>>, BuildError> {
    settings
        .targets
        .iter()
        .map(|(name, t)| Ok((name.clone(), t.build(name)?)))
        .collect()
}

/// The result of one target's health check.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    /// The target's name.
    pub target: String,
    /// Its connector kind.
    pub kind: &'static str,
    /// `Ok` or why it failed (it could not be built, is unreachable, refused our credentials).
    pub outcome: Result<(), String>,
}

impl fmt::Display for TargetHealth {
    /// `target dms (filesystem): OK` or `target x (paperless): FEHLER: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target {} ({}): ", self.target, self.kind)?;
        match &self.outcome {
            Ok(()) => f.write_str("OK"),
            Err(reason) => write!(f, "FEHLER: {reason}"),
        }
    }
}

/// Builds every target and runs its health check ([`Delivery::check`]), all at once; one
/// result per target, in name order.
pub async fn check_all(settings: &DeliverSettings) -> Vec<TargetHealth> {
    let checks = settings.targets.iter().map(|(name, t)| async move {
        let outcome = match t.build(name) {
            Ok(target) => target.check().await.map_err(|e| e.message().to_string()),
            Err(e) => Err(e.reason),
        };
        TargetHealth {
            target: name.clone(),
            kind: t.kind(),
            outcome,
        }
    });
    futures::future::join_all(checks).await
}
