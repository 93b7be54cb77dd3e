//! `kind = "paperless"`: Paperless-ngx. `token` comes from the environment or `token_file`
//! (the one secret rule, see [`crate::config::secret`]).

use super::PaperlessTarget;
use crate::config::secret::Secret;
use crate::deliver::{BuildError, ConnectorSettings, Delivery, TargetCheck};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn default_timeout() -> u64 {
    30
}

/// `[deliver.targets.NAME] kind = "paperless"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaperless {
    base_url: String,
    /// Only from the environment (refused in the file).
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    /// Title template (default `{title}`: the subject, else the file name).
    #[serde(default)]
    title: Option<String>,
    /// Tag ids for every document.
    #[serde(default)]
    tags: Vec<u64>,
    /// Mailbox id -> tag ids (added to `tags`).
    #[serde(default)]
    mailbox_tags: BTreeMap<String, Vec<u64>>,
    #[serde(default)]
    document_type: Option<u64>,
    /// Mailbox id -> document type id.
    #[serde(default)]
    mailbox_document_types: BTreeMap<String, u64>,
    #[serde(default)]
    correspondent: Option<u64>,
    /// Custom field id that stores our document id (for the idempotency look-up).
    #[serde(default)]
    document_id_field: Option<u64>,
    /// Our field -> custom field id.
    #[serde(default)]
    custom_fields: BTreeMap<String, u64>,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    poll_timeout_secs: Option<u64>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    /// Clerk id (`[[clerks."63"]] id`) -> Paperless user id: the document's owner.
    #[serde(default)]
    clerk_owners: BTreeMap<String, u64>,
}

/// Validated Paperless-ngx settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperlessSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// API token.
    pub token: Secret,
    /// Title template.
    pub title: String,
    /// Tags for every document.
    pub tags: Vec<u64>,
    /// Extra tags per mailbox.
    pub mailbox_tags: BTreeMap<String, Vec<u64>>,
    /// Default document type.
    pub document_type: Option<u64>,
    /// Document type per mailbox.
    pub mailbox_document_types: BTreeMap<String, u64>,
    /// Correspondent id.
    pub correspondent: Option<u64>,
    /// Custom field holding our document id.
    pub document_id_field: Option<u64>,
    /// Our field -> custom field id.
    pub custom_fields: BTreeMap<String, u64>,
    /// Task polling interval.
    pub poll_interval: Duration,
    /// How long to wait for the consumer before retrying later.
    pub poll_timeout: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Clerk id -> owner (Paperless user id).
    pub clerk_owners: BTreeMap<String, u64>,
}

impl ConnectorSettings for PaperlessSettings {
    const KIND: &'static str = "paperless";
    type Raw = RawPaperless;

    fn validate(r: RawPaperless, check: &mut TargetCheck<'_>) -> Self {
        let token = check.secret("token", r.token.as_deref(), r.token_file.as_deref());
        if token.is_none() && r.token_file.is_none() {
            let hint = check.secret_hint("token");
            check.push("kind = \"paperless\"", "no API token", Some(hint));
        }
        check.field_names("custom_fields", r.custom_fields.keys());
        let title = r.title.unwrap_or_else(|| "{title}".into());
        check.template("title", &title);
        Self {
            base_url: check.url("base_url", &r.base_url),
            token: token.unwrap_or_default(),
            title,
            tags: r.tags,
            mailbox_tags: r.mailbox_tags,
            document_type: r.document_type,
            mailbox_document_types: r.mailbox_document_types,
            correspondent: r.correspondent,
            document_id_field: r.document_id_field,
            custom_fields: r.custom_fields,
            poll_interval: Duration::from_millis(r.poll_interval_ms.unwrap_or(1000).max(10)),
            poll_timeout: Duration::from_secs(r.poll_timeout_secs.unwrap_or(300).max(1)),
            timeout: TargetCheck::timeout(r.timeout_secs),
            clerk_owners: r.clerk_owners,
        }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(PaperlessTarget::new(name, self.clone())?))
    }
}
