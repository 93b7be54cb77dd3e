//! IMAP intake against a real Dovecot (Debian package `dovecot-imapd`), started by the test on
//! 127.0.0.1: e-mail appended to INBOX must land in the right `dms/<mailbox>/` (or review, or
//! quarantine with a German reason) exactly once, also across SIGKILLs of the daemon, a Dovecot
//! restart and a changed UIDVALIDITY. The crash tests run the daemon as a child process; the
//! big mixed mailbox goes through an in-process daemon.

use crate::harness;
use crate::harness::dovecot::{self, Dovecot};
use crate::harness::{Install, TestApp, wait_for};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

const ACCOUNT: &str = "poststelle";

fn imap_env(server: &Dovecot) -> Vec<(String, String)> {
    vec![
        ("POSTSTELLE__INTAKE__IMAP__ENABLED".into(), "true".into()),
        (
            "POSTSTELLE__INTAKE__IMAP__MAX_MESSAGE_MB".into(),
            "6".into(),
        ),
        ("POSTSTELLE__INTAKE__IMAP__TIMEOUT_SECS".into(), "20".into()),
        (
            "POSTSTELLE__INTAKE__IMAP__ACCOUNTS".into(),
            format!(
                r#"[{{name = "{ACCOUNT}", host = "127.0.0.1", port = {}, tls = "plain", user = "{}", password = "{}", folders = ["INBOX"], processed_folder = "Erledigt", quarantine_folder = "Quarantaene", poll_secs = 1, max_failures = 3}}]"#,
                server.port,
                dovecot::USER,
                dovecot::PASSWORD
            ),
        ),
        (
            "POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED".into(),
            "false".into(),
        ),
    ]
}

/// The daemon as a child process (to be killed), with `extra` (pause points).
fn serve(install: &Install, server: &Dovecot, extra: &[(&str, &str)]) -> harness::Daemon {
    let env = imap_env(server);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    all.extend_from_slice(extra);
    install.serve(&all)
}

/// The daemon in-process, reading `server`.
fn spawn(server: &Dovecot) -> TestApp {
    let env = imap_env(server);
    let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    harness::spawn_app(&env)
}

// ---------------------------------------------------------------------------------------------
// Building messages.

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn b64_line(data: &[u8]) -> String {
    b64(data).replace("\r\n", "")
}

fn encoded_subject(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", b64_line(s.as_bytes()))
}

