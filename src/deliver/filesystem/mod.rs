//! The embedded default target: `<root>/<mailbox-id>/<document-id>.<ext>` plus
//! `<document-id>.json` (metadata, decision, explanation).
//!
//! Both files are written to temporary names, fsynced and renamed; the sidecar comes last, so
//! its presence means the document is complete. The same document id always maps to the same
//! names: a retried delivery overwrites, never duplicates. A document re-assigned to another
//! mailbox is removed from the old one after the new copy is in place (a forward is a move).

mod settings;
pub use settings::{FilesystemSettings, RawFilesystem};

use super::{CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt};
use crate::store::blobs::{create_dir_synced, sync_dir};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Filesystem target.
#[derive(Debug, Clone)]
pub struct FilesystemTarget {
    name: String,
    root: PathBuf,
}

impl FilesystemTarget {
    /// A target rooted at `root`.
    pub fn new(name: &str, root: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            root,
        }
    }

    fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(name))
    }

    fn deliver_sync(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        let io =
            |e: std::io::Error| DeliveryError::Retriable(format!("{}: {e}", self.root.display()));
        let dir = self.root.join(item.mailbox.as_str());
        // A new mailbox directory (and root) is synced into its parent: else a crash could
        // lose the directory with the document that was reported delivered.
        create_dir_synced(&dir).map_err(io)?;
        let id = item.document_id.as_str();
        let doc_name = format!("{id}.{}", item.extension);
        let sidecar_name = format!("{id}.json");
        let sidecar = serde_json::to_vec_pretty(&item.sidecar)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let already_present = std::fs::read(dir.join(&doc_name)).is_ok_and(|b| b == item.bytes)
            && std::fs::read(dir.join(&sidecar_name)).is_ok_and(|b| b == sidecar);
        if !already_present {
            Self::write_atomic(&dir, &doc_name, &item.bytes).map_err(io)?;
            Self::write_atomic(&dir, &sidecar_name, &sidecar).map_err(io)?;
            sync_dir(&dir).map_err(io)?;
        }
        // A forward: remove the document from any other mailbox of this target.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let other = e.path();
                if other == dir || !other.is_dir() {
                    continue;
                }
                let mut removed = false;
                for n in [&doc_name, &sidecar_name] {
                    let p = other.join(n);
                    if p.exists() {
                        std::fs::remove_file(&p).map_err(io)?;
                        removed = true;
                    }
                }
                // The removal lasts, or after a crash the document is in two mailboxes.
                if removed {
                    sync_dir(&other).map_err(io)?;
                }
            }
        }
        Ok(Receipt {
            reference: format!("{}/{}", item.mailbox, doc_name),
            already_present,
        })
    }

    /// The root exists (or can be made) and a file can be written to it and removed again.
    fn check_sync(&self) -> Result<(), DeliveryError> {
        let fail = |what: &str, e: std::io::Error| {
            DeliveryError::Retriable(format!("{}: {what}: {e}", self.root.display()))
        };
        std::fs::create_dir_all(&self.root).map_err(|e| fail("cannot be created", e))?;
        let probe = self
            .root
            .join(format!(".poststelle-check-{}", std::process::id()));
        let written = std::fs::File::create(&probe)
            .and_then(|mut f| f.write_all(b"check").and_then(|()| f.sync_all()));
        let removed = std::fs::remove_file(&probe);
        written.map_err(|e| fail("not writable", e))?;
        removed.map_err(|e| fail("the check file cannot be removed", e))
    }
}

impl Delivery for FilesystemTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, item: &'a DeliveryItem) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let this = self.clone();
            let item = item.clone();
            tokio::task::spawn_blocking(move || this.deliver_sync(&item))
                .await
                .map_err(|e| DeliveryError::Retriable(format!("delivery task failed: {e}")))?
        })
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.check_sync())
                .await
                .map_err(|e| DeliveryError::Retriable(format!("check task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DocumentId, MailboxId};

    fn item(mailbox: &str) -> DeliveryItem {
        DeliveryItem {
            document_id: DocumentId::parse("01890a5d-ac96-774b-bcce-b302099a8057").expect("id"),
            mailbox: MailboxId::parse(mailbox).expect("mailbox"),
            mailbox_name: "Bauordnung".into(),
            original_name: "scan.pdf".into(),
            media_type: "application/pdf".into(),
            extension: "pdf".into(),
            bytes: b"%PDF-1.4 test".to_vec(),
            sidecar: serde_json::json!({"mailbox": mailbox}),
            metadata: Default::default(),
            clerk: None,
        }
    }

    #[tokio::test]
    async fn redelivery_is_idempotent_and_forward_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = FilesystemTarget::new("fs", dir.path().to_path_buf());
        let r1 = t.deliver(&item("63")).await.expect("first");
        assert!(!r1.already_present);
        let r2 = t.deliver(&item("63")).await.expect("again");
        assert!(r2.already_present);
        assert_eq!(
            std::fs::read_dir(dir.path().join("63"))
                .expect("dir")
                .count(),
            2
        );
        t.deliver(&item("61")).await.expect("forward");
        assert_eq!(
            std::fs::read_dir(dir.path().join("63"))
                .expect("dir")
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("61"))
                .expect("dir")
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn check_needs_a_writable_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = FilesystemTarget::new("fs", dir.path().join("new/dms"));
        t.check().await.expect("created and writable");
        assert!(dir.path().join("new/dms").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path().join("new/dms"))
                .expect("dir")
                .count(),
            0,
            "the check leaves nothing behind"
        );
        std::fs::write(dir.path().join("file"), b"x").expect("file");
        let t = FilesystemTarget::new("fs", dir.path().join("file/dms"));
        let e = t.check().await.expect_err("below a file");
        assert!(e.message().contains("cannot be created"), "{e}");
    }
}
