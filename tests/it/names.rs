//! Names (issue 13): an input's name is capped wherever it enters (255 bytes, cut on a
//! character boundary, its extension kept), and a quarantined file never stands without its
//! reason: the reason file is written before the file is moved.

use poststelle::intake::{Intake, MAX_ORIGINAL_NAME_BYTES, Outcome, QuarantineSource};
use poststelle::store::Store;
use poststelle::store::blobs::BlobStore;
use std::sync::Arc;

async fn intake(dir: &std::path::Path) -> Intake {
    let store = Store::open(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .expect("store");
    Intake {
        store,
        blobs: BlobStore::open(&dir.join("blobs")).expect("blobs"),
        quarantine_dir: dir.join("quarantine"),
        wake: Arc::new(tokio::sync::Notify::new()),
    }
}

/// A 1,000-byte name (umlauts, so the cut must fall between characters) is stored capped with
/// its extension, for a document and for a quarantine entry; the quarantined file's name fits
/// the file system with its reason file.
#[tokio::test]
async fn an_overlong_original_name_is_capped_everywhere_it_enters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let intake = intake(dir.path()).await;
    let long = format!("{}.txt", "Ä".repeat(498));
    assert!(long.len() > 990);
    let Outcome::New(id) = intake
        .ingest("upload", &long, b"Sehr geehrte Damen und Herren", 1 << 20)
        .await
        .expect("ingest")
    else {
        panic!("a new document")
    };
    let doc = intake.store.get(&id).await.expect("document");
    assert!(
        doc.original_name.len() <= MAX_ORIGINAL_NAME_BYTES,
        "{} bytes",
        doc.original_name.len()
    );
    assert!(
        doc.original_name.ends_with("~.txt"),
        "{}",
        doc.original_name
    );
    assert!(doc.original_name.starts_with("ÄÄ"));
    let refused = format!("{}.pdf", "ß".repeat(600));
    let path = intake
        .quarantine(
            "upload",
            &refused,
            "Grund",
            "",
            QuarantineSource::Bytes(b"kaputt"),
        )
        .await
        .expect("quarantine");
    let entry = &intake.store.quarantine_entries(10).await.expect("entries")[0];
    assert!(entry.original_name.len() <= MAX_ORIGINAL_NAME_BYTES);
    assert!(
        entry.original_name.ends_with("~.pdf"),
        "{}",
        entry.original_name
    );
    let file_name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(file_name.len() + ".reason.txt".len() <= 255, "{file_name}");
    assert!(
        dir.path()
            .join("quarantine")
            .join(format!("{file_name}.reason.txt"))
            .exists()
    );
}

/// The reason comes first: when the file cannot be moved (here it vanished), its reason file
/// is already in the quarantine folder, so a quarantined file is never without its reason.
#[tokio::test]
async fn the_reason_file_is_written_before_the_file_is_moved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let intake = intake(dir.path()).await;
    let vanished = dir.path().join("scan.pdf");
    let r = intake
        .quarantine(
            "hot_folder",
            "scan.pdf",
            "Die Datei ist leer (0 Byte).",
            "",
            QuarantineSource::Move(&vanished),
        )
        .await;
    assert!(r.is_err(), "the move failed");
    let reason = std::fs::read_to_string(dir.path().join("quarantine/scan.pdf.reason.txt"))
        .expect("the reason was written first");
    assert!(reason.contains("Grund: Die Datei ist leer"), "{reason}");
    // A file that can be moved lands beside a reason of its own, not the orphaned one.
    std::fs::write(&vanished, b"").expect("write");
    let target = intake
        .quarantine(
            "hot_folder",
            "scan.pdf",
            "Die Datei ist leer (0 Byte).",
            "",
            QuarantineSource::Move(&vanished),
        )
        .await
        .expect("quarantine");
    assert_eq!(target, dir.path().join("quarantine/1-scan.pdf"));
    assert!(dir.path().join("quarantine/1-scan.pdf.reason.txt").exists());
    assert!(!vanished.exists());
}