/// Quoted-printable in ISO-8859-1 (characters outside Latin-1 become '?').
fn qp_latin1(s: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for ch in s.replace("\r\n", "\n").chars() {
        let piece = match ch {
            '\n' => {
                out.push_str("\r\n");
                col = 0;
                continue;
            }
            c if c.is_ascii_graphic() && c != '=' || c == ' ' => c.to_string(),
            c if (c as u32) < 256 => format!("={:02X}", c as u32),
            _ => "?".into(),
        };
        if col + piece.len() > 72 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

struct Letter {
    mailbox: String,
    subject: String,
    body: String,
}

/// Texts of the shipped training corpus, `n` per mailbox, as (subject, body).
fn letters(n: usize) -> Vec<Letter> {
    let mut out = Vec::new();
    let dir = harness::repo().join("training-data/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .skip(3)
            .take(n)
        {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let mailbox = v["mailbox"].as_str().expect("mailbox").to_string();
            let t = v["text"].as_str().expect("text").to_string();
            let (subject, body) = if v["kind"] == "email" {
                let subject = t
                    .lines()
                    .find_map(|l| l.strip_prefix("Betreff: "))
                    .unwrap_or("Anfrage")
                    .to_string();
                let body = t
                    .split_once("\n\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or(t.clone());
                (subject, body)
            } else {
                let subject = t
                    .lines()
                    .find_map(|l| l.strip_prefix("Betreff: "))
                    .map(str::to_string)
                    .unwrap_or_else(|| "Schreiben an die Stadtverwaltung".into());
                (subject, t)
            };
            out.push(Letter {
                mailbox,
                subject,
                body,
            });
        }
    }
    out
}

fn head(n: usize, from: &str, to: &str, subject: &str, mid: &str) -> String {
    format!(
        "Received: from mx.example.org by imap.musterstadt.de; Mon, 3 Feb 2025 10:{:02}:00 +0100\r\n\
From: {from}\r\nTo: {to}\r\nSubject: {}\r\nDate: Mon, 3 Feb 2025 10:{:02}:00 +0100\r\n\
Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\n",
        n % 60,
        encoded_subject(subject),
        n % 60
    )
}

/// The variants a generated letter is sent in.
fn render_mail(n: usize, to: &str, l: &Letter) -> Vec<u8> {
    let from = format!("\"Bürger {n}\" <buerger{n}@example.org>");
    let from = format!(
        "=?UTF-8?B?{}?= <buerger{n}@example.org>",
        b64_line(from.split('"').nth(1).unwrap_or("B").as_bytes())
    );
    let h = head(n, &from, to, &l.subject, &format!("gen-{n}@example.org"));
    let body = crlf(&l.body);
    let m = match n % 7 {
        0 => format!(
            "{h}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        ),
        1 => format!(
            "{h}Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
            qp_latin1(&l.body)
        ),
        2 => format!(
            "{h}Content-Type: multipart/alternative; boundary=\"alt{n}\"\r\n\r\n--alt{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--alt{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><body><p>{}</p></body></html>\r\n--alt{n}--\r\n",
            body.replace("\r\n\r\n", "</p><p>")
        ),
        3 => format!(
            "{h}Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64(format!(
                "<html><body><p>{}</p></body></html>",
                l.body.replace("\n\n", "</p><p>").replace('\n', "<br>")
            )
            .as_bytes())
        ),
        4 => format!(
            "{h}Content-Type: multipart/mixed; boundary=\"mix{n}\"\r\n\r\n--mix{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nGuten Tag,\r\nanbei mein Schreiben als Textdatei.\r\n--mix{n}\r\n\
Content-Type: text/plain; charset=utf-8; name=\"schreiben.txt\"\r\nContent-Disposition: attachment; filename=\"schreiben.txt\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mix{n}--\r\n",
            b64(l.body.as_bytes())
        ),
        5 => {
            let lines: Vec<&str> = l.body.lines().collect();
            let pdf = harness::letter_pdf(
                &lines
                    .iter()
                    .take(50)
                    .enumerate()
                    .map(|(i, t)| (20.0, 20.0 + i as f32 * 5.0, 9.0, *t))
                    .collect::<Vec<_>>(),
            );
            format!(
                "{h}Content-Type: multipart/mixed; boundary=\"mix{n}\"\r\n\r\n--mix{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nSehr geehrte Damen und Herren,\r\nmein Schreiben finden Sie im Anhang (PDF).\r\n--mix{n}\r\n\
Content-Type: application/pdf; name=\"schreiben.pdf\"\r\nContent-Disposition: attachment; filename=\"schreiben.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mix{n}--\r\n",
                b64(&pdf)
            )
        }
        _ => {
            // A forward: the letter arrived elsewhere and is passed on as message/rfc822.
            let inner = format!(
                "From: buerger{n}@example.org\r\nTo: info@musterstadt.de\r\nSubject: {}\r\nMessage-ID: <inner-{n}@example.org>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
                encoded_subject(&l.subject)
            );
            format!(
                "{h}Content-Type: multipart/mixed; boundary=\"fw{n}\"\r\n\r\n--fw{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nZur Kenntnis und weiteren Bearbeitung weitergeleitet.\r\n--fw{n}\r\n\
Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"weitergeleitet.eml\"\r\n\r\n{inner}\r\n--fw{n}--\r\n"
            )
        }
    };
    m.into_bytes()
}

fn image_mail(n: usize, kind: &str, l: &Letter) -> Vec<u8> {
    let lines: Vec<&str> = l.body.lines().take(30).collect();
    let pdf = harness::letter_pdf(
        &lines
            .iter()
            .enumerate()
            .map(|(i, t)| (20.0, 20.0 + i as f32 * 6.0, 11.0, *t))
            .collect::<Vec<_>>(),
    );
    let img = harness::render(&pdf, 150);
    let (mime, name, bytes) = match kind {
        "png" => ("image/png", "scan.png", harness::png(&img)),
        "tiff" => ("image/tiff", "scan.tif", harness::tiff(&[&img])),
        _ => {
            let mut out = Vec::new();
            image::DynamicImage::ImageLuma8(img)
                .write_to(
                    &mut std::io::Cursor::new(&mut out),
                    image::ImageFormat::Jpeg,
                )
                .expect("jpeg");
            ("image/jpeg", "scan.jpg", out)
        }
    };
    let h = head(
        n,
        &format!("buerger{n}@example.org"),
        "poststelle@musterstadt.de",
        &l.subject,
        &format!("img-{n}@example.org"),
    );
    format!(
        "{h}Content-Type: multipart/mixed; boundary=\"im{n}\"\r\n\r\n--im{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nAnbei der eingescannte Brief.\r\n--im{n}\r\n\
Content-Type: {mime}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--im{n}--\r\n",
        b64(&bytes)
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Looking at the results.

fn store_rows(install: &Install) -> Vec<poststelle::store::imap::ImapRowSummary> {
    let url = install.store_url.clone();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = poststelle::store::Store::open(&url).await.expect("store");
        store.imap_rows(ACCOUNT).await.expect("rows")
    })
}

fn quarantine_reasons(install: &Install) -> Vec<poststelle::store::QuarantineEntry> {
    let url = install.store_url.clone();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = poststelle::store::Store::open(&url).await.expect("store");
        store.quarantine_entries(10_000).await.expect("quarantine")
    })
}

