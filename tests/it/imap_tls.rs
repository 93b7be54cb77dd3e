//! IMAP intake over TLS against a real Dovecot (Debian package `dovecot-imapd`) started by the
//! test on 127.0.0.1 with a certificate from a test CA made with `openssl`: with `ca_file` naming
//! that CA, mail is filed exactly once over implicit TLS and over STARTTLS; without it the
//! certificate is refused, the mail stays on the server and the daemon keeps running. The
//! daemon runs in-process; its log is read from the install like a child daemon's.

use crate::harness::dovecot::{self, Dovecot};
use crate::harness::{Install, TestApp, spawn_app, wait_for};
use std::path::Path;
use std::time::Duration;

/// A Dovecot with TLS and the test CA that signed its certificate.
fn tls_server() -> (Dovecot, tempfile::TempDir, std::path::PathBuf) {
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = crate::harness::smtp::test_certificates(certs.path());
    let server = Dovecot::start_tls(&cert, &key);
    (server, certs, ca)
}

/// One `[[intake.imap.accounts]]` entry (inline TOML).
fn account(name: &str, port: u16, tls: &str, ca_file: Option<&Path>) -> String {
    let ca = ca_file
        .map(|p| format!(", ca_file = {:?}", p.display().to_string()))
        .unwrap_or_default();
    format!(
        r#"{{name = "{name}", host = "127.0.0.1", port = {port}, tls = "{tls}"{ca}, user = "{}", password = "{}", folders = ["INBOX"], processed_folder = "Erledigt", quarantine_folder = "Quarantaene", poll_secs = 1, max_failures = 3}}"#,
        dovecot::USER,
        dovecot::PASSWORD
    )
}

fn serve(accounts: &[String]) -> TestApp {
    let list = format!("[{}]", accounts.join(", "));
    spawn_app(&[
        ("POSTSTELLE__INTAKE__IMAP__ENABLED", "true"),
        ("POSTSTELLE__INTAKE__IMAP__TIMEOUT_SECS", "20"),
        ("POSTSTELLE__INTAKE__IMAP__ACCOUNTS", &list),
        ("POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED", "false"),
    ])
}

/// A plain-text e-mail to the building authority's address (routed by recipient to 63).
fn letter(n: usize) -> Vec<u8> {
    format!(
        "From: Erika Mustermann <erika{n}@example.org>\r\n\
To: bauordnung@musterstadt.de\r\n\
Subject: Bauantrag Gartenhaus Lindenweg {n}\r\n\
Date: Mon, 3 Feb 2025 10:00:00 +0100\r\n\
Message-ID: <tls-{n}@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\
Sehr geehrte Damen und Herren,\r\n\r\n\
anbei beantrage ich die Baugenehmigung für ein Gartenhaus auf dem Grundstück Lindenweg {n}.\r\n\r\n\
Mit freundlichen Grüßen\r\nErika Mustermann\r\n"
    )
    .into_bytes()
}

