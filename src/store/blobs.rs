//! Content-addressed blob storage: `<root>/<first two hex digits>/<sha256>`.
//!
//! A blob is written to a temporary file, fsynced, renamed into place and its directory fsynced,
//! so a blob that exists is complete. Writing the same bytes twice is a no-op.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

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

impl BlobStore {
    /// Opens (and creates) the store at `root`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
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
        let prefix = sha256.get(..2).unwrap_or("00");
        self.root.join(prefix).join(sha256)
    }

    /// Stores bytes durably and returns their hash.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = sha256_hex(bytes);
        let path = self.path(&sha);
        if path.exists() {
            return Ok(sha);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&dir)?;
        Ok(sha)
    }

    /// Reads a blob back.
    pub fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(sha256))
    }
}

/// fsyncs a directory so a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
}