fn settled(doc: &serde_json::Value) -> bool {
    matches!(
        doc["state"].as_str(),
        Some("delivered" | "review" | "quarantined" | "dead_letter")
    )
}

/// Waits until INBOX is empty and every document from the intake has come to rest.
fn wait_settled(
    install: &Install,
    server: &Dovecot,
    expect_total: usize,
) -> Vec<serde_json::Value> {
    wait_for(
        "all mail taken and settled",
        Duration::from_secs(600),
        || {
            let inbox = server.messages("INBOX").len();
            let done = server.messages("Erledigt").len() + server.messages("Quarantaene").len();
            if inbox != 0 || done < expect_total {
                return None;
            }
            let docs: Vec<serde_json::Value> = install
                .documents()
                .into_iter()
                .filter(|d| d["source"].as_str().is_some_and(|s| s.starts_with("imap:")))
                .collect();
            docs.iter().all(settled).then_some(docs)
        },
    )
}

/// Every delivered document is in exactly one mailbox folder, once.
fn assert_filed_once(install: &Install, docs: &[serde_json::Value]) -> HashMap<String, String> {
    let mut where_: HashMap<String, String> = HashMap::new();
    for (mb, path) in install.delivered() {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        assert!(
            where_.insert(id.clone(), mb.clone()).is_none(),
            "document {id} delivered twice"
        );
        assert_eq!(
            path.extension().and_then(|e| e.to_str()),
            Some("eml"),
            "delivered as the original e-mail"
        );
    }
    for d in docs {
        let id = d["id"].as_str().expect("id");
        if d["state"] == "delivered" {
            assert_eq!(
                where_.get(id).map(String::as_str),
                d["mailbox"].as_str(),
                "{id} delivered to its mailbox"
            );
        } else {
            assert!(
                !where_.contains_key(id),
                "{id} is {} but delivered",
                d["state"]
            );
        }
    }
    where_
}