/// The daemon's log (every run on this install), without terminal colour codes.
fn daemon_log(install: &Install) -> String {
    let mut raw = String::new();
    for e in std::fs::read_dir(install.path("")).expect("dir").flatten() {
        if e.file_name().to_string_lossy().starts_with("serve-") {
            raw.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the one message left INBOX and its document was delivered, then checks it was
/// filed exactly once, into 63, as the original e-mail.
fn assert_filed_once(install: &Install, server: &Dovecot) {
    wait_for("mail filed", Duration::from_secs(180), || {
        let docs = install.documents();
        (server.messages("INBOX").is_empty()
            && server.messages("Erledigt").len() == 1
            && !docs.is_empty()
            && docs.iter().all(|d| d["state"] == "delivered"))
        .then_some(())
    });
    let docs = install.documents();
    assert_eq!(docs.len(), 1, "one document: {docs:?}");
    assert!(
        docs[0]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("imap:"))
    );
    let delivered = install.delivered();
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:?}");
    assert_eq!(delivered[0].0, "63");
    assert_eq!(
        delivered[0].1.extension().and_then(|e| e.to_str()),
        Some("eml")
    );
}

#[test]
fn implicit_tls_with_the_town_ca_in_ca_file_files_the_mail_once() {
    let (server, _certs, ca) = tls_server();
    server.append("INBOX", &[letter(1)]);
    let d = serve(&[account("poststelle", server.imaps_port, "tls", Some(&ca))]);
    let install: &Install = &d;
    assert_filed_once(install, &server);
    assert!(
        server.tls_logins() >= 1,
        "the daemon logged in over TLS: {}",
        server.log()
    );
    // Nothing comes twice on later polls.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(install.delivered().len(), 1);
    d.stop();
}

#[test]
fn starttls_with_the_town_ca_in_ca_file_files_the_mail_once() {
    let (server, _certs, ca) = tls_server();
    server.append("INBOX", &[letter(2)]);
    let d = serve(&[account("poststelle", server.port, "starttls", Some(&ca))]);
    let install: &Install = &d;
    assert_filed_once(install, &server);
    assert!(
        server.tls_logins() >= 1,
        "the daemon logged in after STARTTLS: {}",
        server.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(install.delivered().len(), 1);
    d.stop();
}

#[test]
fn without_ca_file_the_untrusted_certificate_is_refused_and_the_mail_stays() {
    let (server, _certs, _ca) = tls_server();
    server.append("INBOX", &[letter(3)]);
    let d = serve(&[
        account("implizit", server.imaps_port, "tls", None),
        account("starttls", server.port, "starttls", None),
    ]);
    let install: &Install = &d;
    // Each account reports the untrusted certificate, and retries (at least twice each).
    let log = wait_for(
        "both accounts refused the certificate twice",
        Duration::from_secs(60),
        || {
            let log = daemon_log(install);
            let refused = |name: &str| {
                log.lines()
                    .filter(|l| {
                        l.contains(&format!("account=\"{name}\""))
                            || l.contains(&format!("account={name}"))
                    })
                    .filter(|l| l.contains("not trusted") && l.contains("ca_file"))
                    .count()
            };
            (refused("implizit") >= 2 && refused("starttls") >= 2).then_some(log)
        },
    );
    assert!(
        log.contains("UnknownIssuer"),
        "the rustls reason is kept: {log}"
    );
    // The daemon keeps running and answers.
    assert!(d.is_running(), "daemon still running: {log}");
    let mut s = std::net::TcpStream::connect(d.addr()).expect("connect api");
    use std::io::{Read, Write};
    s.write_all(b"GET /health HTTP/1.0\r\n\r\n").expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.contains(" 200"), "{resp}");
    // No login, nothing taken.
    assert_eq!(server.tls_logins(), 0, "{}", server.log());
    assert_eq!(server.messages("INBOX").len(), 1);
    assert!(server.messages("Erledigt").is_empty());
    assert!(install.documents().is_empty());
    assert!(install.delivered().is_empty());
    assert!(d.is_running(), "daemon still running");
    d.stop();
}

#[test]
fn with_ca_file_a_certificate_that_does_not_name_the_host_is_still_refused() {
    // The test certificate names only IP 127.0.0.1; `localhost` reaches the same server.
    let (server, _certs, ca) = tls_server();
    server.append("INBOX", &[letter(4)]);
    let mut acc = account("poststelle", server.imaps_port, "tls", Some(&ca));
    acc = acc.replace(r#"host = "127.0.0.1""#, r#"host = "localhost""#);
    let d = serve(&[acc]);
    let install: &Install = &d;
    let log = wait_for(
        "the certificate refused for the host name",
        Duration::from_secs(60),
        || {
            let log = daemon_log(install);
            log.lines()
                .any(|l| {
                    l.contains("not valid for name \"localhost\"")
                        && l.contains("does not name this host")
                })
                .then_some(log)
        },
    );
    assert!(d.is_running(), "daemon running: {log}");
    assert_eq!(server.tls_logins(), 0, "{}", server.log());
    assert_eq!(server.messages("INBOX").len(), 1);
    assert!(install.documents().is_empty());
    d.stop();
}
