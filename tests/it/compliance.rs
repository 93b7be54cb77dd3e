//! The connector compliance suite: one set of checks that every delivery target runs. The
//! filesystem target writes into a temporary directory; d.velop, CMIS, Paperless-ngx and the
//! generic REST target talk to the conformance servers of [`crate::harness::dms_servers`];
//! Mayan EDMS is the real one, reached through a fault-injecting proxy (skipped with a printed
//! note when `POSTSTELLE_TEST_MAYAN_URL` is unset, failing in CI).
//!
//! The checks, one test each per target (`compliance::<target>::<check>`):
//!
//! - **redelivery**: delivered, then delivered again as if the store had never recorded the
//!   receipt (a crash right after the target answered): the second delivery reports the
//!   document as already present, and the server holds it exactly once;
//! - **crash mid-delivery**: the first attempt does the target's work but its answer is lost
//!   (the server's answer to the filing request becomes a 502; for the filesystem: the document
//!   was written and the process died while writing the sidecar). The attempt counts as a
//!   temporary failure, and the retry files the document exactly once;
//! - **failures**: each fault the target can meet is classified as [`TABLE`] says (5xx,
//!   429 with `Retry-After`, a rejected request, wrong credentials, a hanging server, a refused
//!   connection, a filesystem root that is a file); afterwards the same document is filed, once;
//! - **re-assignment**: filed into mailbox 63, then the same document to mailbox 22: moved,
//!   copied or refused (a dead letter naming where it is), as [`TABLE`] says.
//!
//! "Exactly once" is counted on the server side: [`Subject::copies`] lists every copy of the
//! document the target holds, by mailbox, and marks a copy that is incomplete or whose bytes
//! differ from what was sent.

use crate::harness::dms_servers::{
    Cmis, Dvelop, HasFaults, Paperless, Proxy, Rest, Server, cmis, dvelop, paperless, proxy, rest,
    target,
};
use crate::harness::mayan::{Mayan, SERIAL, mayan};
use crate::harness::{din_letter, letter_pdf};
use axum::http::Method;
use poststelle::deliver::{Delivery, DeliveryError, DeliveryItem, Receipt};
use poststelle::domain::{DocumentId, MailboxId};
use std::sync::Arc;
use std::time::Duration;

// ------------------------------------------------------------------------------------------
// Today's behaviour, per target.

/// How a failure is classified.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// [`DeliveryError::Retriable`], the message containing this.
    Retriable(&'static str),
    /// [`DeliveryError::RetryAfter`] with this delay, in seconds.
    RetryAfter(u64),
    /// [`DeliveryError::Permanent`] (a dead letter at once), the message containing this.
    Permanent(&'static str),
}

/// What a target does when a document filed into mailbox 63 is delivered again for 22.
#[derive(Debug, Clone, Copy)]
enum Reassign {
    /// Only in 22 afterwards; the receipt's `already_present` is this.
    Moved { receipt_present: bool },
    /// In 63 and in 22 afterwards; the receipt's `already_present` is this.
    Copied { receipt_present: bool },
    /// Refused with a permanent error whose message contains this; still only in 63.
    Refused(&'static str),
    /// Reported as delivered (the receipt's `already_present` is this), but still only in 63.
    Kept { receipt_present: bool },
}

/// A fault a delivery can meet.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The next answer is `500 Internal Server Error`.
    ServerError,
    /// The next answer is `429 Too Many Requests` with `Retry-After: 30`.
    TooManyRequests,
    /// The next answer is `403 Forbidden` (the request is rejected).
    Rejected,
    /// The target is configured with a wrong secret (API key, password, token).
    WrongCredentials,
    /// The next answer comes only after the target's timeout.
    Timeout,
    /// Nothing listens (connection refused).
    Refused,
    /// The filesystem target's root is a regular file.
    BrokenRoot,
}

const FAULTS: [Fault; 7] = [
    Fault::ServerError,
    Fault::TooManyRequests,
    Fault::Rejected,
    Fault::WrongCredentials,
    Fault::Timeout,
    Fault::Refused,
    Fault::BrokenRoot,
];

/// One target's behaviour. `None`: the fault does not apply to this target.
#[derive(Debug)]
struct Row {
    target: &'static str,
    /// What the server holds after the crashed first attempt (`None`: not observed, since the
    /// test made that state itself), and the retry's `already_present`.
    after_crash: Option<&'static [&'static str]>,
    retry_after_crash_present: bool,
    server_error: Option<Class>,
    too_many_requests: Option<Class>,
    rejected: Option<Class>,
    wrong_credentials: Option<Class>,
    timeout: Option<Class>,
    refused: Option<Class>,
    broken_root: Option<Class>,
    reassign: Reassign,
}