fn corpus_files() -> Vec<PathBuf> {
    // Shared corpus of real-world and malformed messages (mail-parser's test set), next to the
    // repository; messages with images are left out to keep OCR time down.
    // `../shared/corpora/eml` from the repository root (or from the checkout's parent), or
    // wherever POSTSTELLE_EML_CORPUS points.
    let root = std::env::var_os("POSTSTELLE_EML_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            harness::repo().join("../shared/corpora/eml"),
            harness::repo().join("../../shared/corpora/eml"),
        ])
        .find(|p| p.is_dir())
        .expect("e-mail corpus ../shared/corpora/eml not found (set POSTSTELLE_EML_CORPUS)");
    let mut out = Vec::new();
    for sub in ["legacy", "malformed", "rfc", "thirdparty"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        for f in files {
            let b = std::fs::read(&f).expect("read corpus");
            if !String::from_utf8_lossy(&b)
                .to_ascii_lowercase()
                .contains("content-type: image")
            {
                out.push(f);
            }
        }
    }
    out
}

#[test]
fn mail_dropped_into_dovecot_is_filed_exactly_once() {
    let server = Dovecot::start();
    let mut messages: Vec<Vec<u8>> = Vec::new();
    // (uid, expectation)
    let mut expect: BTreeMap<u32, (&str, String)> = BTreeMap::new();
    let dept = [
        ("11", "personalamt@musterstadt.de"),
        ("22", "steueramt@musterstadt.de"),
        ("63", "bauordnung@musterstadt.de"),
    ];
    let all = letters(3);
    let mut n = 0;
    for l in &all {
        n += 1;
        if let Some((_, addr)) = dept.iter().find(|(m, _)| *m == l.mailbox) {
            // Mail to a department's own address: decided by the recipient.
            messages.push(render_mail(n, &format!("Fachbereich <{addr}>"), l));
            expect.insert(messages.len() as u32, ("recipient", l.mailbox.clone()));
        } else {
            messages.push(render_mail(
                n,
                "Stadt Musterstadt <poststelle@musterstadt.de>",
                l,
            ));
            expect.insert(messages.len() as u32, ("classified", l.mailbox.clone()));
        }
    }
    // The same message delivered twice (other trace header, same Message-ID and body).
    let first = messages[0].clone();
    let mut dup = b"Received: from relay2.example.org; Mon, 3 Feb 2025 10:05:00 +0100\r\n".to_vec();
    dup.extend_from_slice(&first);
    messages.push(dup);
    expect.insert(messages.len() as u32, ("duplicate_of_1", String::new()));
    // One scan of each image kind (OCR).
    for (i, kind) in ["png", "tiff", "jpeg"].iter().enumerate() {
        let l = all.iter().find(|l| l.mailbox == "33").expect("33");
        messages.push(image_mail(900 + i, kind, l));
        expect.insert(messages.len() as u32, ("image", "33".into()));
    }
    // Malformed MIME: a multipart whose boundary never comes, with a broken header line.
    messages.push(
        b"From: kaputt@example.org\r\nTo: poststelle@musterstadt.de\r\nSubject: Antrag Sperrmuell\r\n\
Message-ID: <broken-1@example.org>\r\nContent-Type: multipart/mixed; boundary=\"nie\"\r\nX-Broken header without colon\r\n\r\n\
Bitte holen Sie meinen Sperrmuell ab: Sofa und Schrank, Lindenweg 4.\r\n--falsch\r\nContent-Type: text/plain\r\n\r\nRest"
            .to_vec(),
    );
    expect.insert(messages.len() as u32, ("settled", String::new()));
    // Oversized: 7 MB attachment against max_message_mb = 6.
    let big = vec![b'x'; 7_000_000];
    messages.push(
        format!(
            "From: gross@example.org\r\nTo: poststelle@musterstadt.de\r\nSubject: Pläne\r\nMessage-ID: <big-1@example.org>\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPläne anbei.\r\n--b\r\n\
Content-Type: application/octet-stream; name=\"plan.dwg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(&big)
        )
        .into_bytes(),
    );
    expect.insert(messages.len() as u32, ("too_big", String::new()));
    // Too many attachments (limit 20).
    let mut many = String::from(
        "From: viel@example.org\r\nTo: poststelle@musterstadt.de\r\nSubject: Belege\r\nMessage-ID: <many-1@example.org>\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nBelege anbei.\r\n",
    );
    for i in 0..25 {
        many.push_str(&format!(
            "--m\r\nContent-Type: text/plain; name=\"beleg{i}.txt\"\r\nContent-Disposition: attachment; filename=\"beleg{i}.txt\"\r\n\r\nBeleg {i}\r\n"
        ));
    }
    many.push_str("--m--\r\n");
    messages.push(many.into_bytes());
    expect.insert(messages.len() as u32, ("too_many", String::new()));
    // Real-world and malformed messages of the shared corpus.
    for f in corpus_files() {
        messages.push(std::fs::read(&f).expect("read"));
        expect.insert(messages.len() as u32, ("corpus", f.display().to_string()));
    }
    assert!(messages.len() >= 100, "{} messages", messages.len());
    server.append("INBOX", &messages);
    assert_eq!(server.messages("INBOX").len(), messages.len());

    let daemon = spawn(&server);
    let install: &Install = &daemon;
    let docs = wait_settled(install, &server, messages.len());
    let where_ = assert_filed_once(install, &docs);
    let rows = store_rows(install);
    assert_eq!(rows.len(), messages.len(), "one store row per message");
    let by_uid: HashMap<u32, &poststelle::store::imap::ImapRowSummary> =
        rows.iter().map(|r| (r.uid as u32, r)).collect();
    let docs_by_id: HashMap<&str, &serde_json::Value> = docs
        .iter()
        .map(|d| (d["id"].as_str().unwrap_or(""), d))
        .collect();
    // Every document the intake made belongs to exactly the rows that name it.
    let doc_ids: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r.document_id.as_deref())
        .collect();
    assert_eq!(
        doc_ids.len(),
        docs.len(),
        "no document without a message and vice versa"
    );

    let quarantine = quarantine_reasons(install);
    let mut classified = (0, 0);
    for (uid, (what, info)) in &expect {
        let row = by_uid
            .get(uid)
            .unwrap_or_else(|| panic!("no row for uid {uid}"));
        let doc = row.document_id.as_deref().and_then(|id| docs_by_id.get(id));
        match *what {
            "recipient" => {
                let d = doc.unwrap_or_else(|| panic!("uid {uid} ({what}): no document: {row:?}"));
                assert_eq!(row.state, "marked");
                assert_eq!(d["decided_by"], "recipient", "uid {uid}");
                assert_eq!(d["mailbox"].as_str(), Some(info.as_str()), "uid {uid}");
                assert_eq!(
                    where_.get(d["id"].as_str().unwrap_or("")),
                    Some(info),
                    "uid {uid} filed"
                );
            }
            "classified" | "image" => {
                let d = doc.unwrap_or_else(|| panic!("uid {uid} ({what}): no document: {row:?}"));
                assert_ne!(d["decided_by"], "recipient", "uid {uid}: general address");
                assert!(
                    matches!(d["state"].as_str(), Some("delivered" | "review")),
                    "uid {uid}: {d}"
                );
                classified.1 += 1;
                if d["mailbox"].as_str() == Some(info.as_str()) {
                    classified.0 += 1;
                }
            }
            "duplicate_of_1" => {
                assert_eq!(row.state, "marked");
                assert_eq!(
                    row.document_id, by_uid[&1].document_id,
                    "same document as uid 1"
                );
            }
            "too_big" => {
                assert_eq!(row.state, "quarantined");
                assert!(row.document_id.is_none());
                let r = row.reason.as_deref().unwrap_or("");
                assert!(r.contains("größer als die erlaubten 6 MB"), "{r}");
                assert!(quarantine.iter().any(|q| q.reason == r));
            }
            "too_many" => {
                let d = doc.unwrap_or_else(|| panic!("uid {uid} ({what}): no document: {row:?}"));
                assert_eq!(d["state"], "quarantined");
                let q = quarantine
                    .iter()
                    .find(|q| q.document_id.as_deref() == d["id"].as_str())
                    .expect("quarantine entry");
                assert!(
                    q.reason.contains("mehr als die erlaubten 20 Anhänge"),
                    "{}",
                    q.reason
                );
            }
            _ => {
                // Corpus and malformed: routed, in review, or quarantined with a German reason.
                assert!(
                    matches!(row.state.as_str(), "marked" | "quarantined"),
                    "{info}"
                );
                if let Some(d) = doc
                    && d["state"] == "quarantined"
                {
                    assert!(
                        quarantine
                            .iter()
                            .any(|q| q.document_id.as_deref() == d["id"].as_str()
                                && !q.reason.is_empty()),
                        "{info}: quarantined without reason"
                    );
                }
            }
        }
    }
    // General-address mail is classified by its content: most of it lands right.
    assert!(
        classified.0 * 10 >= classified.1 * 7,
        "only {}/{} classified mails in the expected mailbox",
        classified.0,
        classified.1
    );
    // The server: nothing left in INBOX, each message in exactly one of the two folders.
    assert_eq!(server.messages("INBOX").len(), 0);
    assert_eq!(
        server.messages("Erledigt").len() + server.messages("Quarantaene").len(),
        messages.len()
    );
    assert_eq!(
        server.messages("Quarantaene").len(),
        rows.iter().filter(|r| r.state == "quarantined").count()
    );
    daemon.stop();
}

