//! Intake: scanner hot folder and uploads. Every source acknowledges its input (moves the file,
//! answers the upload) only after the bytes and the row are committed ([`Intake::ingest`]).

pub mod hot_folder;
pub mod imap;
pub mod settings;

use crate::extract::{ExtractError, MediaType, sniff};
use crate::store::blobs::{BlobStore, CopyError, Incoming, create_dir_synced, sync_dir};
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
    /// The same bytes arrived before as this document, which was quarantined: handing them in
    /// again is taken as "try again", and the document is read anew (`quarantined ->
    /// received`).
    Retried(crate::domain::DocumentId),
    /// Refused with a German reason (and a quarantine entry).
    Quarantined(String),
}

/// What became of a stack (see [`Intake::ingest_batch_file`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    /// A new stack, committed (its id).
    New(String),
    /// The same bytes arrived before as this stack.
    Duplicate(String),
    /// Refused with a German reason.
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

/// Where the bytes of a quarantined input come from.
#[derive(Debug, Clone, Copy)]
pub enum QuarantineSource<'a> {
    /// The input's own file, moved into the quarantine folder (a hot-folder file).
    Move(&'a Path),
    /// A file copied into the quarantine folder (a stored original, which stays a blob).
    Copy(&'a Path),
    /// Bytes in memory (an e-mail that was fetched).
    Bytes(&'a [u8]),
    /// No bytes, only the reason (an e-mail too large to fetch).
    Nothing,
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

/// What [`Intake::commit_incoming`] made of a streamed input.
#[derive(Debug)]
pub enum Committed {
    /// Committed (new, duplicate or re-read): the source may be acknowledged.
    Done(Outcome),
    /// Refused with a German reason; the bytes are still in the incoming blob, for the
    /// quarantine.
    Refused(String, Incoming),
}

/// The German reason for an input larger than allowed.
pub fn too_large_reason(size: u64, max_bytes: u64) -> String {
    format!(
        "Die Datei ist mit {} MB größer als die erlaubten {} MB.",
        size.div_ceil(1024 * 1024),
        max_bytes / (1024 * 1024)
    )
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

    /// Like [`Intake::ingest`], with the person or machine that handed the input in as the
    /// `received` event's actor.
    pub async fn ingest_by(
        &self,
        source: &str,
        actor: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<Outcome, IntakeError> {
        if bytes.len() as u64 > max_bytes {
            return Ok(Outcome::Quarantined(too_large_reason(
                bytes.len() as u64,
                max_bytes,
            )));
        }
        let blobs = self.blobs.clone();
        let owned = bytes.to_vec();
        let incoming = tokio::task::spawn_blocking(move || {
            let mut incoming = blobs.incoming()?;
            incoming.write(&owned)?;
            Ok::<_, std::io::Error>(incoming)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(
            match self
                .commit_incoming(source, actor, name, incoming, max_bytes, None)
                .await?
            {
                Committed::Done(o) => o,
                Committed::Refused(reason, _) => Outcome::Quarantined(reason),
            },
        )
    }

    /// A file (the hot folder's), `size` bytes by its metadata, that reached its source at
    /// `arrived`. Its size is checked before a byte is read: a file over `max_bytes` is
    /// refused unread. Otherwise it is copied into the blob store through a small buffer,
    /// hashed on the way (memory stays bounded whatever the size), and committed. A refused
    /// file is left where it is: the caller moves it into the quarantine.
    pub async fn ingest_file(
        &self,
        source: &str,
        name: &str,
        path: &Path,
        size: u64,
        max_bytes: u64,
        arrived: chrono::DateTime<chrono::Utc>,
    ) -> Result<Outcome, IntakeError> {
        if size > max_bytes {
            return Ok(Outcome::Quarantined(too_large_reason(size, max_bytes)));
        }
        let (blobs, from) = (self.blobs.clone(), path.to_path_buf());
        let copied = tokio::task::spawn_blocking(move || blobs.copy_file(&from, max_bytes))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let incoming = match copied {
            Ok(i) => i,
            // It grew after it was measured: refused like any file over the limit.
            Err(CopyError::TooLarge { .. }) => {
                let now = std::fs::metadata(path).map_or(max_bytes + 1, |m| m.len());
                return Ok(Outcome::Quarantined(too_large_reason(now, max_bytes)));
            }
            Err(CopyError::Io(e)) => return Err(e.into()),
        };
        Ok(
            match self
                .commit_incoming(source, source, name, incoming, max_bytes, Some(arrived))
                .await?
            {
                Committed::Done(o) => o,
                // The file is still in the inbox; the caller moves it into the quarantine.
                Committed::Refused(reason, _) => Outcome::Quarantined(reason),
            },
        )
    }

    /// Commits a streamed input (see [`BlobStore::incoming`]): size and format check on what
    /// was written, then blob and row. `name` is capped ([`cap_original_name`]).
    pub async fn commit_incoming(
        &self,
        source: &str,
        actor: &str,
        name: &str,
        incoming: Incoming,
        max_bytes: u64,
        arrived_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Committed, IntakeError> {
        let name = cap_original_name(name);
        if incoming.len() > max_bytes {
            let reason = too_large_reason(incoming.len(), max_bytes);
            return Ok(Committed::Refused(reason, incoming));
        }
        let media = match sniff_incoming(&incoming, &name) {
            Ok(m) => m,
            Err(e) => return Ok(Committed::Refused(e.reason_de(), incoming)),
        };
        let size = incoming.len();
        // Until the row is committed, the purge must not take the blob for an orphan.
        let _blob = self.blobs.hold().await;
        let sha = tokio::task::spawn_blocking(move || incoming.commit())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let inserted = self
            .store
            .insert_received(
                &NewDocument {
                    sha256: sha,
                    source: source.to_string(),
                    original_name: name,
                    media_type: media.mime().to_string(),
                    size_bytes: size as i64,
                    arrived_at,
                },
                actor,
            )
            .await?;
        self.wake.notify_one();
        Ok(Committed::Done(match inserted {
            Inserted::New(id) => Outcome::New(id),
            Inserted::Duplicate(id) => Outcome::Duplicate(id),
            Inserted::Retried(id) => Outcome::Retried(id),
        }))
    }

    /// A stack (a file of the hot folder's batch folder), `size` bytes by its metadata: copied
    /// into the blob store like [`Intake::ingest_file`] and committed as a stack (`batches`),
    /// which the pipeline splits into letters. Only a PDF is a stack; anything else is refused
    /// with a German reason (the caller moves it into the quarantine).
    pub async fn ingest_batch_file(
        &self,
        source: &str,
        name: &str,
        path: &Path,
        size: u64,
        max_bytes: u64,
        arrived: chrono::DateTime<chrono::Utc>,
    ) -> Result<BatchOutcome, IntakeError> {
        if size > max_bytes {
            return Ok(BatchOutcome::Quarantined(too_large_reason(size, max_bytes)));
        }
        let (blobs, from) = (self.blobs.clone(), path.to_path_buf());
        let copied = tokio::task::spawn_blocking(move || blobs.copy_file(&from, max_bytes))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let incoming = match copied {
            Ok(i) => i,
            Err(CopyError::TooLarge { .. }) => {
                let now = std::fs::metadata(path).map_or(max_bytes + 1, |m| m.len());
                return Ok(BatchOutcome::Quarantined(too_large_reason(now, max_bytes)));
            }
            Err(CopyError::Io(e)) => return Err(e.into()),
        };
        let name = cap_original_name(name);
        let media = match sniff_incoming(&incoming, &name) {
            Ok(m @ (MediaType::Pdf | MediaType::Tiff)) => m,
            Ok(_) => {
                return Ok(BatchOutcome::Quarantined(
                    "Ein Stapel muss als PDF oder mehrseitiges TIFF gescannt werden (eine \
                     Datei mit allen Seiten); diese Datei ist keins von beiden."
                        .into(),
                ));
            }
            Err(e) => return Ok(BatchOutcome::Quarantined(e.reason_de())),
        };
        let size = incoming.len();
        let _blob = self.blobs.hold().await;
        let sha = tokio::task::spawn_blocking(move || incoming.commit())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let inserted = self
            .store
            .insert_batch(
                &crate::store::batches::NewBatch {
                    sha256: sha,
                    source: source.to_string(),
                    original_name: name,
                    media_type: media.mime().to_string(),
                    size_bytes: size as i64,
                    arrived_at: Some(arrived),
                },
                source,
            )
            .await?;
        self.wake.notify_one();
        Ok(match inserted {
            crate::store::batches::BatchInserted::New(id) => BatchOutcome::New(id),
            crate::store::batches::BatchInserted::Duplicate(id) => BatchOutcome::Duplicate(id),
        })
    }

    /// An upload (API or the desk's Hochladen page) by `actor`, streamed into `incoming`:
    /// committed like every input, or, when refused, quarantined with its bytes and reason
    /// before this returns.
    pub async fn upload(
        &self,
        actor: &str,
        name: &str,
        incoming: Incoming,
        max_bytes: u64,
    ) -> Result<Outcome, IntakeError> {
        match self
            .commit_incoming("upload", actor, name, incoming, max_bytes, None)
            .await?
        {
            Committed::Done(o) => Ok(o),
            Committed::Refused(reason, incoming) => {
                let name = cap_original_name(name);
                let target = self
                    .place_quarantine(&name, &reason, |to| incoming.persist_to(to))
                    .await?;
                self.record_quarantine("upload", &name, &reason, "", &target)
                    .await?;
                Ok(Outcome::Quarantined(reason))
            }
        }
    }

    /// Records a refused input: `<name>.reason.txt` and the input's bytes in the quarantine
    /// folder (the reason first), then the store row.
    pub async fn quarantine(
        &self,
        source: &str,
        name: &str,
        reason: &str,
        detail: &str,
        bytes: QuarantineSource<'_>,
    ) -> Result<PathBuf, IntakeError> {
        let name = cap_original_name(name);
        let (dir, n, r) = (
            self.quarantine_dir.clone(),
            name.clone(),
            reason.to_string(),
        );
        let owned = match bytes {
            QuarantineSource::Move(p) => Owned::Move(p.to_path_buf()),
            QuarantineSource::Copy(p) => Owned::Copy(p.to_path_buf()),
            QuarantineSource::Bytes(b) => Owned::Bytes(b.to_vec()),
            QuarantineSource::Nothing => Owned::Nothing,
        };
        let target = tokio::task::spawn_blocking(move || {
            let src = match &owned {
                Owned::Move(p) => QuarantineSource::Move(p),
                Owned::Copy(p) => QuarantineSource::Copy(p),
                Owned::Bytes(b) => QuarantineSource::Bytes(b),
                Owned::Nothing => QuarantineSource::Nothing,
            };
            write_quarantine(&dir, &n, &r, src)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.record_quarantine(source, &name, reason, detail, &target)
            .await?;
        Ok(target)
    }

    async fn record_quarantine(
        &self,
        source: &str,
        name: &str,
        reason: &str,
        detail: &str,
        target: &Path,
    ) -> Result<(), IntakeError> {
        self.store
            .quarantine_input(
                source,
                name,
                reason,
                detail,
                Some(&target.display().to_string()),
            )
            .await?;
        Ok(())
    }

    /// The reason file, then the bytes by `place`, in the quarantine folder.
    async fn place_quarantine(
        &self,
        name: &str,
        reason: &str,
        place: impl FnOnce(&Path) -> std::io::Result<()> + Send + 'static,
    ) -> Result<PathBuf, IntakeError> {
        let (dir, n, r) = (
            self.quarantine_dir.clone(),
            name.to_string(),
            reason.to_string(),
        );
        let target = tokio::task::spawn_blocking(move || {
            let target = reserve_quarantine(&dir, &n, &r)?;
            place(&target)?;
            sync_dir(&dir)?;
            Ok::<_, std::io::Error>(target)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(target)
    }
}

enum Owned {
    Move(PathBuf),
    Copy(PathBuf),
    Bytes(Vec<u8>),
    Nothing,
}

/// The format of a streamed input, from its first bytes (as [`sniff`] reads them) and, for a
/// text file, whether any byte of the whole was NUL.
fn sniff_incoming(incoming: &Incoming, name: &str) -> Result<MediaType, ExtractError> {
    let media = sniff(incoming.head(), name)?;
    if media == MediaType::Text && incoming.saw_nul() {
        return Err(ExtractError::UnknownFormat {
            name: name.to_string(),
        });
    }
    Ok(media)
}

/// Puts an input into the quarantine folder with its reason; returns the file's path there.
/// The reason file is written (and synced) first, then the bytes are moved, copied or written
/// beside it: a crash in between leaves a reason without its file, never a file without its
/// reason (and a moved hot-folder file never without one).
pub fn write_quarantine(
    dir: &Path,
    name: &str,
    reason: &str,
    bytes: QuarantineSource<'_>,
) -> std::io::Result<PathBuf> {
    let target = reserve_quarantine(dir, name, reason)?;
    match bytes {
        QuarantineSource::Move(p) => move_file(p, &target)?,
        QuarantineSource::Copy(p) => {
            std::fs::copy(p, &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
        QuarantineSource::Bytes(b) => {
            let mut f = std::fs::File::create(&target)?;
            std::io::Write::write_all(&mut f, b)?;
            f.sync_all()?;
        }
        QuarantineSource::Nothing => {}
    }
    sync_dir(dir)?;
    Ok(target)
}

/// Chooses the quarantine path for `name` and writes its `<name>.reason.txt` (synced).
fn reserve_quarantine(dir: &Path, name: &str, reason: &str) -> std::io::Result<PathBuf> {
    create_dir_synced(dir)?;
    let name_there = safe_name(name);
    // A reason file left by a crash claims its name as well.
    let free = |p: &PathBuf| !p.exists() && !reason_path(p).exists();
    let target = std::iter::once(dir.join(&name_there))
        .chain((1..).map(|n| dir.join(format!("{n}-{name_there}"))))
        .find(free)
        .unwrap_or_else(|| dir.join(&name_there));
    let mut f = std::fs::File::create(reason_path(&target))?;
    std::io::Write::write_all(
        &mut f,
        format!(
            "Datei: {name}\nZeitpunkt: {}\nGrund: {reason}\n",
            crate::store::now_str()
        )
        .as_bytes(),
    )?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(target)
}

fn reason_path(target: &Path) -> PathBuf {
    let mut p = target.as_os_str().to_owned();
    p.push(".reason.txt");
    PathBuf::from(p)
}

/// Longest original name stored with a document or a quarantine entry, in bytes (the usual
/// file-name limit of file systems).
pub const MAX_ORIGINAL_NAME_BYTES: usize = 255;

/// An input's name as it is stored: at most [`MAX_ORIGINAL_NAME_BYTES`] bytes, cut on a
/// character boundary with its extension kept (a longer name is shortened before the
/// extension and marked with `~`).
pub fn cap_original_name(name: &str) -> String {
    cap_keeping_extension(name, MAX_ORIGINAL_NAME_BYTES)
}

fn cap_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = match name.rfind('.') {
        Some(i) if name.len() - i <= 16 && !name[i..].contains(['/', '\\']) => &name[i..],
        _ => "",
    };
    let mut stem_end = max - ext.len() - '~'.len_utf8();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}~{ext}", &name[..stem_end])
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
    cap_keeping_extension(&cleaned, MAX_NAME_BYTES)
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

/// Moves a file (rename, or copy + remove across file systems) and syncs both directories:
/// the target's first (the file is there), then the source's (it is gone).
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to)?;
        std::fs::File::open(to)?.sync_all()?;
        if let Some(d) = to.parent() {
            sync_dir(d)?;
        }
        std::fs::remove_file(from)?;
    }
    if let Some(d) = to.parent() {
        sync_dir(d)?;
    }
    if let Some(d) = from.parent() {
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
    fn an_original_name_is_capped_on_a_character_boundary_with_its_extension() {
        let long = format!("{}.pdf", "ü".repeat(300));
        let capped = cap_original_name(&long);
        assert!(capped.len() <= MAX_ORIGINAL_NAME_BYTES, "{}", capped.len());
        assert!(capped.ends_with("~.pdf"), "{capped}");
        assert!(capped.starts_with("üü"));
        assert_eq!(cap_original_name("brief.pdf"), "brief.pdf");
        let exact = "x".repeat(MAX_ORIGINAL_NAME_BYTES);
        assert_eq!(cap_original_name(&exact), exact);
        let plain = "y".repeat(1000);
        assert_eq!(cap_original_name(&plain).len(), MAX_ORIGINAL_NAME_BYTES);
    }

    #[test]
    fn the_reason_file_is_written_before_the_file_is_moved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = dir.path().join("quarantine");
        let missing = dir.path().join("gone.pdf");
        // The move fails (no such file): the reason is there already.
        let err = write_quarantine(&q, "gone.pdf", "Grund", QuarantineSource::Move(&missing));
        assert!(err.is_err());
        let reason = std::fs::read_to_string(q.join("gone.pdf.reason.txt")).expect("reason");
        assert!(reason.contains("Grund: Grund"), "{reason}");
        // The next one of that name does not take the orphaned reason's place.
        let src = dir.path().join("gone.pdf");
        std::fs::write(&src, b"x").expect("write");
        let target = write_quarantine(&q, "gone.pdf", "Zweiter", QuarantineSource::Move(&src))
            .expect("quarantine");
        assert_eq!(target, q.join("1-gone.pdf"));
        assert!(q.join("1-gone.pdf.reason.txt").exists());
    }

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
