//! The scanner hot folder: watched (inotify), scanned at start and rescanned periodically
//! (watchers miss events on network shares). A file is taken only when its size and mtime have
//! stayed the same for the settle time; its bytes and row are committed before it is moved to
//! `processed/`. A crash between the two leaves the file in the inbox; the next run recognises
//! the bytes (SHA-256) and only moves it. A file in the batch folder (`stapel/`) is a stack of
//! letters: committed as a stack the same way, then split by the pipeline.

use super::settings::HotFolderSettings;
use super::{BatchOutcome, Intake, Outcome, QuarantineSource, move_file, unique_path};
use crate::faults::{pause_point, points};
use notify::Watcher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};
use tokio_util::sync::CancellationToken;

const SOURCE: &str = "hot_folder";

/// The hot-folder source.
#[derive(Debug)]
pub struct HotFolder {
    settings: HotFolderSettings,
    intake: Intake,
    /// path -> (size, mtime, first seen with these values)
    seen: HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
}

impl HotFolder {
    /// Creates the source (and its folders).
    pub fn new(settings: HotFolderSettings, intake: Intake) -> std::io::Result<Self> {
        for d in [&settings.inbox, &settings.processed, &settings.quarantine]
            .into_iter()
            .chain(settings.batch_folder.as_ref())
        {
            crate::store::blobs::create_dir_synced(d)?;
        }
        Ok(Self {
            settings,
            intake,
            seen: HashMap::new(),
        })
    }

    /// Runs until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.as_ref().map_or(true, |e| announces_a_file(&e.kind)) {
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&self.settings.inbox, notify::RecursiveMode::NonRecursive)?;
            if let Some(b) = &self.settings.batch_folder {
                w.watch(b, notify::RecursiveMode::NonRecursive)?;
            }
            Ok(w)
        });
        if let Err(e) = &watcher {
            tracing::warn!(error = %e, "hot folder watcher unavailable; relying on periodic rescans");
        }
        tracing::info!(inbox = %self.settings.inbox.display(), "watching hot folder");
        // Re-check often while files are settling, otherwise at the rescan interval.
        let tick = self
            .settings
            .settle
            .clamp(std::time::Duration::from_millis(100), self.settings.rescan)
            / 2;
        let mut last_full = Instant::now() - self.settings.rescan;
        loop {
            if last_full.elapsed() >= self.settings.rescan || !self.seen.is_empty() {
                last_full = Instant::now();
                if self.scan().await && !cancel.is_cancelled() {
                    // Settled files are still waiting: look again at once (a file that
                    // arrived meanwhile is seen, and may be taken, in the next pass).
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(()) = rx.recv() => {
                    // Drain the burst, then look.
                    while rx.try_recv().is_ok() {}
                    self.scan().await;
                }
                _ = tokio::time::sleep(self.next_look(tick)) => {}
            }
        }
        drop(watcher);
    }

    /// How long to wait before the next pass: until the first file seen settles (so a letter
    /// is taken right when its settle time has passed, not up to a tick later), at most `tick`.
    fn next_look(&self, tick: std::time::Duration) -> std::time::Duration {
        let settles = self
            .seen
            .values()
            .map(|(_, _, since)| {
                (*since + self.settings.settle).saturating_duration_since(Instant::now())
            })
            .min();
        settles.unwrap_or(tick).clamp(
            std::time::Duration::from_millis(5),
            tick.max(std::time::Duration::from_millis(50)),
        )
    }

    /// One pass over the inbox: take settled files, at most [`TAKE_PER_PASS`] of them: the
    /// newest first, then the oldest. A scanner that dumps a stack of a thousand files is taken
    /// in short passes, and a letter dropped meanwhile is taken within a pass or two instead of
    /// after the whole stack. Returns whether settled files are left for the next pass.
    pub async fn scan(&mut self) -> bool {
        let mut entries = match std::fs::read_dir(&self.settings.inbox) {
            Ok(e) => e.flatten().map(|e| (e, false)).collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read inbox");
                return false;
            }
        };
        // Stacks: the batch folder's files.
        if let Some(dir) = &self.settings.batch_folder {
            match std::fs::read_dir(dir) {
                Ok(e) => entries.extend(e.flatten().map(|e| (e, true))),
                Err(e) => tracing::error!(error = %e, "cannot read the batch folder"),
            }
        }
        let mut settled = Vec::new();
        let mut present = Vec::new();
        for (entry, batch) in entries {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            // Scanner software writes temporary names first; hidden files are not ours.
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            present.push(path.clone());
            let key = (meta.len(), meta.modified().ok());
            let now = Instant::now();
            match self.seen.get(&path) {
                Some((len, mtime, since)) if (*len, *mtime) == key => {
                    if now.duration_since(*since) >= self.settings.settle {
                        // Ordered by when the file was first seen here: its arrival (a
                        // renamed file keeps an older modification time).
                        settled.push((*since, name, path, batch));
                    }
                }
                _ => {
                    self.seen.insert(path, (key.0, key.1, now));
                }
            }
        }
        let present: std::collections::HashSet<PathBuf> = present.into_iter().collect();
        self.seen.retain(|p, _| present.contains(p));
        settled.sort();
        let left = settled.len() > TAKE_PER_PASS;
        let newest = if left { settled.pop() } else { None };
        for (since, name, path, batch) in newest.into_iter().chain(settled).take(TAKE_PER_PASS) {
            self.seen.remove(&path);
            let arrived = chrono::Utc::now()
                - chrono::Duration::from_std(since.elapsed()).unwrap_or_default();
            if batch {
                self.take_batch(&path, &name, arrived).await;
            } else {
                self.take(&path, &name, arrived).await;
            }
        }
        left
    }

    /// Takes one settled file. Its size is looked at first: a file over the limit goes to
    /// the quarantine (reason file first, then the file moved) without a byte of it read. Any
    /// other file is copied into the blob store through a small buffer and hashed on the way,
    /// so the daemon's memory does not grow with the file.
    async fn take(&self, path: &Path, name: &str, arrived: chrono::DateTime<chrono::Utc>) {
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot look at file yet; will retry");
                return;
            }
        };
        let outcome = match self
            .intake
            .ingest_file(
                SOURCE,
                name,
                path,
                size,
                self.settings.max_file_bytes,
                arrived,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                // Local trouble (database, disk): leave the file where it is and retry later.
                tracing::error!(file = %path.display(), error = %e, "could not commit; file stays in inbox");
                return;
            }
        };
        match outcome {
            Outcome::New(id) => {
                pause_point(points::AFTER_COMMIT).await;
                tracing::info!(file = name, document = %id, "scan received");
                self.move_processed(path, name);
            }
            Outcome::Duplicate(id) => {
                tracing::info!(file = name, document = %id, "same bytes received before; not filed again");
                self.move_processed(path, name);
            }
            Outcome::Retried(id) => {
                tracing::info!(file = name, document = %id, "same bytes as a quarantined document; it is read again");
                self.move_processed(path, name);
            }
            Outcome::Quarantined(reason) => {
                tracing::warn!(file = name, %reason, "quarantined");
                if let Err(e) = self
                    .intake
                    .quarantine(SOURCE, name, &reason, "", QuarantineSource::Move(path))
                    .await
                {
                    tracing::error!(file = name, error = %e, "could not quarantine; file stays in inbox");
                }
            }
        }
    }

    /// Takes one settled stack: committed as a stack (original kept, split by the pipeline)
    /// before it is moved, like a letter.
    async fn take_batch(&self, path: &Path, name: &str, arrived: chrono::DateTime<chrono::Utc>) {
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot look at stack yet; will retry");
                return;
            }
        };
        let outcome = match self
            .intake
            .ingest_batch_file(
                SOURCE,
                name,
                path,
                size,
                self.settings.max_file_bytes,
                arrived,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "could not commit stack; file stays in the batch folder");
                return;
            }
        };
        match outcome {
            BatchOutcome::New(id) => {
                pause_point(points::AFTER_COMMIT).await;
                tracing::info!(file = name, batch = id, "stack received");
                self.move_processed(path, name);
            }
            BatchOutcome::Duplicate(id) => {
                tracing::info!(
                    file = name,
                    batch = id,
                    "same stack received before; not split again"
                );
                self.move_processed(path, name);
            }
            BatchOutcome::Quarantined(reason) => {
                tracing::warn!(file = name, %reason, "stack quarantined");
                if let Err(e) = self
                    .intake
                    .quarantine(SOURCE, name, &reason, "", QuarantineSource::Move(path))
                    .await
                {
                    tracing::error!(file = name, error = %e, "could not quarantine; file stays in the batch folder");
                }
            }
        }
    }

    fn move_processed(&self, path: &Path, name: &str) {
        let target = unique_path(&self.settings.processed, name);
        if let Err(e) = move_file(path, &target) {
            // Committed already: the next scan recognises the bytes and moves it then.
            tracing::error!(file = %path.display(), error = %e, "could not move to processed");
        }
    }
}

