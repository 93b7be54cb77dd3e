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
            format!(
                "store.url \"{}\" is not supported",
                super::lock::redact(&raw.url)
            ),
            Some("use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()),
        );
    }
    StoreSettings {
        url: raw.url,
        blobs: raw.blobs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_of_no_known_engine_is_a_problem_that_does_not_quote_its_password() {
        let mut problems = Problems::new(std::path::Path::new("t.toml"), "");
        let raw = RawStore {
            url: "postgress://poststelle:geheim@db.example/stadt".into(),
            blobs: "var/blobs".into(),
        };
        validate(raw, &mut problems);
        let text = problems.into_error().to_string();
        assert!(text.contains("is not supported"), "{text}");
        assert!(text.contains("poststelle@db.example"), "{text}");
        assert!(!text.contains("geheim"), "{text}");
        for url in ["sqlite://var/p.db", "postgres://u:pw@127.0.0.1:5432/p"] {
            let mut problems = Problems::new(std::path::Path::new("t.toml"), "");
            validate(
                RawStore {
                    url: url.into(),
                    blobs: "b".into(),
                },
                &mut problems,
            );
            assert!(problems.is_empty(), "{url}");
        }
    }
}
