//! Deliver: filing a decided document into its mailbox's target, behind one trait.
//!
//! Delivery is an outbox step driven by the pipeline: a document counts as delivered only after
//! the target confirms, and a retried delivery carries the same document id, so targets can
//! recognise it and not create a duplicate.

pub mod breaker;
pub mod cmis;
pub mod dvelop;
pub mod fields;
pub mod filesystem;
pub mod http;
pub mod mayan;
pub mod paperless;
pub mod rest;

use crate::domain::{DocumentId, MailboxId};
use std::future::Future;
use std::pin::Pin;

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
}

/// Boxed future returned by targets.
pub type DeliveryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// A delivery target (DMS connector).
pub trait Delivery: Send + Sync + std::fmt::Debug {
    /// Short name for logs and the audit trail.
    fn name(&self) -> &str;
    /// Files the document; must be idempotent per `document_id`.
    fn deliver<'a>(&'a self, item: &'a DeliveryItem) -> DeliveryFuture<'a>;
}

/// Builds the target described by settings.
pub fn build(name: &str, settings: &crate::config::TargetSettings) -> std::sync::Arc<dyn Delivery> {
    match settings {
        crate::config::TargetSettings::Filesystem { root } => {
            std::sync::Arc::new(filesystem::FilesystemTarget::new(name, root.clone()))
        }
        crate::config::TargetSettings::Mayan(m) => {
            std::sync::Arc::new(mayan::MayanTarget::new(name, m.clone()))
        }
        crate::config::TargetSettings::Dvelop(s) => {
            std::sync::Arc::new(dvelop::DvelopTarget::new(name, s.clone()))
        }
        crate::config::TargetSettings::Cmis(s) => {
            std::sync::Arc::new(cmis::CmisTarget::new(name, s.clone()))
        }
        crate::config::TargetSettings::Paperless(s) => {
            std::sync::Arc::new(paperless::PaperlessTarget::new(name, s.clone()))
        }
        crate::config::TargetSettings::Rest(s) => {
            std::sync::Arc::new(rest::RestTarget::new(name, s.clone()))
        }
    }
}