fn simple(n: usize, to: &str, l: &Letter) -> Vec<u8> {
    let h = head(
        n,
        &format!("buerger{n}@example.org"),
        to,
        &l.subject,
        &format!("s-{n}-{}@example.org", l.mailbox),
    );
    format!(
        "{h}Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        crlf(&l.body)
    )
    .into_bytes()
}

fn batch(from: usize, count: usize) -> Vec<Vec<u8>> {
    let ls: Vec<Letter> = letters(2)
        .into_iter()
        .filter(|l| l.mailbox == "63")
        .collect();
    (0..count)
        .map(|i| simple(from + i, "bauordnung@musterstadt.de", &ls[i % ls.len()]))
        .collect()
}

fn wait_delivered(install: &Install, server: &Dovecot, total: usize) {
    wait_for("all delivered", Duration::from_secs(300), || {
        let rows_done = || {
            let rows = store_rows(install);
            rows.iter()
                .filter_map(|r| r.document_id.as_ref())
                .all(|id| {
                    rows.iter()
                        .any(|r| r.document_id.as_ref() == Some(id) && r.state == "marked")
                })
        };
        (server.messages("INBOX").is_empty()
            && install.delivered().len() >= total
            && install
                .documents()
                .iter()
                .all(|d| d["state"] == "delivered")
            && rows_done())
        .then_some(())
    });
}