/// Files taken in one pass over the inbox at most (see [`HotFolder::scan`]).
const TAKE_PER_PASS: usize = 16;

/// Whether a watcher event can mean a new or changed file in the inbox. Reading the inbox
/// (the scan opens the directory and the files it takes) produces access events; reacting to
/// those would make every scan trigger the next one, a loop that keeps a core busy.
fn announces_a_file(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Remove(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode,
    };

    #[test]
    fn only_events_that_can_bring_a_file_wake_the_scan() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(announces_a_file(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!announces_a_file(&kind), "{kind:?}");
        }
    }

    #[tokio::test]
    async fn an_idle_hot_folder_does_not_keep_scanning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(e) = res {
                let _ = tx.send(e.kind);
            }
        })
        .expect("watcher");
        watcher
            .watch(dir.path(), notify::RecursiveMode::NonRecursive)
            .expect("watch");
        std::fs::write(dir.path().join("brief.pdf"), b"%PDF-").expect("write");
        // What a scan does: list the directory and read the file.
        let _ = std::fs::read_dir(dir.path()).expect("list").count();
        let _ = std::fs::read(dir.path().join("brief.pdf")).expect("read");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut waking = Vec::new();
        let mut seen = 0;
        while let Ok(kind) = rx.try_recv() {
            seen += 1;
            if announces_a_file(&kind) {
                waking.push(kind);
            }
        }
        assert!(seen > 0, "the watcher reports");
        assert!(!waking.is_empty(), "writing the file wakes the scan");
        assert!(
            waking
                .iter()
                .all(|k| !matches!(k, EventKind::Access(AccessKind::Open(_) | AccessKind::Read))),
            "{waking:?}"
        );
        // Reading alone (a scan that takes nothing) wakes nothing.
        let _ = std::fs::read_dir(dir.path()).expect("list").count();
        let _ = std::fs::read(dir.path().join("brief.pdf")).expect("read");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut after = Vec::new();
        while let Ok(kind) = rx.try_recv() {
            after.push(kind);
        }
        assert!(!after.is_empty(), "reading is reported: {after:?}");
        assert!(
            after.iter().all(|k| !announces_a_file(k)),
            "a scan that only reads must not wake the next scan: {after:?}"
        );
    }
}
