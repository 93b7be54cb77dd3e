//! E-mail end to end: messages appended to a real Dovecot are taken by the daemon's IMAP intake,
//! filed into the right `dms/<mailbox>/` (or review) exactly once, and every person who wrote
//! gets exactly one Eingangsbestätigung, received by a real SMTP server (aiosmtpd) — never an
//! auto-reply or a list mail, and not twice after the daemon is killed between committing a
//! message and marking it on the server.

use crate::harness;
use crate::harness::dovecot::{self, Dovecot};
use crate::harness::smtp::{SmtpSink, free_port};
use crate::harness::{Install, wait_for};
use std::time::Duration;

fn env(server: &Dovecot, smtp_port: u16) -> Vec<(String, String)> {
    vec![
        ("POSTSTELLE__INTAKE__IMAP__ENABLED".into(), "true".into()),
        (
            "POSTSTELLE__INTAKE__IMAP__ACCOUNTS".into(),
            format!(
                r#"[{{name = "poststelle", host = "127.0.0.1", port = {}, tls = "plain", user = "{}", password = "{}", folders = ["INBOX"], processed_folder = "Erledigt", quarantine_folder = "Quarantaene", poll_secs = 1, max_failures = 3, acknowledge = true}}]"#,
                server.port,
                dovecot::USER,
                dovecot::PASSWORD
            ),
        ),
        (
            "POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED".into(),
            "false".into(),
        ),
        ("POSTSTELLE__OUTGOING__ENABLED".into(), "true".into()),
        (
            "POSTSTELLE__OUTGOING__FROM_ADDRESS".into(),
            "poststelle@musterstadt.de".into(),
        ),
        ("POSTSTELLE__OUTGOING__RETRY_BASE_SECS".into(), "1".into()),
        ("POSTSTELLE__OUTGOING__RETRY_MAX_SECS".into(), "1".into()),
        (
            "POSTSTELLE__OUTGOING__SMTP__HOST".into(),
            "127.0.0.1".into(),
        ),
        (
            "POSTSTELLE__OUTGOING__SMTP__PORT".into(),
            smtp_port.to_string(),
        ),
        ("POSTSTELLE__OUTGOING__SMTP__TLS".into(), "plain".into()),
        // No digest in this test: its time of day lies far away.
        (
            "POSTSTELLE__OUTGOING__DIGEST__ENABLED".into(),
            "false".into(),
        ),
    ]
}

fn mail(from: &str, to: &str, subject: &str, mid: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 09:00:00 +0100\r\n\
Message-ID: <{mid}>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[test]
fn mail_in_dovecot_is_filed_once_and_each_person_gets_one_acknowledgement() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp_port = free_port();
    let sink = SmtpSink::start(smtp_port, dir.path(), &[]);
    let install = Install::new();
    let env = env(&server, smtp_port);
    let env_ref = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
        let mut all = env.clone();
        all.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        all
    };

    let messages = vec![
        // A citizen to the Bauordnung's own address: decided by the recipient.
        mail(
            "Erika Mustermann <erika@example.org>",
            "bauordnung@musterstadt.de",
            "Bauantrag Carport Lindenweg 4",
            "bauantrag-1@example.org",
            "",
            "Sehr geehrte Damen und Herren,\r\nanbei mein Bauantrag für einen Carport auf dem \
             Flurstück 12.\r\nMit freundlichen Grüßen\r\nErika Mustermann",
        ),
        // A citizen to the general address: classified.
        mail(
            "Jürgen Weber <j.weber@example.net>",
            "poststelle@musterstadt.de",
            "Hundesteuer Abmeldung",
            "hund-2@example.net",
            "",
            "Guten Tag,\r\nunser Hund ist leider verstorben. Ich möchte ihn zum Monatsende von \
             der Hundesteuer abmelden. Die Steuermarke lege ich bei.\r\nJürgen Weber",
        ),
        // An out-of-office reply: filed, never acknowledged.
        mail(
            "Abwesenheit <m.krause@example.com>",
            "poststelle@musterstadt.de",
            "Abwesenheitsnotiz: Ihr Schreiben",
            "auto-3@example.com",
            "Auto-Submitted: auto-replied\r\n",
            "Ich bin bis zum 8. Dezember nicht im Büro.",
        ),
        // A newsletter: filed, never acknowledged.
        mail(
            "Städtetag Newsletter <newsletter@staedtetag.example>",
            "poststelle@musterstadt.de",
            "Newsletter Dezember",
            "list-4@staedtetag.example",
            "List-Id: <newsletter.staedtetag.example>\r\nPrecedence: list\r\n",
            "Neuigkeiten aus den Kommunen im Dezember.",
        ),
    ];
    server.append("INBOX", &messages);

    // First run: killed after the first message is committed, before it is marked on the server.
    let marker = install.path("imap_after_commit.marker");
    let m = marker.display().to_string();
    let first = env_ref(&[
        ("POSTSTELLE_PAUSE_AT", "imap_after_commit"),
        ("POSTSTELLE_PAUSE_MARKER", &m),
    ]);
    let d = install.serve(
        &first
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
    );
    harness::wait_file(&marker, Duration::from_secs(120));
    d.kill();

    let normal = env_ref(&[]);
    let normal: Vec<(&str, &str)> = normal
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = install.serve(&normal);
    let docs = wait_for(
        "all mail taken and settled",
        Duration::from_secs(300),
        || {
            let docs = install.documents();
            (server.messages("INBOX").is_empty()
                && server.messages("Erledigt").len() == messages.len()
                && docs.len() == messages.len()
                && docs
                    .iter()
                    .all(|d| matches!(d["state"].as_str(), Some("delivered" | "review"))))
            .then_some(docs)
        },
    );
    let acks = sink.wait_for(2, Duration::from_secs(60));
    d.kill();

    // Filed exactly once; the Bauantrag by its recipient address into 63.
    let delivered = install.delivered();
    let delivered_count = docs.iter().filter(|d| d["state"] == "delivered").count();
    assert_eq!(delivered.len(), delivered_count, "{delivered:?}");
    let bau = docs
        .iter()
        .find(|d| d["decided_by"] == "recipient")
        .expect("one document decided by its recipient address");
    assert_eq!(bau["mailbox"], "63", "{bau}");
    assert!(
        delivered.iter().any(|(mb, _)| mb == "63"),
        "Bauantrag filed in 63: {delivered:?}"
    );

    // One acknowledgement per person, none to the robot or the list.
    let mut to: Vec<String> = acks.iter().flat_map(|a| a.rcpt_tos.clone()).collect();
    to.sort();
    assert_eq!(to, ["erika@example.org", "j.weber@example.net"], "{acks:?}");
    for a in &acks {
        assert_eq!(a.header("Auto-Submitted"), Some("auto-replied"));
        assert!(a.header("In-Reply-To").is_some(), "{a:?}");
        assert!(a.body.contains("Vorgangsnummer"), "{}", a.body);
    }

    // A further restart takes nothing again and sends nothing again.
    let d = install.serve(&normal);
    std::thread::sleep(Duration::from_secs(5));
    d.kill();
    assert_eq!(install.documents().len(), messages.len());
    assert_eq!(sink.messages().len(), 2, "no second acknowledgement");
}
