//! `kind = "cmis"`: a CMIS 1.1 repository over the browser binding. `password` comes from the
//! environment or `password_file` (the one secret rule, see [`crate::config::secret`]).

use super::CmisTarget;
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

/// `[deliver.targets.NAME] kind = "cmis"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCmis {
    /// The repository's root folder URL in the browser binding, e.g.
    /// `https://host/alfresco/api/-default-/public/cmis/versions/1.1/browser/root`.
    root_url: String,
    #[serde(default)]
    username: Option<String>,
    /// Only from the environment (refused in the file).
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    /// Folder path template for mailboxes without an entry in `folders`.
    #[serde(default)]
    folder: Option<String>,
    /// Mailbox id -> folder path.
    #[serde(default)]
    folders: BTreeMap<String, String>,
    /// `cmis:objectTypeId` of created documents.
    #[serde(default)]
    object_type: Option<String>,
    /// `cmis:name` template (default `{document_id}.{ext}`).
    #[serde(default)]
    name: Option<String>,
    /// Our field -> CMIS property id.
    #[serde(default)]
    properties: BTreeMap<String, String>,
    /// Create missing folders (default true).
    #[serde(default)]
    create_folders: Option<bool>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    /// File a document with a clerk in a subfolder of its mailbox's folder (default true).
    #[serde(default)]
    clerk_subfolders: Option<bool>,
    /// Clerk id -> subfolder name (default: the clerk's name).
    #[serde(default)]
    clerk_folders: BTreeMap<String, String>,
}

/// Validated CMIS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CmisSettings {
    /// Root folder URL (browser binding), without a trailing slash.
    pub root_url: String,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Secret,
    /// Folder template.
    pub folder: String,
    /// Mailbox id -> folder path.
    pub folders: BTreeMap<String, String>,
    /// `cmis:objectTypeId`.
    pub object_type: String,
    /// `cmis:name` template.
    pub name: String,
    /// Our field -> property id.
    pub properties: BTreeMap<String, String>,
    /// Create missing folders.
    pub create_folders: bool,
    /// Request timeout.
    pub timeout: Duration,
    /// Whether a document with a clerk goes into the clerk's subfolder.
    pub clerk_subfolders: bool,
    /// Clerk id -> subfolder name.
    pub clerk_folders: BTreeMap<String, String>,
}

impl ConnectorSettings for CmisSettings {
    const KIND: &'static str = "cmis";
    type Raw = RawCmis;

    fn validate(r: RawCmis, check: &mut TargetCheck<'_>) -> Self {
        let password = check.secret("password", r.password.as_deref(), r.password_file.as_deref());
        check.field_names("properties", r.properties.keys());
        let folder = r.folder.unwrap_or_else(|| "/Poststelle/{mailbox}".into());
        check.template("folder", &folder);
        for f in r.folders.values() {
            check.template("folders", f);
        }
        let name = r.name.unwrap_or_else(|| "{document_id}.{ext}".into());
        check.template("name", &name);
        if !name.contains("{document_id}") {
            check.push(
                "name",
                "name must contain {document_id} (the idempotency key)",
                None,
            );
        }
        Self {
            root_url: check.url("root_url", &r.root_url),
            username: r.username,
            password: password.unwrap_or_default(),
            folder,
            folders: r.folders,
            object_type: r.object_type.unwrap_or_else(|| "cmis:document".into()),
            name,
            properties: r.properties,
            create_folders: r.create_folders.unwrap_or(true),
            timeout: TargetCheck::timeout(r.timeout_secs),
            clerk_subfolders: r.clerk_subfolders.unwrap_or(true),
            clerk_folders: r.clerk_folders,
        }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(CmisTarget::new(name, self.clone())?))
    }
}
