//! `kind = "dvelop"`: d.velop documents (DMS App API). `api_key` comes from the environment or
//! `api_key_file` (the one secret rule, see [`crate::config::secret`]).

use super::DvelopTarget;
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

/// `[deliver.targets.NAME] kind = "dvelop"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDvelop {
    base_url: String,
    repository: String,
    /// Only from the environment (refused in the file).
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_key_file: Option<PathBuf>,
    /// `sourceId` of the mapping (default `/dms/r/{repository}/source`).
    #[serde(default)]
    source_id: Option<String>,
    /// `sourceCategory`: the document category key.
    category: String,
    /// Our field -> d.velop property key.
    #[serde(default)]
    properties: BTreeMap<String, String>,
    /// File name template (default `{document_id}.{ext}`).
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    /// Postkorb task per mailbox: mailbox id -> assignees (user or group ids).
    #[serde(default)]
    task_assignees: BTreeMap<String, Vec<String>>,
    /// Task subject template.
    #[serde(default)]
    task_subject: Option<String>,
    /// Clerk id (`[[clerks."63"]] id`) -> assignees (user or group ids) of the task.
    #[serde(default)]
    clerk_assignees: BTreeMap<String, Vec<String>>,
    /// `"instead"` (default): a clerk's assignees replace the mailbox's; `"also"`: both.
    #[serde(default)]
    clerk_task: Option<String>,
}

/// Whose task it is when the document has a clerk with assignees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClerkTask {
    /// The clerk's assignees replace the mailbox's.
    Instead,
    /// The clerk's assignees and the mailbox's.
    Also,
}

/// Validated d.velop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DvelopSettings {
    /// Base URL of the tenant, without a trailing slash.
    pub base_url: String,
    /// Repository id.
    pub repository: String,
    /// API key (login).
    pub api_key: Secret,
    /// `sourceId`.
    pub source_id: String,
    /// `sourceCategory`.
    pub category: String,
    /// Our field -> property key; must contain `document_id`.
    pub properties: BTreeMap<String, String>,
    /// File name template.
    pub file_name: String,
    /// Request timeout.
    pub timeout: Duration,
    /// Mailbox id -> task assignees.
    pub task_assignees: BTreeMap<String, Vec<String>>,
    /// Task subject template.
    pub task_subject: String,
    /// Clerk id -> task assignees.
    pub clerk_assignees: BTreeMap<String, Vec<String>>,
    /// Whether a clerk's assignees replace the mailbox's or join them.
    pub clerk_task: ClerkTask,
}

impl ConnectorSettings for DvelopSettings {
    const KIND: &'static str = "dvelop";
    type Raw = RawDvelop;

    fn validate(r: RawDvelop, check: &mut TargetCheck<'_>) -> Self {
        let api_key = check.secret("api_key", r.api_key.as_deref(), r.api_key_file.as_deref());
        if api_key.is_none() && r.api_key_file.is_none() {
            let hint = check.secret_hint("api_key");
            check.push("kind = \"dvelop\"", "no API key", Some(hint));
        }
        check.field_names("properties", r.properties.keys());
        if !r.properties.contains_key("document_id") {
            check.push(
                "properties",
                "properties must map document_id (the idempotency key) to a property key",
                Some("e.g. properties = { document_id = \"12\", subject = \"2\" }".into()),
            );
        }
        let file_name = r
            .file_name
            .unwrap_or_else(|| "{document_id}.{ext}".into());
        check.template("file_name", &file_name);
        let task_subject = r
            .task_subject
            .unwrap_or_else(|| "Posteingang {mailbox_name}: {title}".into());
        check.template("task_subject", &task_subject);
        let clerk_task = match r.clerk_task.as_deref() {
            None | Some("instead") => ClerkTask::Instead,
            Some("also") => ClerkTask::Also,
            Some(other) => {
                check.push(
                    "clerk_task",
                    format!("clerk_task \"{other}\" is unknown"),
                    Some("\"instead\" or \"also\"".into()),
                );
                ClerkTask::Instead
            }
        };
        Self {
            base_url: check.url("base_url", &r.base_url),
            source_id: r
                .source_id
                .unwrap_or_else(|| format!("/dms/r/{}/source", r.repository)),
            repository: r.repository,
            api_key: api_key.unwrap_or_default(),
            category: r.category,
            properties: r.properties,
            file_name,
            timeout: TargetCheck::timeout(r.timeout_secs),
            task_assignees: r.task_assignees,
            task_subject,
            clerk_assignees: r.clerk_assignees,
            clerk_task,
        }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(DvelopTarget::new(name, self.clone())?))
    }
}
