//! `kind = "filesystem"`: `root`, the directory that holds one folder per mailbox.

use super::FilesystemTarget;
use crate::deliver::{BuildError, ConnectorSettings, Delivery, TargetCheck};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// `[deliver.targets.NAME] kind = "filesystem"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    root: PathBuf,
}

/// Validated filesystem target settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemSettings {
    /// Root directory: `<root>/<mailbox-id>/<document-id>.<ext>`.
    pub root: PathBuf,
}

impl ConnectorSettings for FilesystemSettings {
    const KIND: &'static str = "filesystem";
    type Raw = RawFilesystem;

    fn validate(raw: RawFilesystem, check: &mut TargetCheck<'_>) -> Self {
        if raw.root.as_os_str().is_empty() {
            check.push("root", "root is empty", Some("e.g. root = \"var/dms\"".into()));
        }
        Self { root: raw.root }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(FilesystemTarget::new(name, self.root.clone())))
    }
}
