//! Retention and erasure (DSGVO): personal data is deleted on schedule and on request.
//!
//! The purge (every `[retention] interval_minutes` in the daemon, or `poststelle purge`) deletes
//! the content of delivered documents after `content_days`, of quarantined inputs after
//! `quarantine_days`, and the bodies of sent mails after `mail_days`; the files in the hot
//! folder's `processed/` and `quarantine/` folders go after the same periods. Documents waiting
//! for a person (review, dead letters) are never purged. What stays of a purged document is
//! listed in [`crate::store::retention`]; the audit trail keeps ids, states and decisions, and
//! names no person ([`crate::store::pseudonym`]).
//!
//! Erasure on request (`poststelle erase --document ID` or `--sender ADDRESS`) purges at once,
//! whatever the period, and is recorded in the audit trail.

pub mod settings;

use crate::domain::DocumentId;
use crate::store::blobs::BlobStore;
use crate::store::retention::{DueDocument, PurgeCause};
use crate::store::{Store, StoreError};
use chrono::{Duration as Days, Utc};
use serde::Serialize;
use settings::RetentionSettings;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Retention failures.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be deleted.
    #[error("deleting {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Documents whose content was (or is due to be) deleted.
    pub documents: Vec<DueDocument>,
    /// Blobs deleted from the blob directory.
    pub blobs: usize,
    /// Outgoing mails emptied.
    pub mails: u64,
    /// Quarantine entries without a document whose names and details were deleted.
    pub quarantine_entries: u64,
    /// Files deleted from the `processed/` and quarantine folders.
    pub files: Vec<PathBuf>,
}

/// The folders whose files expire: `(folder, days)`.
pub type ExpiringFolders = Vec<(PathBuf, u32)>;

/// One purge with these settings; `folders` are the hot folder's `processed/` (with
/// `content_days`) and the quarantine folder (with `quarantine_days`).
pub async fn purge(
    store: &Store,
    blobs: &BlobStore,
    settings: &RetentionSettings,
    folders: &ExpiringFolders,
    dry_run: bool,
) -> Result<PurgeReport, RetentionError> {
    let now = Utc::now();
    let before = |days: u32| crate::store::fmt_time(now - Days::days(i64::from(days)));
    let due = store
        .purge_due(
            &before(settings.content_days),
            &before(settings.quarantine_days),
        )
        .await?;
    let mut report = PurgeReport {
        dry_run,
        ..PurgeReport::default()
    };
    report.mails = store
        .purge_mail(&before(settings.mail_days), dry_run)
        .await?;
    report.quarantine_entries = store
        .purge_quarantine_entries(&before(settings.quarantine_days), dry_run)
        .await?;
    for (dir, days) in folders {
        report.files.extend(expire_files(
            dir,
            now - Days::days(i64::from(*days)),
            dry_run,
        )?);
    }
    if dry_run {
        report.documents = due;
        return Ok(report);
    }
    for d in due {
        match store
            .purge_document(&d.id, PurgeCause::Retention, "retention")
            .await
        {
            Ok(true) => report.documents.push(d),
            Ok(false) => {}
            // Changed since it was listed (e.g. forwarded): its period starts again.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    report.blobs = delete_blobs(store, blobs).await?;
    if !report.documents.is_empty() || report.blobs > 0 || !report.files.is_empty() {
        tracing::info!(
            documents = report.documents.len(),
            blobs = report.blobs,
            mails = report.mails,
            files = report.files.len(),
            "retention: personal data deleted"
        );
    }
    Ok(report)
}

/// Erases one document now (an erasure request); false when it was erased before.
pub async fn erase_document(
    store: &Store,
    blobs: &BlobStore,
    id: &DocumentId,
    actor: &str,
) -> Result<bool, RetentionError> {
    let done = store.purge_document(id, PurgeCause::Erasure, actor).await?;
    delete_blobs(store, blobs).await?;
    Ok(done)
}

/// Erases every document of the sender with this e-mail address; returns the documents
/// erased now. A request that finds nothing is recorded too.
pub async fn erase_sender(
    store: &Store,
    blobs: &BlobStore,
    address: &str,
    actor: &str,
) -> Result<Vec<DocumentId>, RetentionError> {
    let ids = store.documents_of_sender(address).await?;
    let mut erased = Vec::new();
    for id in &ids {
        if store.purge_document(id, PurgeCause::Erasure, actor).await? {
            erased.push(id.clone());
        }
    }
    if ids.is_empty() {
        store.record_erasure_request(actor, 0).await?;
    }
    delete_blobs(store, blobs).await?;
    Ok(erased)
}

/// Deletes the blobs listed for deletion that no document refers to any more.
async fn delete_blobs(store: &Store, blobs: &BlobStore) -> Result<usize, RetentionError> {
    let listed = store.blob_deletions().await?;
    if listed.is_empty() {
        return Ok(0);
    }
    let _exclusive = blobs.exclusive().await;
    let mut n = 0;
    for sha in listed {
        if !store.blob_in_use(&sha).await?
            && blobs.remove(&sha).map_err(|source| RetentionError::Io {
                path: blobs.path(&sha),
                source,
            })?
        {
            n += 1;
        }
        store.blob_deleted(&sha).await?;
    }
    Ok(n)
}

/// Deletes (or lists, dry) the files directly in `dir` last modified before `before`.
fn expire_files(
    dir: &Path,
    before: chrono::DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<PathBuf>, RetentionError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RetentionError::Io { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let cutoff = std::time::SystemTime::from(before);
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.modified().map_or(true, |m| m >= cutoff) {
            continue;
        }
        if !dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// The daemon's purge loop: one purge at start, then every `settings.interval`.
pub async fn run(
    store: Store,
    blobs: BlobStore,
    settings: RetentionSettings,
    folders: ExpiringFolders,
    cancel: CancellationToken,
) {
    loop {
        if let Err(e) = purge(&store, &blobs, &settings, &folders, false).await {
            tracing::error!(error = %e, "retention purge failed; retried at the next interval");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_older_than_the_period_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("alt.pdf");
        let new = dir.path().join("neu.pdf");
        std::fs::write(&old, b"a").expect("write");
        std::fs::write(&new, b"b").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&old)
            .expect("open");
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400))
            .expect("mtime");
        let before = Utc::now() - Days::days(2);
        let listed = expire_files(dir.path(), before, true).expect("dry");
        assert_eq!(listed, vec![old.clone()]);
        assert!(old.exists(), "a dry run deletes nothing");
        let deleted = expire_files(dir.path(), before, false).expect("purge");
        assert_eq!(deleted, vec![old.clone()]);
        assert!(!old.exists() && new.exists());
        assert!(
            expire_files(&dir.path().join("fehlt"), before, false)
                .expect("missing dir")
                .is_empty()
        );
    }
}