fn assert_exactly_once(install: &Install, server: &Dovecot, total: usize) {
    let docs = install.documents();
    assert_eq!(docs.len(), total, "one document per message");
    let delivered = install.delivered();
    assert_eq!(delivered.len(), total, "each delivered once: {delivered:?}");
    assert!(delivered.iter().all(|(mb, _)| mb == "63"));
    assert_eq!(server.messages("Erledigt").len(), total);
    assert!(server.messages("INBOX").is_empty());
    let rows = store_rows(install);
    let ids: HashSet<_> = rows.iter().filter_map(|r| r.document_id.clone()).collect();
    assert_eq!(ids.len(), total);
    // Each document's message was marked on the server (a row under an old UIDVALIDITY may
    // stay `committed`: that UID no longer exists).
    for id in &ids {
        assert!(
            rows.iter()
                .any(|r| r.document_id.as_ref() == Some(id) && r.state == "marked"),
            "{id} never marked: {rows:?}"
        );
    }
}

#[test]
fn sigkill_during_fetch_after_commit_and_after_delivery_loses_and_duplicates_nothing() {
    let server = Dovecot::start();
    let install = Install::new();
    server.append("INBOX", &batch(0, 4));
    for point in ["imap_after_fetch", "imap_after_commit", "after_deliver"] {
        let marker = install.path(&format!("{point}.marker"));
        let m = marker.display().to_string();
        let d = serve(
            &install,
            &server,
            &[
                ("POSTSTELLE_PAUSE_AT", point),
                ("POSTSTELLE_PAUSE_MARKER", &m),
            ],
        );
        harness::wait_file(&marker, Duration::from_secs(120));
        d.kill();
    }
    let d = serve(&install, &server, &[]);
    wait_delivered(&install, &server, 4);
    d.kill();
    assert_exactly_once(&install, &server, 4);
}

