//! The `[store]` section: the database and the blob directory.

use crate::config::problem::Problems;
use serde::Deserialize;
use std::path::PathBuf;

/// `[store]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    url: String,
    blobs: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://var/poststelle.db".into(),
            blobs: "var/blobs".into(),
        }
    }
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Database URL: `sqlite://path` (embedded, the default) or `postgres://user:password@host/db`.
    pub url: String,
    /// Directory of the content-addressed blob store.
    pub blobs: PathBuf,
}

/// Validates `[store]`.
pub fn validate(raw: RawStore, problems: &mut Problems) -> StoreSettings {
    if super::db::Backend::from_url(&raw.url).is_none() {
        problems.push_key(
            &["store", "url"],
            format!("store.url \"{}\" is not supported", raw.url),
            Some("use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()),
        );
    }
    StoreSettings {
        url: raw.url,
        blobs: raw.blobs,
    }
}
