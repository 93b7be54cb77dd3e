//! Outgoing e-mail against a real SMTP server (aiosmtpd, `tests/smtp_sink.py`): acknowledgements
//! (once, German, never to robots or lists, rate-limited), queueing with retries while the
//! server is down, permanent failures, STARTTLS/TLS with AUTH, and the daily digests, including
//! a SIGKILL between queueing and sending.

use crate::harness::smtp::{SmtpSink, free_port, test_certificates};
use crate::harness::*;
use chrono::Utc;
use poststelle::config::Settings;
use poststelle::domain::{DecidedBy, Decision, DocumentId, Explanation, InboundMail, MailboxId};
use poststelle::outgoing::{Outgoing, vorgangsnummer};
use poststelle::store::outgoing::AckRecord;
use poststelle::store::{Inserted, NewDocument, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A config with outgoing mail to a plain SMTP server on 127.0.0.1:`port`; `extra` TOML tables
/// are appended, `env` overrides applied as the daemon would.
fn settings(dir: &Path, port: u16, extra: &str, env: &[(&str, &str)]) -> Settings {
    let text = format!(
        r#"
[municipality]
name = "Musterstadt"

[store]
url = "sqlite://{db}"
blobs = "{blobs}"

[review]
mailbox = "poststelle"
name = "Poststelle – Prüfung"
digest_to = ["leitung-poststelle@musterstadt.de"]

[[mailboxes]]
id = "22"
name = "Steueramt"
digest_to = ["steueramt@musterstadt.de", "kaemmerer@musterstadt.de"]

[[mailboxes]]
id = "63"
name = "Bauordnung"

[outgoing]
enabled = true
from_address = "poststelle@musterstadt.de"
from_name = "Poststelle der Stadt Musterstadt"
max_attempts = 3
retry_base_secs = 1
retry_max_secs = 2

[outgoing.smtp]
host = "127.0.0.1"
port = {port}
tls = "plain"
timeout_secs = 5

{extra}
"#,
        db = dir.join("t.db").display(),
        blobs = dir.join("blobs").display(),
    );
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Settings::parse(&dir.join("test.toml"), &text, &env).expect("valid config")
}

async fn setup(dir: &Path, port: u16, extra: &str, env: &[(&str, &str)]) -> (Store, Arc<Outgoing>) {
    let s = settings(dir, port, extra, env);
    let store = Store::open(&s.store.url).await.expect("store");
    let o = Outgoing::new(store.clone(), s.outgoing.clone(), s.outgoing_recipients());
    (store, o)
}

fn inbound(from: &str, message_id: &str, subject: &str) -> InboundMail {
    InboundMail {
        document_id: DocumentId::new(),
        account: "poststelle".into(),
        message_id: Some(message_id.into()),
        from_address: Some(from.into()),
        from_name: Some("Eva Schmitz".into()),
        to: vec!["poststelle@musterstadt.de".into()],
        subject: Some(subject.into()),
        received_at: Utc::now(),
        auto_submitted: None,
        precedence: None,
        list_id: None,
        acknowledge: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_goes_once_to_a_person_in_german_with_reference() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = SmtpSink::start(free_port(), &dir.path().join("mail"), &[]);
    let (store, o) = setup(dir.path(), sink.port, "", &[]).await;
    let mail = inbound(
        "eva.schmitz@example.org",
        "<a1b2c3@example.org>",
        "Anmeldung Hundesteuer",
    );
    let observer = o.observer();
    observer.committed(&mail).await.expect("first");
    // Reported again (e.g. after a crash before the IMAP flag was set): nothing new.
    observer.committed(&mail).await.expect("second");
    assert_eq!(
        o.acknowledge(&mail).await.expect("third"),
        AckRecord::AlreadyHandled
    );
    let pass = o.send_now().await.expect("send");
    assert_eq!(pass.sent, 1);
    let got = sink.wait_for(1, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1, "exactly one acknowledgement");
    let m = &got[0];
    assert_eq!(m.rcpt_tos, ["eva.schmitz@example.org"]);
    assert_eq!(m.mail_from, "poststelle@musterstadt.de");
    let nummer = vorgangsnummer(&mail.document_id);
    let subject = m.header("Subject").expect("subject");
    assert!(subject.starts_with("Eingangsbestätigung"), "{subject}");
    assert!(subject.contains(&nummer), "{subject}");
    assert!(subject.contains("Anmeldung Hundesteuer"), "{subject}");
    assert_eq!(m.header("Auto-Submitted"), Some("auto-replied"));
    assert_eq!(m.header("In-Reply-To"), Some("<a1b2c3@example.org>"));
    assert_eq!(m.header("References"), Some("<a1b2c3@example.org>"));
    assert!(m.header("To").unwrap_or_default().contains("Eva Schmitz"));
    let body = &m.body;
    assert!(body.contains("Guten Tag Eva Schmitz,"), "{body}");
    assert!(
        body.contains("wir bestätigen den Eingang Ihrer E-Mail"),
        "{body}"
    );
    assert!(
        body.contains(&format!("Vorgangsnummer:  {nummer}")),
        "{body}"
    );
    assert!(body.contains(mail.document_id.as_str()), "{body}");
    let received = poststelle::outgoing::templates::german_time(mail.received_at);
    assert!(
        body.contains(&format!("Eingegangen am:  {received}")),
        "{body}"
    );
    assert!(
        body.contains("Betreff:         Anmeldung Hundesteuer"),
        "{body}"
    );
    // Stored as sent, with the audit trail on the document.
    let rows = store.outgoing_list(10).await.expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "sent");
    let kinds: Vec<String> = store
        .events(&mail.document_id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["mail_queued", "acknowledgement_queued", "mail_sent"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledgement_to_auto_replies_lists_bulk_or_no_reply() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = SmtpSink::start(free_port(), &dir.path().join("mail"), &[]);
    let (_store, o) = setup(dir.path(), sink.port, "", &[]).await;
    let mut auto = inbound("eva@example.org", "m1@example.org", "Abwesenheit");
    auto.auto_submitted = Some("auto-replied".into());
    let mut list = inbound("liste@example.org", "m2@example.org", "Newsletter");
    list.list_id = Some("<news.example.org>".into());
    let mut bulk = inbound("werbung@example.org", "m3@example.org", "Angebot");
    bulk.precedence = Some("bulk".into());
    let noreply = inbound("no-reply@amt.example.org", "m4@example.org", "Bescheid");
    let daemon = inbound(
        "MAILER-DAEMON@example.org",
        "m5@example.org",
        "Unzustellbar",
    );
    let mut off = inbound("erika@example.org", "m6@example.org", "Frage");
    off.acknowledge = false;
    for m in [&auto, &list, &bulk, &noreply, &daemon, &off] {
        match o.acknowledge(m).await.expect("decide") {
            AckRecord::Suppressed(reason) => assert!(!reason.is_empty()),
            other => panic!(
                "{:?} must get no acknowledgement, got {other:?}",
                m.from_address
            ),
        }
    }
    let person = inbound("max@example.org", "m7@example.org", "Frage zum Bauantrag");
    assert!(matches!(
        o.acknowledge(&person).await.expect("decide"),
        AckRecord::Queued(_)
    ));
    o.send_now().await.expect("send");
    sink.wait_for(1, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.messages();
    assert_eq!(got.len(), 1, "only the person gets one");
    assert_eq!(got[0].rcpt_tos, ["max@example.org"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_are_rate_limited_per_sender() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = SmtpSink::start(free_port(), &dir.path().join("mail"), &[]);
    let (_store, o) = setup(
        dir.path(),
        sink.port,
        "[outgoing.acknowledgements]\nmax_per_sender_per_hour = 2\nmax_per_sender_per_day = 5\n",
        &[],
    )
    .await;
    let mut outcomes = Vec::new();
    for i in 0..4 {
        // The sender's address in another spelling counts as the same sender.
        let from = if i % 2 == 0 {
            "robot@example.org"
        } else {
            "Robot@Example.org"
        };
        let m = inbound(from, &format!("r{i}@example.org"), "Schleife?");
        outcomes.push(o.acknowledge(&m).await.expect("decide"));
    }
    assert!(matches!(outcomes[0], AckRecord::Queued(_)));
    assert!(matches!(outcomes[1], AckRecord::Queued(_)));
    for o in &outcomes[2..] {
        match o {
            AckRecord::Suppressed(r) => assert!(r.contains("pro Stunde"), "{r}"),
            other => panic!("limit must hold: {other:?}"),
        }
    }
    let other = inbound("eva@example.org", "e1@example.org", "Frage");
    assert!(matches!(
        o.acknowledge(&other).await.expect("decide"),
        AckRecord::Queued(_)
    ));
    o.send_now().await.expect("send");
    sink.wait_for(3, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let mut to: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| m.rcpt_tos.join(","))
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["Robot@Example.org", "eva@example.org", "robot@example.org"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_while_the_server_is_down_arrives_once_when_it_is_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let (store, o) = setup(
        dir.path(),
        port,
        "",
        &[("POSTSTELLE__OUTGOING__MAX_ATTEMPTS", "50")],
    )
    .await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(o.clone().run(cancel.clone()));
    let mail = inbound("eva@example.org", "down1@example.org", "Antrag");
    o.observer().committed(&mail).await.expect("queued");
    // Nobody listens: the attempt fails and is scheduled again, recorded in the store.
    let row = wait_for("a failed attempt", WAIT, || {
        let rows = futures_block(store.outgoing_list(10));
        rows.into_iter()
            .find(|r| r.attempts >= 1 && r.state == "queued")
    });
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("Versand fehlgeschlagen"),
        "{row:?}"
    );
    let sink = SmtpSink::start(port, &dir.path().join("mail"), &[]);
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_tos, ["eva@example.org"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 1, "arrives exactly once");
    let rows = store.outgoing_list(10).await.expect("list");
    assert_eq!(rows[0].state, "sent");
    assert!(rows[0].attempts >= 2, "{:?}", rows[0]);
    // The server goes away again: a new mail waits in the store, nothing is lost.
    sink.kill();
    let mail2 = inbound("eva@example.org", "down2@example.org", "Nachtrag");
    o.observer().committed(&mail2).await.expect("queued");
    wait_for("second mail failed once", WAIT, || {
        futures_block(store.outgoing_list(10))
            .into_iter()
            .find(|r| r.attempts >= 1 && r.state == "queued")
    });
    let sink = SmtpSink::start(port, &dir.path().join("mail"), &[]);
    let got = sink.wait_for(2, WAIT);
    assert_eq!(got.len(), 2);
    cancel.cancel();
    running.await.expect("worker ends");
}

/// Runs a store future from the synchronous polling closure of [`wait_for`].
fn futures_block<T>(f: impl std::future::Future<Output = poststelle::store::Result<T>>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_and_too_many_attempts_end_dead_with_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = SmtpSink::start(free_port(), &dir.path().join("mail"), &["--reject", "550"]);
    let (store, o) = setup(dir.path(), sink.port, "", &[]).await;
    o.acknowledge(&inbound("eva@example.org", "p1@example.org", "A"))
        .await
        .expect("queued");
    let pass = o.send_now().await.expect("send");
    assert_eq!(pass.dead, 1, "{pass:?}");
    let rows = store.outgoing_list(10).await.expect("list");
    assert_eq!(rows[0].state, "dead");
    let reason = rows[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("dauerhaft ab"), "{reason}");
    assert!(reason.contains("550"), "{reason}");
    sink.kill();

    // Nobody listens at all: three attempts (max_attempts = 3), then dead.
    let dir = tempfile::tempdir().expect("tmp");
    let (store, o) = setup(dir.path(), free_port(), "", &[]).await;
    o.acknowledge(&inbound("eva@example.org", "p2@example.org", "B"))
        .await
        .expect("queued");
    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(o.clone().run(cancel.clone()));
    let row = wait_for("dead after three attempts", WAIT, || {
        futures_block(store.outgoing_list(10))
            .into_iter()
            .find(|r| r.state == "dead")
    });
    assert_eq!(row.attempts, 3);
    let reason = row.last_error.unwrap_or_default();
    assert!(reason.contains("nach 3 Versuchen aufgegeben"), "{reason}");
    cancel.cancel();
    running.await.expect("worker ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_tls_with_auth_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = test_certificates(dir.path());
    let (cert, key, ca) = (
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
    );
    for mode in ["starttls", "tls"] {
        let sub = dir.path().join(mode);
        std::fs::create_dir_all(&sub).expect("dir");
        let sink = SmtpSink::start(
            free_port(),
            &sub.join("mail"),
            &[
                "--mode",
                mode,
                "--cert",
                &cert,
                "--key",
                &key,
                "--user",
                "poststelle",
                "--password",
                "geheim-42",
            ],
        );
        let port = sink.port.to_string();
        let env = [
            ("POSTSTELLE__OUTGOING__SMTP__TLS", mode),
            ("POSTSTELLE__OUTGOING__SMTP__CA_FILE", ca.as_str()),
            ("POSTSTELLE__OUTGOING__SMTP__USER", "poststelle"),
            ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "geheim-42"),
            ("POSTSTELLE__OUTGOING__SMTP__PORT", port.as_str()),
        ];
        let (store, o) = setup(&sub, sink.port, "", &env).await;
        o.acknowledge(&inbound(
            "eva@example.org",
            &format!("{mode}@example.org"),
            "T",
        ))
        .await
        .expect("queued");
        let pass = o.send_now().await.expect("send");
        assert_eq!(
            pass.sent,
            1,
            "{mode}: {pass:?} {:?}",
            store.outgoing_list(1).await
        );
        let got = sink.wait_for(1, WAIT);
        assert!(got[0].tls, "{mode}: encrypted");
        assert!(got[0].authenticated, "{mode}: authenticated");

        // A wrong password is refused by the server: the mail is not lost silently but dead
        // with the server's answer.
        let sub2 = sub.join("wrong");
        std::fs::create_dir_all(&sub2).expect("dir");
        let mut env2 = env;
        env2[3] = ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "falsch");
        let (store, o) = setup(&sub2, sink.port, "", &env2).await;
        o.acknowledge(&inbound(
            "eva@example.org",
            &format!("{mode}-2@example.org"),
            "T",
        ))
        .await
        .expect("queued");
        let pass = o.send_now().await.expect("send");
        assert_eq!(pass.sent, 0, "{mode}");
        let row = &store.outgoing_list(1).await.expect("list")[0];
        assert_ne!(row.state, "sent");
        assert!(row.last_error.is_some(), "{row:?}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(sink.messages().len(), 1, "{mode}");
    }
    // Without the test CA the server's certificate is not trusted.
    let sub = dir.path().join("untrusted");
    std::fs::create_dir_all(&sub).expect("dir");
    let sink = SmtpSink::start(
        free_port(),
        &sub.join("mail"),
        &["--mode", "starttls", "--cert", &cert, "--key", &key],
    );
    let (store, o) = setup(
        &sub,
        sink.port,
        "",
        &[("POSTSTELLE__OUTGOING__SMTP__TLS", "starttls")],
    )
    .await;
    o.acknowledge(&inbound("eva@example.org", "u@example.org", "T"))
        .await
        .expect("queued");
    assert_eq!(o.send_now().await.expect("send").sent, 0);
    assert!(sink.messages().is_empty());
    assert_eq!(
        store.outgoing_list(1).await.expect("list")[0].state,
        "queued"
    );
}

// ----------------------------------------------------------------------------------------------
// Digests.

async fn document(
    store: &Store,
    name: &str,
    mailbox: &str,
    subject: &str,
    confidence: f64,
    review: bool,
) -> DocumentId {
    let sha = format!("{:0>64}", hex_of(name));
    let Inserted::New(id) = store
        .insert_received(
            &NewDocument {
                sha256: sha,
                source: "test".into(),
                original_name: name.into(),
                media_type: "text/plain".into(),
                size_bytes: 10,
                arrived_at: None,
            },
            "test",
        )
        .await
        .expect("insert")
    else {
        panic!("new document")
    };
    store
        .set_extracted(&id, subject, "{}", serde_json::json!({}))
        .await
        .expect("extracted");
    let decision = Decision {
        mailbox: MailboxId::parse(mailbox),
        confidence,
        decided_by: DecidedBy::Combined,
        needs_review: review,
        explanation: Explanation {
            subject: Some(subject.into()),
            review_reason: review.then(|| "Sicherheit unter der Schwelle".to_string()),
            ..Explanation::default()
        },
    };
    store.set_decision(&id, &decision).await.expect("decided");
    if !review {
        let version = store.get(&id).await.expect("document").version;
        let delivered = store
            .mark_delivered(
                &id,
                "dms",
                "ref",
                &MailboxId::parse(mailbox).expect("mailbox"),
                version,
            )
            .await
            .expect("delivered");
        assert!(delivered);
    }
    id
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_list_delivered_and_review_items_once_per_period() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = SmtpSink::start(free_port(), &dir.path().join("mail"), &[]);
    let (store, o) = setup(dir.path(), sink.port, "", &[]).await;
    let steuer = document(
        &store,
        "hund.txt",
        "22",
        "Anmeldung Hundesteuer",
        0.93,
        false,
    )
    .await;
    let bau = document(
        &store,
        "bau.pdf",
        "63",
        "Bauantrag Wintergarten",
        0.97,
        false,
    )
    .await;
    let unsicher = document(&store, "unklar.pdf", "22", "Allgemeine Anfrage", 0.41, true).await;
    let now = Utc::now();
    let out = o.digests(now, true, true).await.expect("digests");
    assert_eq!(
        out.len(),
        2,
        "department 22 and the Poststelle (63 has no digest_to)"
    );
    assert!(out.iter().all(|d| d.queued));
    // Same period again (e.g. after a restart): nothing.
    assert!(o.digests(now, true, true).await.expect("again").is_empty());
    o.send_now().await.expect("send");
    let got = sink.wait_for(2, WAIT);
    let dept = got
        .iter()
        .find(|m| m.rcpt_tos.contains(&"steueramt@musterstadt.de".to_string()))
        .expect("department digest");
    assert_eq!(
        dept.rcpt_tos,
        ["steueramt@musterstadt.de", "kaemmerer@musterstadt.de"]
    );
    let subject = dept.header("Subject").expect("subject");
    assert_eq!(
        subject,
        "Tagesübersicht Postfach 22 (Steueramt): 1 Eingänge"
    );
    assert!(
        dept.body.contains(&vorgangsnummer(&steuer)),
        "{}",
        dept.body
    );
    assert!(dept.body.contains("Anmeldung Hundesteuer"), "{}", dept.body);
    assert!(dept.body.contains("Sicherheit: 93 %"), "{}", dept.body);
    assert!(!dept.body.contains(&vorgangsnummer(&bau)), "not for 22");
    assert!(
        !dept.body.contains(&vorgangsnummer(&unsicher)),
        "in review, not delivered"
    );
    let rev = got
        .iter()
        .find(|m| m.rcpt_tos == ["leitung-poststelle@musterstadt.de"])
        .expect("review digest");
    assert!(
        rev.body.contains(&vorgangsnummer(&unsicher)),
        "{}",
        rev.body
    );
    assert!(
        rev.body.contains("Grund: Sicherheit unter der Schwelle"),
        "{}",
        rev.body
    );
    assert!(rev.body.contains("Vorschlag: Postfach 22"), "{}", rev.body);
    assert!(!rev.body.contains(&vorgangsnummer(&steuer)));
    assert_eq!(rev.header("Auto-Submitted"), Some("auto-generated"));

    // Next day: only what was delivered since the last digest.
    let neu = document(
        &store,
        "hund2.txt",
        "22",
        "Abmeldung Hundesteuer",
        0.88,
        false,
    )
    .await;
    let tomorrow = now + chrono::Duration::days(1);
    let out = o.digests(tomorrow, true, true).await.expect("next day");
    let d22 = out.iter().find(|d| d.mailbox == "22").expect("22");
    assert_eq!(d22.items, 1);
    assert!(d22.body.contains(&vorgangsnummer(&neu)));
    assert!(!d22.body.contains(&vorgangsnummer(&steuer)), "not twice");
    // A period without deliveries is recorded but sends nothing.
    let out = o
        .digests(tomorrow + chrono::Duration::days(1), true, true)
        .await
        .expect("day after");
    let d22 = out.iter().find(|d| d.mailbox == "22").expect("22");
    assert_eq!(d22.items, 0);
    assert!(!d22.queued);
}

/// Environment for a daemon or command with outgoing mail to `port` (digests at 00:00, so the
/// period of today is due at once; mailbox 22 is element 4 of the example config).
fn outgoing_env(port: u16) -> Vec<(String, String)> {
    [
        ("POSTSTELLE__OUTGOING__ENABLED", "true".to_string()),
        (
            "POSTSTELLE__OUTGOING__FROM_ADDRESS",
            "poststelle@musterstadt.de".into(),
        ),
        ("POSTSTELLE__OUTGOING__RETRY_BASE_SECS", "1".into()),
        ("POSTSTELLE__OUTGOING__RETRY_MAX_SECS", "1".into()),
        ("POSTSTELLE__OUTGOING__SMTP__HOST", "127.0.0.1".into()),
        ("POSTSTELLE__OUTGOING__SMTP__PORT", port.to_string()),
        ("POSTSTELLE__OUTGOING__SMTP__TLS", "plain".into()),
        ("POSTSTELLE__OUTGOING__DIGEST__TIME", "\"00:00\"".into()),
        (
            "POSTSTELLE__MAILBOXES__4__DIGEST_TO",
            "[\"steueramt@musterstadt.de\"]".into(),
        ),
        (
            "POSTSTELLE__REVIEW__DIGEST_TO",
            "[\"leitung-poststelle@musterstadt.de\"]".into(),
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect()
}

async fn install_documents(install: &Install) -> (DocumentId, DocumentId) {
    let store = Store::open(&install.store_url).await.expect("store");
    let a = document(
        &store,
        "hund.txt",
        "22",
        "Anmeldung Hundesteuer",
        0.91,
        false,
    )
    .await;
    let b = document(&store, "frage.txt", "10", "Allgemeine Frage", 0.4, true).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_command_prints_and_sends_now() {
    let install = Install::new();
    let (a, b) = install_documents(&install).await;
    let sink = SmtpSink::start(free_port(), &install.path("mail"), &[]);
    let env = outgoing_env(sink.port);
    let out = install
        .command()
        .envs(env.clone())
        .arg("digest")
        .output()
        .expect("digest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("==> 22 to steueramt@musterstadt.de"),
        "{text}"
    );
    assert!(text.contains(&vorgangsnummer(&a)), "{text}");
    assert!(text.contains(&vorgangsnummer(&b)), "{text}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty(), "printing sends nothing");
    let out = install
        .command()
        .envs(env.clone())
        .args(["digest", "--send"])
        .output()
        .expect("digest --send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent: 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sink.wait_for(2, WAIT).len(), 2);
    // A second manual digest starts where the first ended: the department has nothing new.
    let out = install
        .command()
        .envs(env)
        .arg("digest")
        .output()
        .expect("digest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Postfach 22 (Steueramt): 0 Eingänge"),
        "{text}"
    );
    assert!(!text.contains(&vorgangsnummer(&a)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_queueing_and_sending_a_digest_sends_it_once_after_restart() {
    let install = Install::new();
    let (a, b) = install_documents(&install).await;
    let port = free_port();
    let env = outgoing_env(port);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let mut paused = env_ref.clone();
    paused.push(("POSTSTELLE_PAUSE_AT", "before_mail_send"));
    paused.push(("POSTSTELLE_PAUSE_MARKER", &marker_s));
    let d = install.serve(&paused);
    wait_file(&marker, Duration::from_secs(120));
    let store = Store::open(&install.store_url).await.expect("store");
    // Both digests of today are in the queue; the process stops before sending.
    wait_for("two queued digests", WAIT, || {
        let rows = futures_block(store.outgoing_list(10));
        (rows.len() == 2 && rows.iter().all(|r| r.state == "queued")).then_some(())
    });
    d.kill();
    // The SMTP server comes up only now; the restarted daemon sends what the store holds.
    let sink = SmtpSink::start(port, &install.path("mail"), &[]);
    let d = install.serve(&env_ref);
    let got = sink.wait_for(2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 2, "each digest exactly once");
    let dept = got
        .iter()
        .find(|m| m.rcpt_tos == ["steueramt@musterstadt.de"])
        .expect("department digest");
    assert!(dept.body.contains(&vorgangsnummer(&a)), "{}", dept.body);
    let rev = got
        .iter()
        .find(|m| m.rcpt_tos == ["leitung-poststelle@musterstadt.de"])
        .expect("review digest");
    assert!(rev.body.contains(&vorgangsnummer(&b)), "{}", rev.body);
    d.kill();
    // Another restart in the same period sends no digest again.
    let _d = install.serve(&env_ref);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sink.messages().len(), 2, "not repeated after a restart");
    let rows = store.outgoing_list(10).await.expect("list");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == "sent"), "{rows:?}");
}