#[test]
fn dovecot_restart_and_uidvalidity_change_lose_and_duplicate_nothing() {
    let mut server = Dovecot::start();
    let install = Install::new();
    server.append("INBOX", &batch(0, 3));
    // Committed but not yet moved when the daemon dies ...
    let marker = install.path("commit.marker");
    let m = marker.display().to_string();
    let d = serve(
        &install,
        &server,
        &[
            ("POSTSTELLE_PAUSE_AT", "imap_after_commit"),
            ("POSTSTELLE_PAUSE_MARKER", &m),
        ],
    );
    harness::wait_file(&marker, Duration::from_secs(120));
    d.kill();
    // ... and the server forgets its UIDs: new UIDVALIDITY, every message renumbered.
    server.stop();
    let inbox = server.maildir("INBOX");
    for e in std::fs::read_dir(&inbox).expect("maildir").flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n == "dovecot-uidlist" || n.starts_with("dovecot.index") {
            std::fs::remove_file(e.path()).expect("remove");
        }
    }
    server.run();
    // New mail after the change must not be skipped.
    server.append("INBOX", &batch(10, 2));
    let d = serve(&install, &server, &[]);
    // Dovecot restarts while the daemon runs and more mail arrives.
    wait_for("first mail taken", Duration::from_secs(120), || {
        (!server.messages("Erledigt").is_empty()).then_some(())
    });
    server.stop();
    std::thread::sleep(Duration::from_millis(500));
    server.run();
    server.append("INBOX", &batch(20, 3));
    wait_delivered(&install, &server, 8);
    d.kill();
    assert_exactly_once(&install, &server, 8);
    let rows = store_rows(&install);
    let validities: HashSet<i64> = rows.iter().map(|r| r.uidvalidity).collect();
    assert_eq!(
        validities.len(),
        2,
        "messages seen under the old and the new UIDVALIDITY"
    );
}

/// An observer that refuses messages whose subject contains "FEHLER" (as an acknowledgement
/// sender would when its mail server is down) and records what it was told.
#[derive(Debug, Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<poststelle::domain::InboundMail>>,
}

impl poststelle::domain::MailObserver for Recorder {
    fn committed<'a>(
        &'a self,
        mail: &'a poststelle::domain::InboundMail,
    ) -> poststelle::domain::ObserverFuture<'a> {
        Box::pin(async move {
            self.seen.lock().expect("lock").push(mail.clone());
            if mail
                .subject
                .as_deref()
                .is_some_and(|s| s.contains("FEHLER"))
            {
                return Err("Versand nicht möglich".into());
            }
            Ok(())
        })
    }
}

