//! Content-addressed blob storage: `<root>/<first two hex digits>/<sha256>`.
//!
//! A blob is written to a temporary file of its own (`<root>/.incoming/<uuid>.tmp`), hashed
//! while it is written, fsynced, renamed into place and its directory fsynced, so a blob that
//! exists is complete. Writing the same bytes twice is a no-op. Large inputs (a hot-folder file,
//! an upload) are streamed through an [`Incoming`] blob: memory stays bounded whatever the size.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The directory below the blob root that holds blobs still being written.
const INCOMING_DIR: &str = ".incoming";
/// Bytes of the start of an incoming blob kept in memory (format detection).
pub const HEAD_BYTES: usize = 64 * 1024;
/// Size of the buffer a file is copied through.
const COPY_BUFFER: usize = 64 * 1024;

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Writers that store a blob and then the row that refers to it hold this shared; the
    /// purge holds it exclusively while it checks that a blob is unreferenced and deletes it,
    /// so it never deletes a blob whose row is about to be committed.
    gc: std::sync::Arc<tokio::sync::RwLock<()>>,
}

/// The SHA-256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Errors of [`BlobStore::copy_file`].
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source holds more than the limit (it may have grown since it was measured).
    #[error("more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl BlobStore {
    /// Opens (and creates) the store at `root`. Its directories (`.incoming` and the 256
    /// prefix directories) are made here, each new one with its parent fsynced, so that a
    /// commit never creates a directory while another commit renames into it.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        create_dir_synced(&root.join(INCOMING_DIR))?;
        for prefix in 0..=255u8 {
            create_dir_synced(&root.join(hex::encode([prefix])))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            gc: Default::default(),
        })
    }

    /// Held (shared) from storing a blob until the row that refers to it is committed.
    pub async fn hold(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gc.clone().read_owned().await
    }

    /// Held (exclusively) by the purge while it deletes unreferenced blobs.
    pub async fn exclusive(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.gc.clone().write_owned().await
    }

    /// Deletes a blob; false when it was not there. Call with [`BlobStore::exclusive`] held,
    /// after checking that no row refers to it.
    pub fn remove(&self, sha256: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path(sha256)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where the blob with this hash lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        blob_path(&self.root, sha256)
    }

    /// Stores bytes durably and returns their hash.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = sha256_hex(bytes);
        if self.path(&sha).exists() {
            return Ok(sha);
        }
        let mut incoming = self.incoming()?;
        incoming.write(bytes)?;
        incoming.commit()
    }

    /// Starts a blob that is written piece by piece (and hashed on the way); see [`Incoming`].
    pub fn incoming(&self) -> std::io::Result<Incoming> {
        let dir = self.root.join(INCOMING_DIR);
        create_dir_synced(&dir)?;
        // A name of its own for every writer (a v7 UUID: time, a per-process counter and
        // random bits), so that concurrent writers of the same bytes never share a temporary
        // file; `create_new` refuses a name that exists all the same.
        let tmp = dir.join(format!("{}.tmp", uuid::Uuid::now_v7()));
        let file = std::fs::File::create_new(&tmp)?;
        Ok(Incoming {
            root: self.root.clone(),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
            head: Vec::new(),
            saw_nul: false,
        })
    }

    /// Copies the file at `from` into an [`Incoming`] blob through a small buffer, at most
    /// `limit` bytes: a file that turns out larger (it grew after it was measured) is refused
    /// without reading more than `limit + 1` bytes of it.
    pub fn copy_file(&self, from: &Path, limit: u64) -> Result<Incoming, CopyError> {
        let mut source = std::fs::File::open(from)?;
        let mut incoming = self.incoming()?;
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if incoming.len() + n as u64 > limit {
                return Err(CopyError::TooLarge { limit });
            }
            incoming.write(&buf[..n])?;
        }
        Ok(incoming)
    }

    /// Removes blobs left half-written by a crash (`.incoming/`). Only the daemon, which holds
    /// the data lock, calls this: a command running beside it could be writing one.
    pub fn remove_stale_incoming(&self) -> std::io::Result<usize> {
        let dir = self.root.join(INCOMING_DIR);
        let mut removed = 0;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reads a blob back.
    pub fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(sha256))
    }
}

/// A blob being written: every piece is hashed and counted on its way to a temporary file; the
/// first [`HEAD_BYTES`] are kept for format detection. [`Incoming::commit`] makes it a blob;
/// dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct Incoming {
    root: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    hasher: Sha256,
    len: u64,
    head: Vec<u8>,
    saw_nul: bool,
}

impl Incoming {
    /// Appends a piece.
    pub fn write(&mut self, piece: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("incoming blob already closed"))?;
        file.write_all(piece)?;
        self.hasher.update(piece);
        self.len += piece.len() as u64;
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..take]);
        }
        self.saw_nul |= piece.contains(&0);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first [`HEAD_BYTES`] bytes (fewer for a smaller blob).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether any byte so far was NUL (a text file has none).
    pub fn saw_nul(&self) -> bool {
        self.saw_nul
    }

    /// The SHA-256 of the bytes written so far, as lowercase hex.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Where the bytes are while the blob is written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Makes it a blob: fsync, rename into place (or drop it when the blob exists already),
    /// fsync the directories. Returns the hash.
    pub fn commit(mut self) -> std::io::Result<String> {
        let sha = self.sha256();
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("incoming blob already closed"))?;
        let path = blob_path(&self.root, &sha);
        if path.exists() {
            drop(file);
            std::fs::remove_file(&self.tmp)?;
            return Ok(sha);
        }
        file.sync_all()?;
        drop(file);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        // Made by `open`; again here (durably) if someone removed it since.
        create_dir_synced(&dir)?;
        std::fs::rename(&self.tmp, &path)?;
        sync_dir(&dir)?;
        Ok(sha)
    }

    /// Moves the bytes to `to` instead of the blob store (a refused upload goes to quarantine);
    /// fsynced, the target's directory too.
    pub fn persist_to(mut self, to: &Path) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        crate::intake::move_file(&self.tmp, to)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.file.take();
        // Gone already after a commit or a move; else a refused or broken-off blob.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Where the blob with this hash lives under `root`.