impl Row {
    fn expect(&self, f: Fault) -> Option<Class> {
        match f {
            Fault::ServerError => self.server_error,
            Fault::TooManyRequests => self.too_many_requests,
            Fault::Rejected => self.rejected,
            Fault::WrongCredentials => self.wrong_credentials,
            Fault::Timeout => self.timeout,
            Fault::Refused => self.refused,
            Fault::BrokenRoot => self.broken_root,
        }
    }
}

use Class::{Permanent, Retriable, RetryAfter};

/// The HTTP targets share the mapping of `deliver::http`; they differ in what the server says
/// to wrong credentials, what a lost answer leaves behind, and what a re-assignment does.
const TABLE: &[Row] = &[
    // Writes <root>/<mailbox>/<id>.<ext> + <id>.json; every I/O error is temporary (a root that
    // is a file too: it may be a mount that is not there yet).
    Row {
        target: "filesystem",
        after_crash: None,
        retry_after_crash_present: false,
        server_error: None,
        too_many_requests: None,
        rejected: None,
        wrong_credentials: None,
        timeout: None,
        refused: None,
        broken_root: Some(Retriable("Not a directory")),
        reassign: Reassign::Moved {
            receipt_present: false,
        },
    },
    // With `mailbox` mapped to a property (as here), a re-assigned document is refused with a
    // reason naming the mailbox it is filed in: a person moves it in d.velop.
    Row {
        target: "dvelop",
        after_crash: Some(&["63"]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("401")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Refused("bereits im Postfach 63"),
    },
    // Without `mailbox` mapped to a property, d.velop cannot tell where a found document is
    // filed: the re-assigned document is found by its id and reported as delivered, and stays
    // in the old mailbox (only a task, when configured, goes to the new one).
    Row {
        target: "dvelop_unmapped",
        after_crash: Some(&["63"]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("401")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Kept {
            receipt_present: true,
        },
    },
    // Found by a query on its name and moved into the new mailbox's folder.
    Row {
        target: "cmis",
        after_crash: Some(&["63"]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("permissionDenied")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Moved {
            receipt_present: true,
        },
    },
    // The consumer works in the background: right after the lost answer nothing is stored
    // yet; the retry's upload is refused as a duplicate of the first one, which counts as
    // present. A re-assignment swaps the mailbox tags.
    Row {
        target: "paperless",
        after_crash: Some(&[]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("Invalid token")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Moved {
            receipt_present: true,
        },
    },
    // `exists_url` asked first; the URL names the mailbox, so a re-assignment files a copy.
    Row {
        target: "rest",
        after_crash: Some(&["63"]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("401")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Copied {
            receipt_present: false,
        },
    },
    // Without `exists_url`: a `409 Conflict` on the upload counts as already filed.
    Row {
        target: "rest_conflict",
        after_crash: Some(&["63"]),
        retry_after_crash_present: true,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("401")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Copied {
            receipt_present: false,
        },
    },
    // A lost answer to the creation leaves a document without a file in no cabinet; the retry
    // finds it by its label and completes it (so it is not reported as present). A
    // re-assignment moves it between the mailboxes' cabinets.
    Row {
        target: "mayan",
        after_crash: Some(&["- (0 files)"]),
        retry_after_crash_present: false,
        server_error: Some(Retriable("HTTP 500")),
        too_many_requests: Some(RetryAfter(30)),
        rejected: Some(Permanent("HTTP 403")),
        wrong_credentials: Some(Permanent("HTTP 40")),
        timeout: Some(Retriable("timeout")),
        refused: Some(Retriable("connection")),
        broken_root: None,
        reassign: Reassign::Moved {
            receipt_present: false,
        },
    },
];

fn row(target: &str) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.target == target)
        .unwrap_or_else(|| panic!("no row for {target} in TABLE"))
}

// ------------------------------------------------------------------------------------------
// The checks.

/// A target under test, with its server.
trait Subject {
    /// The row of [`TABLE`].
    fn name(&self) -> &'static str;
    /// The target as configured.
    fn target(&self) -> Arc<dyn Delivery>;
    /// Every copy of `item`'s document the server holds, as the mailbox it is filed in (`-`:
    /// none, `a+b`: several), with a note when it is incomplete or its bytes differ; sorted.
    async fn copies(&self, item: &DeliveryItem) -> Vec<String>;
    /// Runs a first delivery that crashes after the target did its work, before we learn it.
    async fn crash_first_attempt(&mut self, item: &DeliveryItem);
    /// Switches `fault` on and returns the target to deliver with (`None`: does not apply).
    fn arm(&mut self, fault: Fault) -> Option<Arc<dyn Delivery>>;
    /// Switches every fault off.
    fn disarm(&mut self);
}

/// A fresh document (its bytes a real letter of its own) for `mailbox` 63 or 22.
fn document(mailbox: &str) -> DeliveryItem {
    let id = DocumentId::new();
    let subject = format!("Bauantrag Carport, Vorgang {}", id.as_str());
    let bytes = letter_pdf(&din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        &subject,
        &["hiermit beantrage ich die Genehmigung für einen Carport."],
    ));
    let mut it = crate::harness::dms_servers::item(mailbox, &bytes);
    it.document_id = id;
    it
}

/// The same document, re-assigned to mailbox 22.
fn reassigned(it: &DeliveryItem) -> DeliveryItem {
    let mut b = it.clone();
    b.mailbox = MailboxId::parse("22").expect("mailbox");
    b.mailbox_name = "Steueramt".into();
    b
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A copy's description for [`Subject::copies`].
fn located(mailboxes: &[&str], same_bytes: bool) -> String {
    let at = if mailboxes.is_empty() {
        "-".to_string()
    } else {
        mailboxes.join("+")
    };
    if same_bytes {
        at
    } else {
        format!("{at} (other bytes)")
    }
}

async fn redelivery(s: &mut impl Subject) {
    let it = document("63");
    let first = s.target().deliver(&it).await.expect("first delivery");
    assert!(!first.already_present, "{first:?}");
    assert_eq!(s.copies(&it).await, ["63"]);
    // The store never recorded the receipt: the outbox delivers the same document again.
    let again = s.target().deliver(&it).await.expect("redelivery");
    assert!(again.already_present, "recognised as present: {again:?}");
    assert_eq!(s.copies(&it).await, ["63"], "filed exactly once");
}

async fn crash_then_redelivery(s: &mut impl Subject) {
    let row = row(s.name());
    let it = document("63");
    s.crash_first_attempt(&it).await;
    if let Some(after) = row.after_crash {
        assert_eq!(s.copies(&it).await, after, "what the crashed attempt left");
    }
    let r = s.target().deliver(&it).await.expect("retry");
    assert_eq!(r.already_present, row.retry_after_crash_present, "{r:?}");
    assert_eq!(s.copies(&it).await, ["63"], "filed exactly once");
}

fn assert_class(target: &str, fault: Fault, got: Result<Receipt, DeliveryError>, want: Class) {
    let ok = match (&got, want) {
        (Err(DeliveryError::Retriable(m)), Retriable(part)) => m.contains(part),
        (Err(DeliveryError::RetryAfter(_, d)), RetryAfter(secs)) => *d == Duration::from_secs(secs),
        (Err(DeliveryError::Permanent(m)), Permanent(part)) => m.contains(part),
        _ => false,
    };
    assert!(ok, "{target}, {fault:?}: expected {want:?}, got {got:?}");
}

async fn failures(s: &mut impl Subject) {
    let row = row(s.name());
    let it = document("63");
    for fault in FAULTS {
        match (s.arm(fault), row.expect(fault)) {
            (None, None) => {}
            (Some(_), None) => {
                s.disarm();
                panic!("{}: {fault:?} applies, but TABLE has no entry", row.target);
            }
            (None, Some(_)) => panic!(
                "{}: TABLE names {fault:?}, but it cannot be switched on",
                row.target
            ),
            (Some(t), Some(want)) => {
                let got = t.deliver(&it).await;
                s.disarm();
                assert_class(row.target, fault, got, want);
            }
        }
    }
    // Every fault gone: the same document is filed, and no failed attempt left a copy behind.
    s.target().deliver(&it).await.expect("after the faults");
    assert_eq!(s.copies(&it).await, ["63"], "filed exactly once");
}

async fn reassignment(s: &mut impl Subject) {
    let row = row(s.name());
    let a = document("63");
    s.target().deliver(&a).await.expect("filed into 63");
    assert_eq!(s.copies(&a).await, ["63"]);
    let b = reassigned(&a);
    let got = s.target().deliver(&b).await;
    match row.reassign {
        Reassign::Moved { receipt_present } => {
            let r = got.expect("re-assigned");
            assert_eq!(r.already_present, receipt_present, "{r:?}");
            assert_eq!(s.copies(&b).await, ["22"], "moved");
        }
        Reassign::Copied { receipt_present } => {
            let r = got.expect("re-assigned");
            assert_eq!(r.already_present, receipt_present, "{r:?}");
            assert_eq!(s.copies(&b).await, ["22", "63"], "copied");
        }
        Reassign::Kept { receipt_present } => {
            let r = got.expect("reported as delivered");
            assert_eq!(r.already_present, receipt_present, "{r:?}");
            assert_eq!(s.copies(&b).await, ["63"], "left where it is");
        }
        Reassign::Refused(part) => {
            match &got {
                Err(DeliveryError::Permanent(m)) if m.contains(part) => {}
                other => panic!("expected a dead letter naming {part:?}, got {other:?}"),
            }
            assert_eq!(s.copies(&b).await, ["63"], "left where it is");
        }
    }
}

/// One test per check for each target.
macro_rules! compliance {
    ($($target:ident),* $(,)?) => {$(
        mod $target {
            use super::*;

            #[tokio::test]
            async fn redelivery_files_once() {
                if let Some(mut s) = subjects::$target().await {
                    redelivery(&mut s).await;
                }
            }

            #[tokio::test]
            async fn a_crashed_attempt_then_redelivery_files_once() {
                if let Some(mut s) = subjects::$target().await {
                    crash_then_redelivery(&mut s).await;
                }
            }

            #[tokio::test]
            async fn failures_are_classified() {
                if let Some(mut s) = subjects::$target().await {
                    failures(&mut s).await;
                }
            }

            #[tokio::test]
            async fn reassignment() {
                if let Some(mut s) = subjects::$target().await {
                    super::reassignment(&mut s).await;
                }
            }
        }
    )*};
}

compliance!(
    filesystem,
    dvelop,
    dvelop_unmapped,
    cmis,
    paperless,
    rest,
    rest_conflict,
    mayan
);

// ------------------------------------------------------------------------------------------
// The targets.

/// The filesystem target in a temporary directory.
struct Filesystem {
    dir: tempfile::TempDir,
    target: Arc<dyn Delivery>,
    broken: Arc<dyn Delivery>,
}

impl Subject for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn target(&self) -> Arc<dyn Delivery> {
        self.target.clone()
    }

    async fn copies(&self, item: &DeliveryItem) -> Vec<String> {
        let id = item.document_id.as_str();
        let doc = format!("{id}.{}", item.extension);
        let sidecar = format!("{id}.json");
        let mut out = Vec::new();
        for mb in std::fs::read_dir(self.dir.path().join("dms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let m = mb.file_name().to_string_lossy().to_string();
            let has = |n: &str| mb.path().join(n).exists();
            match (has(&doc), has(&sidecar)) {
                (true, true) => {
                    let same = std::fs::read(mb.path().join(&doc)).ok() == Some(item.bytes.clone());
                    out.push(located(&[m.as_str()], same));
                }
                (true, false) => out.push(format!("{m} (no sidecar)")),
                (false, true) => out.push(format!("{m} (sidecar only)")),
                (false, false) => {}
            }
            for e in std::fs::read_dir(mb.path()).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with('.') && n.contains(id) {
                    out.push(format!("{m} (temporary file {n})"));
                }
            }
        }
        sorted(out)
    }

    /// The document was written, then the process died while writing the sidecar (its
    /// temporary file is half there).
    async fn crash_first_attempt(&mut self, item: &DeliveryItem) {
        let id = item.document_id.as_str();
        let dir = self.dir.path().join("dms").join(item.mailbox.as_str());
        std::fs::create_dir_all(&dir).expect("mailbox dir");
        std::fs::write(dir.join(format!("{id}.{}", item.extension)), &item.bytes)
            .expect("document");
        std::fs::write(dir.join(format!(".{id}.json.tmp")), b"{\"document_id\": \"")
            .expect("half a sidecar");
    }

    fn arm(&mut self, fault: Fault) -> Option<Arc<dyn Delivery>> {
        matches!(fault, Fault::BrokenRoot).then(|| self.broken.clone())
    }

    fn disarm(&mut self) {}
}

/// How to read the copies of a document from a server's state.
enum View<S> {
    /// From the conformance server's records.
    Records(fn(&S, &DeliveryItem) -> Vec<String>),
    /// From the real Mayan EDMS behind the proxy: cabinet label -> mailbox.
    Mayan {
        mayan: Mayan,
        cabinets: Vec<(String, &'static str)>,
        _serial: tokio::sync::MutexGuard<'static, ()>,
    },
}

/// An HTTP target and its server (or the proxy in front of it).
struct Http<S: HasFaults> {
    name: &'static str,
    server: Server<S>,
    target: Arc<dyn Delivery>,
    wrong: Arc<dyn Delivery>,
    /// The request that files the document (method, path pattern).
    filing: (Method, &'static str),
    /// How long a hanging answer waits (longer than the target's timeout).
    hang: Duration,
    view: View<S>,
}

impl<S: HasFaults> Subject for Http<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn target(&self) -> Arc<dyn Delivery> {
        self.target.clone()
    }

    async fn copies(&self, item: &DeliveryItem) -> Vec<String> {
        match &self.view {
            View::Records(f) => sorted(f(&self.server.state, item)),
            View::Mayan {
                mayan, cabinets, ..
            } => sorted(mayan_copies(mayan, cabinets, item).await),
        }
    }

    /// The filing request does its work; its answer is lost on the way back.
    async fn crash_first_attempt(&mut self, item: &DeliveryItem) {
        let pattern = regex::Regex::new(self.filing.1).expect("pattern");
        self.server.faults().lose = Some((self.filing.0.clone(), pattern));
        let got = self.target.deliver(item).await;
        let never_sent = self.server.faults().lose.is_some();
        self.server.faults().clear();
        assert!(
            !never_sent,
            "{}: the filing request {:?} was never sent ({got:?})",
            self.name, self.filing
        );
        match got {
            Err(e) if e.is_retriable() => {}
            other => panic!("a lost answer must be a temporary failure, got {other:?}"),
        }
    }

    fn arm(&mut self, fault: Fault) -> Option<Arc<dyn Delivery>> {
        match fault {
            Fault::ServerError => {
                let mut f = self.server.faults();
                f.fail_next = 1;
                f.status = 500;
            }
            Fault::TooManyRequests => {
                let mut f = self.server.faults();
                f.fail_next = 1;
                f.status = 429;
                f.retry_after = Some(30);
            }
            Fault::Rejected => {
                let mut f = self.server.faults();
                f.fail_next = 1;
                f.status = 403;
            }
            Fault::WrongCredentials => return Some(self.wrong.clone()),
            Fault::Timeout => {
                let mut f = self.server.faults();
                f.hang_next = 1;
                f.hang = self.hang;
            }
            Fault::Refused => self.server.down(),
            Fault::BrokenRoot => return None,
        }
        Some(self.target.clone())
    }

    fn disarm(&mut self) {
        self.server.faults().clear();
        if !self.server.is_up() {
            self.server.up();
        }
    }
}

/// Mayan documents labelled with our id: the mailboxes of their cabinets, each with exactly
/// one file that downloads byte-equal.
async fn mayan_copies(
    m: &Mayan,
    cabinets: &[(String, &'static str)],
    item: &DeliveryItem,
) -> Vec<String> {
    let mut out = Vec::new();
    for d in m.documents_labelled(item.document_id.as_str()).await {
        let id = d["id"].as_u64().expect("id");
        let mailboxes: Vec<&str> = m
            .cabinet_labels(id)
            .await
            .iter()
            .map(|l| {
                cabinets
                    .iter()
                    .find(|(label, _)| label == l)
                    .map(|(_, mb)| *mb)
                    .unwrap_or("foreign cabinet")
            })
            .collect();
        let files = m.files(id).await;
        if files.len() != 1 {
            out.push(format!(
                "{} ({} files)",
                located(&mailboxes, true),
                files.len()
            ));
            continue;
        }
        let file = files[0]["id"].as_u64().expect("file id");
        let bytes = m
            .get_bytes(&format!("/documents/{id}/files/{file}/download/"))
            .await;
        out.push(located(&mailboxes, bytes == item.bytes));
    }
    out
}

mod subjects {
    //! Each target configured as an operator would, with its server.
    use super::*;

    pub async fn filesystem() -> Option<Filesystem> {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("not-a-directory");
        std::fs::write(&not_a_dir, b"a file").expect("file");
        let block = |root: &std::path::Path| {
            format!(
                "kind = \"filesystem\"\nroot = {:?}\n",
                root.display().to_string()
            )
        };
        Some(Filesystem {
            target: target(&block(&dir.path().join("dms")), &[]),
            broken: target(&block(&not_a_dir), &[]),
            dir,
        })
    }

    const HANG: Duration = Duration::from_secs(5);

    /// d.velop; with `mailbox_property`, the mailbox is mapped to property 6, without it the
    /// mailbox is only in the file name.
    fn dvelop_with(name: &'static str, mailbox_property: bool) -> Http<Dvelop> {
        let server = super::dvelop("KEY-1", "R1");
        // Unmapped, the mailbox shows only in the file name the document was created with.
        let properties = if mailbox_property {
            r#"{ document_id = "10", mailbox = "6" }"#
        } else {
            "{ document_id = \"10\" }\nfile_name = \"{mailbox}-{document_id}.{ext}\""
        };
        let block = format!(
            r#"kind = "dvelop"
base_url = "{}"
repository = "R1"
category = "DPOST"
timeout_secs = 2
properties = {properties}
"#,
            server.url()
        );
        let key = |k| [("POSTSTELLE__DELIVER__TARGETS__T__API_KEY", k)];
        Http {
            name,
            target: target(&block, &key("KEY-1")),
            wrong: target(&block, &key("WRONG")),
            filing: (Method::POST, "/o2m$"),
            hang: HANG,
            view: if mailbox_property {
                View::Records(|s: &Dvelop, it: &DeliveryItem| dvelop_copies(s, it, true))
            } else {
                View::Records(|s: &Dvelop, it: &DeliveryItem| dvelop_copies(s, it, false))
            },
            server,
        }
    }

    fn dvelop_copies(s: &Dvelop, it: &DeliveryItem, mapped: bool) -> Vec<String> {
        let id = vec![it.document_id.as_str().to_string()];
        s.docs
            .lock()
            .expect("lock")
            .iter()
            .filter(|d| d.properties.get("10") == Some(&id))
            .map(|d| {
                let mb: Vec<&str> = if mapped {
                    d.properties["6"].iter().map(String::as_str).collect()
                } else {
                    vec![d.filename.split('-').next().unwrap_or_default()]
                };
                located(&mb, d.bytes == it.bytes)
            })
            .collect()
    }

    pub async fn dvelop() -> Option<Http<Dvelop>> {
        Some(dvelop_with("dvelop", true))
    }

    pub async fn dvelop_unmapped() -> Option<Http<Dvelop>> {
        Some(dvelop_with("dvelop_unmapped", false))
    }

    pub async fn cmis() -> Option<Http<Cmis>> {
        let server = super::cmis("poststelle", "pw");
        let block = format!(
            r#"kind = "cmis"
root_url = "{}/cmis/browser/repo1/root"
username = "poststelle"
timeout_secs = 2
folder = "/Post/{{mailbox}}"
"#,
            server.url()
        );
        let password = |p| [("POSTSTELLE__DELIVER__TARGETS__T__PASSWORD", p)];
        Some(Http {
            name: "cmis",
            target: target(&block, &password("pw")),
            wrong: target(&block, &password("nope")),
            filing: (Method::POST, "/root/Post/63$"),
            hang: HANG,
            view: View::Records(|s: &Cmis, it: &DeliveryItem| {
                s.documents()
                    .iter()
                    .filter(|d| {
                        d.path
                            .rsplit('/')
                            .next()
                            .is_some_and(|n| n.starts_with(it.document_id.as_str()))
                    })
                    .map(|d| {
                        // "/Post/<mailbox>/<name>"
                        let mb = d.path.split('/').nth(2).unwrap_or_default();
                        located(&[mb], d.content == it.bytes)
                    })
                    .collect()
            }),
            server,
        })
    }

    pub async fn paperless() -> Option<Http<Paperless>> {
        let server = super::paperless("TOK");
        let block = format!(
            r#"kind = "paperless"
base_url = "{}"
timeout_secs = 2
poll_interval_ms = 20
poll_timeout_secs = 5
tags = [1]
mailbox_tags = {{ "63" = [6], "22" = [2] }}
document_id_field = 7
"#,
            server.url()
        );
        let token = |t| [("POSTSTELLE__DELIVER__TARGETS__T__TOKEN", t)];
        Some(Http {
            name: "paperless",
            target: target(&block, &token("TOK")),
            wrong: target(&block, &token("nope")),
            filing: (Method::POST, "/api/documents/post_document/$"),
            hang: HANG,
            view: View::Records(|s: &Paperless, it: &DeliveryItem| {
                s.docs
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(|d| {
                        d.custom_fields.get(&7).map(String::as_str) == Some(it.document_id.as_str())
                    })
                    .map(|d| {
                        let mb: Vec<&str> = [("63", 6), ("22", 2)]
                            .iter()
                            .filter(|(_, tag)| d.tags.contains(tag))
                            .map(|(mb, _)| *mb)
                            .collect();
                        located(&mb, d.bytes == it.bytes)
                    })
                    .collect()
            }),
            server,
        })
    }

    fn rest_with(name: &'static str, exists_url: bool) -> Http<Rest> {
        let server = super::rest("R-TOKEN");
        let url = format!(
            "{}/api/mailboxes/{{mailbox}}/documents/{{document_id}}",
            server.url()
        );
        let exists = if exists_url {
            format!("exists_url = \"{url}\"\n")
        } else {
            String::new()
        };
        let block = format!(
            "kind = \"rest\"\nmethod = \"PUT\"\nurl = \"{url}\"\n{exists}body = \"multipart\"\n\
             auth = \"bearer\"\ntimeout_secs = 2\n"
        );
        let secret = |t| [("POSTSTELLE__DELIVER__TARGETS__T__SECRET", t)];
        Http {
            name,
            target: target(&block, &secret("R-TOKEN")),
            wrong: target(&block, &secret("nope")),
            filing: (Method::PUT, "^/api/mailboxes/63/documents/"),
            hang: HANG,
            view: View::Records(|s: &Rest, it: &DeliveryItem| {
                s.docs
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(|d| d.id == it.document_id.as_str())
                    .map(|d| located(&[d.mailbox.as_str()], d.bytes == it.bytes))
                    .collect()
            }),
            server,
        }
    }

    pub async fn rest() -> Option<Http<Rest>> {
        Some(rest_with("rest", true))
    }

    pub async fn rest_conflict() -> Option<Http<Rest>> {
        Some(rest_with("rest_conflict", false))
    }

    pub async fn mayan() -> Option<Http<Proxy>> {
        let m = super::mayan()?;
        let serial = SERIAL.lock().await;
        let tag = DocumentId::new().as_str()[24..].to_string();
        let server = proxy(&m.url);
        let cabinets = vec![
            (format!("Bauordnung {tag}"), "63"),
            (format!("Steueramt {tag}"), "22"),
        ];
        // A retry that finds a document without a file waits `file_wait_secs` for an upload
        // still in Mayan's workers before uploading: long enough for Mayan, short for the test.
        let extra = format!(
            "document_type = \"Default\"\ncabinets = {{ \"63\" = \"{}\", \"22\" = \"{}\" }}\n\
             file_wait_secs = 10",
            cabinets[0].0, cabinets[1].0
        );
        Some(Http {
            name: "mayan",
            target: m.target_at(&server.url(), &extra, &m.password),
            wrong: m.target_at(&server.url(), &extra, "not-the-password"),
            filing: (Method::POST, "^/api/v4/documents/$"),
            // The targets' timeout is 10 s (Mayan can be slow to answer).
            hang: Duration::from_secs(13),
            view: View::Mayan {
                mayan: m,
                cabinets,
                _serial: serial,
            },
            server,
        })
    }
}
