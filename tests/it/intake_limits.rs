//! Intake limits (issue 13): a file larger than allowed is refused before it is read, and
//! uploads stream to disk. The daemon runs as a child process so that its own peak memory
//! (`VmHWM`) can be measured: a test that reads a file into memory fails here.

use crate::harness::*;
use std::io::Read;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);
const MB: u64 = 1024 * 1024;
/// What the daemon's peak memory may grow by while it takes one large input. Reading the
/// input into memory once would already be many times this.
const GROWTH: u64 = 96 * MB;

/// A 3 GB `scan.pdf` (sparse) in the hot folder, limit 16 MB: quarantined by moving it, with
/// its German reason beside it, while the daemon's peak memory stays where it was (the old
/// intake read the whole file first: 4 GB RSS for a 4 GB file).
#[test]
fn an_oversize_file_in_the_hot_folder_is_quarantined_without_reading_it() {
    let install = Install::new();
    let d = install.serve(&[("POSTSTELLE__INTAKE__HOT_FOLDER__MAX_FILE_MB", "16")]);
    let pid = d.child.id();
    let before = peak_rss(pid);
    let size = 3 * 1024 * MB;
    drop_sparse(&install, "scan.pdf", b"%PDF-1.4\n", size);
    let reason = install.path("quarantine/scan.pdf.reason.txt");
    wait_file(&reason, LONG);
    wait_for("the file moved out of the inbox", LONG, || {
        (!install.path("inbox/scan.pdf").exists()).then_some(())
    });
    let after = peak_rss(pid);
    assert!(
        after < before + GROWTH,
        "peak RSS grew from {} MB to {} MB for a file that must not be read",
        before / MB,
        after / MB
    );
    let text = std::fs::read_to_string(&reason).expect("reason");
    assert!(
        text.contains("größer als die erlaubten 16 MB"),
        "German reason: {text}"
    );
    // Moved, not copied: the same (sparse) file, whole.
    let moved = std::fs::metadata(install.path("quarantine/scan.pdf")).expect("moved file");
    assert_eq!(moved.len(), size);
    // No document, one quarantine entry, nothing half-written left in the blob store.
    assert!(install.documents().is_empty());
    let q: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/api/quarantine", install.port))
        .bearer_auth(&install.token)
        .send()
        .expect("quarantine")
        .json()
        .expect("json");
    let entries = q["quarantine"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{q}");
    assert_eq!(entries[0]["original_name"], "scan.pdf");
    assert_eq!(
        std::fs::read_dir(install.path("blobs/.incoming"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    eprintln!(
        "hot folder, 3 GB file over the limit: peak RSS {} MB before, {} MB after",
        before / MB,
        after / MB
    );
}

/// A 128 MB upload (multipart, as scanner software and the desk send it) is streamed into the
/// data directory: the daemon's peak memory does not grow with it (the old handler held the
/// body three times over).
#[test]
fn an_upload_is_streamed_to_disk_not_held_in_memory() {
    let install = Install::new();
    let d = install.serve(&[("POSTSTELLE__INTAKE__UPLOAD__MAX_FILE_MB", "200")]);
    let pid = d.child.id();
    let size = 128 * MB;
    let source = install.path("gross.pdf");
    sparse_file(&source, b"%PDF-1.4\n", size);
    let before = peak_rss(pid);
    let part = reqwest::blocking::multipart::Part::reader_with_length(
        std::fs::File::open(&source).expect("open"),
        size,
    )
    .file_name("gross.pdf");
    let r = reqwest::blocking::Client::builder()
        .timeout(LONG)
        .build()
        .expect("client")
        .post(format!("http://127.0.0.1:{}/api/documents", install.port))
        .bearer_auth(&install.token)
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()
        .expect("upload");
    let after = peak_rss(pid);
    let status = r.status();
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(status, 201, "{body}");
    assert!(
        after < before + GROWTH,
        "peak RSS grew from {} MB to {} MB for a streamed 128 MB upload",
        before / MB,
        after / MB
    );
    // The blob is whole: its size and hash are those of the upload.
    let id = body["id"].as_str().expect("id");
    let doc = install
        .documents()
        .into_iter()
        .find(|x| x["id"] == id)
        .expect("document");
    assert_eq!(doc["size_bytes"], size);
    let sha = doc["sha256"].as_str().expect("sha");
    let blob = install.path(&format!("blobs/{}/{sha}", &sha[..2]));
    assert_eq!(std::fs::metadata(&blob).expect("blob").len(), size);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut f = std::fs::File::open(&source).expect("source");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
    }
    assert_eq!(hex::encode(sha2::Digest::finalize(hasher)), sha);
    eprintln!(
        "upload of 128 MB: peak RSS {} MB before, {} MB after",
        before / MB,
        after / MB
    );
}

/// An upload over the limit is refused while it streams in: 413 with a German message, for a
/// body without a length (chunked) and for one that declares its length; nothing is kept.
#[test]
fn an_upload_over_the_limit_is_refused_while_it_streams_with_413() {
    let app = Install::new().spawn_app(&[("POSTSTELLE__INTAKE__UPLOAD__MAX_FILE_MB", "8")]);
    let source = app.path("zu-gross.pdf");
    sparse_file(&source, b"%PDF-1.4\n", 40 * MB);
    let client = reqwest::blocking::Client::builder()
        .timeout(LONG)
        .build()
        .expect("client");
    let url = app.url("/api/documents?name=zu-gross.pdf");
    let chunked = reqwest::blocking::Body::new(std::fs::File::open(&source).expect("open"));
    let sized =
        reqwest::blocking::Body::sized(std::fs::File::open(&source).expect("open"), 40 * MB);
    for body in [chunked, sized] {
        let r = client
            .post(&url)
            .bearer_auth(&app.token)
            .header("Content-Type", "application/pdf")
            .body(body)
            .send()
            .expect("answer, not a broken connection");
        assert_eq!(r.status(), 413);
        let v: serde_json::Value = r.json().expect("json");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("größer als die erlaubten 8 MB")),
            "{v}"
        );
    }
    assert!(app.documents().is_empty());
    assert_eq!(
        std::fs::read_dir(app.path("blobs/.incoming"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing half-written is left"
    );
}

/// With one upload slot, a second upload while a slow one holds it waits for a slot at most
/// half the time limit and is then answered 503 (German); the slow one is cut off at the time
/// limit.
#[test]
fn uploads_beyond_the_slots_are_refused_after_the_time_limit() {
    let app = Install::new().spawn_app(&[
        ("POSTSTELLE__INTAKE__UPLOAD__MAX_CONCURRENT", "1"),
        ("POSTSTELLE__INTAKE__UPLOAD__TIMEOUT_SECS", "4"),
    ]);
    /// A body that sends a little, then nothing for a long time.
    struct Slow(u8);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                std::thread::sleep(Duration::from_secs(8));
                return Ok(0);
            }
            self.0 -= 1;
            let n = buf.len().min(1024);
            buf[..n].fill(b'%');
            Ok(n)
        }
    }
    let url = app.url("/api/documents?name=langsam.pdf");
    let token = app.token.clone();
    let slow = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(token)
            .body(reqwest::blocking::Body::new(Slow(4)))
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let r = reqwest::blocking::Client::new()
        .post(app.url("/api/documents?name=brief.txt"))
        .bearer_auth(&app.token)
        .body("Sehr geehrte Damen und Herren")
        .send()
        .expect("second upload");
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for a slot"
    );
    let v: serde_json::Value = r.json().expect("json");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("zu viele Dateien gleichzeitig")),
        "{v}"
    );
    // The slow one did not get through (408, or cut off).
    let slow = slow.join().expect("slow thread");
    assert!(!matches!(slow, Ok(200 | 201)), "{slow:?}");
    assert!(app.documents().is_empty());
}