fn blob_path(root: &Path, sha256: &str) -> PathBuf {
    let prefix = sha256.get(..2).unwrap_or("00");
    root.join(prefix).join(sha256)
}

/// fsyncs a directory so that a file created, renamed or removed in it stays so after a
/// crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // `Path::parent` of a relative single name is "": the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

/// `create_dir_all` that lasts: every directory it creates has its parent fsynced afterwards
/// (also when another writer created it at the same moment), so a file fsynced into a new
/// directory is not lost with the directory's entry after a crash.
pub fn create_dir_synced(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
    for d in missing.into_iter().rev() {
        if d.as_os_str().is_empty() {
            continue;
        }
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A file in the way: as `create_dir_all`, the next level fails with "Not a
                // directory" (or this error when it is the directory asked for).
                if !d.is_dir() {
                    if d == dir {
                        return Err(e);
                    }
                    continue;
                }
            }
            Err(e) => return Err(e),
        }
        sync_dir(d.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let a = store.put(b"hallo").expect("put");
        let b = store.put(b"hallo").expect("put again");
        assert_eq!(a, b);
        assert_eq!(a, sha256_hex(b"hallo"));
        assert_eq!(store.get(&a).expect("get"), b"hallo");
        assert!(store.path(&a).starts_with(dir.path().join(&a[..2])));
    }

    /// Many writers at once, of the same bytes and of different ones, each streamed in pieces
    /// so that their temporary files are open side by side: every put succeeds, every blob
    /// holds its bytes, and no temporary file is left.
    #[test]
    fn concurrent_blob_puts_use_temporary_files_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&dir.path().join("blobs")).expect("open");
        let shared: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let start = std::sync::Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16u8)
            .map(|t| {
                let (store, shared, start) = (store.clone(), shared.clone(), start.clone());
                std::thread::spawn(move || {
                    let own: Vec<u8> = shared.iter().map(|b| b ^ (t + 1)).collect();
                    start.wait();
                    let mut out = Vec::new();
                    for _ in 0..5 {
                        for bytes in [&shared, &own] {
                            let mut incoming = store.incoming().expect("incoming");
                            for piece in bytes.chunks(4096) {
                                incoming.write(piece).expect("write");
                                std::thread::yield_now();
                            }
                            out.push((incoming.commit().expect("commit"), bytes.clone()));
                        }
                        out.push((store.put(&shared).expect("put"), shared.clone()));
                    }
                    out
                })
            })
            .collect();
        let mut blobs = std::collections::BTreeMap::new();
        for t in threads {
            for (sha, bytes) in t.join().expect("writer") {
                assert_eq!(sha, sha256_hex(&bytes));
                blobs.insert(sha, bytes);
            }
        }
        assert_eq!(blobs.len(), 17, "the shared blob and one per writer");
        for (sha, bytes) in &blobs {
            assert_eq!(&store.get(sha).expect("get"), bytes, "{sha}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs/.incoming"))
            .expect("incoming dir")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn directories_are_created_with_their_parents_even_side_by_side() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let deep = deep.clone();
                std::thread::spawn(move || create_dir_synced(&deep.join(format!("d{}", i % 2))))
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("created");
        }
        assert!(deep.join("d0").is_dir() && deep.join("d1").is_dir());
        create_dir_synced(&deep).expect("exists already");
        std::fs::write(dir.path().join("file"), b"x").expect("file");
        let e = create_dir_synced(&dir.path().join("file/sub")).expect_err("a file in the way");
        assert_eq!(e.kind(), std::io::ErrorKind::NotADirectory, "{e}");
        let e = create_dir_synced(&dir.path().join("file")).expect_err("a file");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
        // The prefix directories are there from the start.
        let store = dir.path().join("store");
        BlobStore::open(&store).expect("open");
        assert!(store.join("00").is_dir() && store.join("ff").is_dir());
        assert!(store.join(INCOMING_DIR).is_dir());
    }

    #[test]
    fn a_streamed_blob_is_hashed_on_the_way_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&dir.path().join("blobs")).expect("open");
        let source = dir.path().join("scan.pdf");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).expect("write");
        let incoming = store.copy_file(&source, 1 << 20).expect("copy");
        assert_eq!(incoming.len(), bytes.len() as u64);
        assert_eq!(incoming.head(), &bytes[..HEAD_BYTES]);
        assert!(incoming.saw_nul());
        let sha = incoming.commit().expect("commit");
        assert_eq!(sha, sha256_hex(&bytes));
        assert_eq!(store.get(&sha).expect("get"), bytes);
        // The same bytes again: no second file, the temporary one gone.
        store
            .copy_file(&source, 1 << 20)
            .expect("copy")
            .commit()
            .expect("commit again");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs/.incoming"))
            .expect("incoming dir")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // Over the limit: refused, nothing left behind.
        assert!(matches!(
            store.copy_file(&source, 1000),
            Err(CopyError::TooLarge { limit: 1000 })
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/.incoming"))
                .expect("incoming dir")
                .count(),
            0
        );
    }
}
