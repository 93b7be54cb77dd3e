//! Test hooks for crash tests: with `POSTSTELLE_PAUSE_AT=<point>` the process stops at that
//! point (after writing the marker file named by `POSTSTELLE_PAUSE_MARKER`) and waits to be
//! killed. Tests use it to SIGKILL the daemon at an exact place, e.g. between committing a scan
//! and moving it, or between delivering and recording the delivery. Unset, it does nothing.

/// Named points where a crash test can stop the process.
pub mod points {
    /// Scan committed to store and blob storage, original not yet moved out of the inbox.
    pub const AFTER_COMMIT: &str = "after_commit";
    /// Target has the document, the store does not yet say so.
    pub const AFTER_DELIVER: &str = "after_deliver";
    /// Mayan EDMS target: the document is created in Mayan, its file not yet uploaded.
    pub const MAYAN_AFTER_CREATE: &str = "mayan_after_create";
    /// An outgoing mail is stored in the queue, the SMTP send has not started.
    pub const BEFORE_MAIL_SEND: &str = "before_mail_send";
    /// The SMTP server accepted an outgoing mail, the store does not yet say so.
    pub const AFTER_MAIL_SEND: &str = "after_mail_send";
    /// The pipeline is about to route an extracted document.
    pub const BEFORE_ROUTE: &str = "before_route";
    /// A stack's pages are analysed (and kept), its parts not yet made.
    pub const BATCH_ANALYSED: &str = "batch_analysed";
    /// A stack's parts are made (their PDFs are blobs), the split not yet committed.
    pub const BATCH_BEFORE_SPLIT: &str = "batch_before_split";
}

/// Panics here when `POSTSTELLE_PANIC_AT` names this point: tests use it to check that a bug
/// in one task ends the daemon with a non-zero exit instead of vanishing. Unset, it does
/// nothing.
pub fn panic_point(name: &str) {
    if std::env::var("POSTSTELLE_PANIC_AT").ok().as_deref() == Some(name) {
        panic!("test hook: panic at {name}");
    }
}

/// Stops here when `POSTSTELLE_PAUSE_AT` names this point: forever, or, with
/// `POSTSTELLE_PAUSE_RESUME=<file>`, until that file exists (a test acts in between, e.g.
/// re-assigns a document while its delivery is in flight).
pub async fn pause_point(name: &str) {
    if std::env::var("POSTSTELLE_PAUSE_AT").ok().as_deref() != Some(name) {
        return;
    }
    if let Ok(marker) = std::env::var("POSTSTELLE_PAUSE_MARKER") {
        let _ = std::fs::write(marker, name);
    }
    match std::env::var("POSTSTELLE_PAUSE_RESUME") {
        Ok(resume) => {
            tracing::warn!(
                point = name,
                "paused at test hook; waiting for the resume file"
            );
            while !std::path::Path::new(&resume).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Err(_) => {
            tracing::warn!(point = name, "paused at test hook; waiting to be killed");
            std::future::pending::<()>().await;
        }
    }
}