#[test]
fn a_failing_message_is_retried_with_backoff_then_quarantined_with_the_reason() {
    use poststelle::config::{ImapAccount, ImapSettings, ImapTls, Secret};
    use poststelle::intake::imap::ImapIntake;
    let server = Dovecot::start();
    let dir = tempfile::tempdir().expect("tmp");
    let good = b"From: Anna <anna@example.org>\r\nTo: bauordnung@musterstadt.de\r\nCc: info@musterstadt.de\r\n\
Subject: Bauantrag\r\nMessage-ID: <good@example.org>\r\n\r\nAnbei mein Bauantrag.\r\n"
        .to_vec();
    let bad = b"From: bert@example.org\r\nTo: poststelle@musterstadt.de\r\nSubject: FEHLER beim Versand\r\n\
Message-ID: <bad@example.org>\r\n\r\nText\r\n"
        .to_vec();
    server.append("INBOX", &[good, bad]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let recorder = std::sync::Arc::new(Recorder::default());
    let url = harness::store_url(dir.path());
    let (rows, quarantine) = rt.block_on(async {
        let store = poststelle::store::Store::open(&url).await.expect("store");
        let intake = poststelle::intake::Intake {
            store: store.clone(),
            blobs: poststelle::store::blobs::BlobStore::open(&dir.path().join("blobs"))
                .expect("blobs"),
            quarantine_dir: dir.path().join("quarantine"),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        };
        let imap = ImapIntake {
            intake,
            settings: ImapSettings {
                enabled: true,
                max_message_bytes: 1024 * 1024,
                timeout: Duration::from_secs(20),
                deliver_as: poststelle::config::MailDelivery::Eml,
                accounts: vec![ImapAccount {
                    name: ACCOUNT.into(),
                    host: "127.0.0.1".into(),
                    port: server.port,
                    tls: ImapTls::Plain,
                    ca_file: None,
                    user: dovecot::USER.into(),
                    password: Secret::new(dovecot::PASSWORD),
                    folders: vec!["INBOX".into()],
                    processed_folder: "Erledigt".into(),
                    quarantine_folder: "Quarantaene".into(),
                    acknowledge: true,
                    poll: Duration::from_secs(1),
                    max_failures: 3,
                    retry_base: Duration::from_secs(1),
                    retry_max: Duration::from_secs(3600),
                }],
            },
            observers: vec![recorder.clone()],
        };
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(imap.run(cancel.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while server.messages("Quarantaene").is_empty() {
            assert!(std::time::Instant::now() < deadline, "never quarantined");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cancel.cancel();
        task.await.expect("join");
        (
            store.imap_rows(ACCOUNT).await.expect("rows"),
            store.quarantine_entries(10).await.expect("q"),
        )
    });
    assert_eq!(server.messages("Erledigt").len(), 1);
    assert_eq!(server.messages("Quarantaene").len(), 1);
    assert!(server.messages("INBOX").is_empty());
    let seen = recorder.seen.lock().expect("lock").clone();
    let good_seen: Vec<_> = seen
        .iter()
        .filter(|m| m.message_id.as_deref() == Some("good@example.org"))
        .collect();
    assert_eq!(good_seen.len(), 1, "told once about the good message");
    assert_eq!(
        good_seen[0].from_address.as_deref(),
        Some("anna@example.org")
    );
    assert_eq!(good_seen[0].from_name.as_deref(), Some("Anna"));
    assert_eq!(
        good_seen[0].to,
        vec!["bauordnung@musterstadt.de", "info@musterstadt.de"]
    );
    assert!(good_seen[0].acknowledge);
    let bad_seen = seen
        .iter()
        .filter(|m| m.message_id.as_deref() == Some("bad@example.org"))
        .count();
    assert_eq!(bad_seen, 3, "three attempts before quarantine");
    let bad_row = rows.iter().find(|r| r.uid == 2).expect("row");
    assert_eq!(bad_row.state, "quarantined");
    assert_eq!(
        bad_row.failures, 2,
        "two recorded failures, the third one quarantines"
    );
    let reason = bad_row.reason.as_deref().unwrap_or("");
    assert!(reason.contains("nach 3 Versuchen"), "{reason}");
    assert!(reason.contains("Versand nicht möglich"), "{reason}");
    assert!(quarantine.iter().any(|q| q.reason == reason));
    // The committed document stays in the store (nothing lost); only the server copy moved.
    assert!(bad_row.document_id.is_some());
}
