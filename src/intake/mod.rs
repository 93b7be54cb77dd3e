//! Intake: scanner hot folder and uploads. Every source acknowledges its input (moves the file,
//! answers the upload) only after the bytes and the row are committed ([`Intake::ingest`]).

pub mod hot_folder;
pub mod imap;
pub mod settings;

use crate::extract::{ExtractError, sniff};
use crate::store::blobs::{BlobStore, sync_dir};
use crate::store::{Inserted, NewDocument, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;

/// What became of an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new document, committed.
    New(crate::domain::DocumentId),
    /// The same bytes arrived before as this document.
    Duplicate(crate::domain::DocumentId),
    /// Refused with a German reason (and a quarantine entry).
    Quarantined(String),
}

/// Intake errors (local trouble, not the input's fault: the input is kept and retried).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared intake logic: commit bytes and row, or quarantine.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Store.
    pub store: Store,
    /// Blob storage.
    pub blobs: BlobStore,
    /// Quarantine directory (files plus `<name>.reason.txt`).
    pub quarantine_dir: PathBuf,
    /// Wakes the pipeline when a document arrives.
    pub wake: Arc<Notify>,
}

impl Intake {
    /// Commits an input: format check, blob, row (one transaction). Returns only after the
    /// commit, so the caller may then acknowledge its source.
    pub async fn ingest(
        &self,
        source: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<Outcome, IntakeError> {
        self.ingest_by(source, source, name, bytes, max_bytes).await
    }

    /// Like [`Intake::ingest`], for a file that reached its source at `arrived` (first seen in
    /// the hot folder), before this commit.
    pub async fn ingest_arrived(
        &self,
        source: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
        arrived: chrono::DateTime<chrono::Utc>,
    ) -> Result<Outcome, IntakeError> {
        self.commit(source, source, name, bytes, max_bytes, Some(arrived))
            .await
    }

    /// Like [`Intake::ingest`], with the person or machine that handed the file in as the
    /// `received` event's actor (an upload's account).
    pub async fn ingest_by(
        &self,
        source: &str,
        actor: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<Outcome, IntakeError> {
        self.commit(source, actor, name, bytes, max_bytes, None)
            .await
    }

    async fn commit(
        &self,
        source: &str,
        actor: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
        arrived_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Outcome, IntakeError> {
        if bytes.len() as u64 > max_bytes {
            let reason = format!(
                "Die Datei ist mit {} MB größer als die erlaubten {} MB.",
                bytes.len() / (1024 * 1024),
                max_bytes / (1024 * 1024)
            );
            return Ok(Outcome::Quarantined(reason));
        }
        let media = match sniff(bytes, name) {
            Ok(m) => m,
            Err(e) => return Ok(Outcome::Quarantined(e.reason_de())),
        };
        let blobs = self.blobs.clone();
        let owned = bytes.to_vec();
        // Until the row is committed, the purge must not take the blob for an orphan.
        let _blob = self.blobs.hold().await;
        let sha = tokio::task::spawn_blocking(move || blobs.put(&owned))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let inserted = self
            .store
            .insert_received(
                &NewDocument {
                    sha256: sha,
                    source: source.to_string(),
                    original_name: name.to_string(),
                    media_type: media.mime().to_string(),
                    size_bytes: bytes.len() as i64,
                    arrived_at,
                },
                actor,
            )
            .await?;
        self.wake.notify_one();
        Ok(match inserted {
            Inserted::New(id) => Outcome::New(id),
            Inserted::Duplicate(id) => Outcome::Duplicate(id),
        })
    }

    /// An upload (API or the desk's Hochladen page) by `actor`: committed like every input, or,
    /// when refused, quarantined with its bytes and reason before this returns.
    pub async fn upload(
        &self,
        actor: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<Outcome, IntakeError> {
        let outcome = self
            .ingest_by("upload", actor, name, bytes, max_bytes)
            .await?;
        if let Outcome::Quarantined(reason) = &outcome {
            self.quarantine("upload", name, reason, "", None, Some(bytes))
                .await?;
        }
        Ok(outcome)
    }

    /// Records a refused input: store row plus `<name>` and `<name>.reason.txt` in the
    /// quarantine folder. `original` is moved there if given, else `bytes` are written.
    pub async fn quarantine(
        &self,
        source: &str,
        name: &str,
        reason: &str,
        detail: &str,
        original: Option<&Path>,
        bytes: Option<&[u8]>,
    ) -> Result<PathBuf, IntakeError> {
        let target = write_quarantine(&self.quarantine_dir, name, reason, original, bytes)?;
        self.store
            .quarantine_input(
                source,
                name,
                reason,
                detail,
                Some(&target.display().to_string()),
            )
            .await?;
        Ok(target)
    }
}

/// Puts a file into the quarantine folder with its reason; returns the file's path there.
pub fn write_quarantine(
    dir: &Path,
    name: &str,
    reason: &str,
    original: Option<&Path>,
    bytes: Option<&[u8]>,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = unique_path(dir, &safe_name(name));
    match (original, bytes) {
        (Some(p), _) => move_file(p, &target)?,
        (None, Some(b)) => std::fs::write(&target, b)?,
        (None, None) => {}
    }
    let mut reason_path = target.clone().into_os_string();
    reason_path.push(".reason.txt");
    std::fs::write(
        &reason_path,
        format!(
            "Datei: {name}\nZeitpunkt: {}\nGrund: {reason}\n",
            crate::store::now_str()
        ),
    )?;
    sync_dir(dir)?;
    Ok(target)
}

/// Longest file name [`safe_name`] returns, in bytes: room for a document id prefix, a
/// counter and the `.reason.txt` suffix within the usual 255-byte limit of file systems.
pub const MAX_NAME_BYTES: usize = 160;

/// A file name without path parts or control characters, at most [`MAX_NAME_BYTES`] long
/// (a longer one is shortened in the middle, its extension kept).
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        return "datei".into();
    }
    if cleaned.len() <= MAX_NAME_BYTES {
        return cleaned;
    }
    let ext = match cleaned.rfind('.') {
        Some(i) if cleaned.len() - i <= 16 => &cleaned[i..],
        _ => "",
    };
    let mut stem_end = MAX_NAME_BYTES - ext.len() - 1;
    while !cleaned.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}~{ext}", &cleaned[..stem_end])
}

/// `dir/name`, or `dir/<n>-name` if that is taken.
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{n}-{name}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Moves a file (rename, or copy + remove across file systems) and syncs the target dir.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to)?;
        std::fs::File::open(to)?.sync_all()?;
        std::fs::remove_file(from)?;
    }
    if let Some(d) = to.parent() {
        sync_dir(d)?;
    }
    Ok(())
}

impl From<ExtractError> for Outcome {
    fn from(e: ExtractError) -> Self {
        Outcome::Quarantined(e.reason_de())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_file_name_is_shortened_with_its_extension_kept() {
        let long = format!("{}.pdf", "ä".repeat(115)); // 230 bytes of stem
        let s = safe_name(&long);
        assert!(s.len() <= MAX_NAME_BYTES, "{}", s.len());
        assert!(s.ends_with("~.pdf"), "{s}");
        assert!(s.starts_with("ää"), "{s}");
        // Room for "<uuid>-" in front and ".reason.txt" behind within 255 bytes.
        assert!(36 + 1 + s.len() + ".reason.txt".len() <= 255);
        assert_eq!(safe_name("../scan 1.pdf"), "scan 1.pdf");
        assert_eq!(safe_name(".."), "datei");
        let no_ext = "x".repeat(300);
        assert_eq!(safe_name(&no_ext).len(), MAX_NAME_BYTES);
    }
}
