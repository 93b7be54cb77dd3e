//! The capture record (Erfassungsprotokoll) with the real daemon: a scan's record (station,
//! resolution and colour mode read from the file, hashes of the original and of the
//! searchable PDF) in the sidecar, in the API and in a REST target's properties, sealed by an
//! audit event while `audit verify` still holds; the Sichtkontrolle at share 1.0 (every scan)
//! and 0.0 (none); an e-mail's record (IMAP account, commit time) from a real Dovecot, and its
//! Eingangsbestätigung written with the template of the mailbox it was routed to, stating the
//! receipt time of the record, received by a real SMTP server.

use crate::harness::dms_servers::rest;
use crate::harness::dovecot::{self, Dovecot};
use crate::harness::smtp::{SmtpSink, free_port};
use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

fn api_get(d: &TestApp, path: &str) -> serde_json::Value {
    let r = reqwest::blocking::Client::new()
        .get(d.url(path))
        .bearer_auth(&d.token)
        .send()
        .expect("get");
    assert_eq!(r.status(), 200, "{path}");
    r.json().expect("json")
}

fn scan() -> Vec<u8> {
    scan_pdf(&noisy(render(&bauantrag_pdf(), 300), 10), 300)
}

fn sidecar(install: &Install, id: &str) -> serde_json::Value {
    let (_, path) = install
        .delivered()
        .into_iter()
        .find(|(_, p)| p.to_string_lossy().contains(id))
        .expect("delivered file");
    serde_json::from_slice(&std::fs::read(path.with_extension("json")).expect("sidecar"))
        .expect("sidecar json")
}

fn delivered(install: &Install, n: usize) -> Vec<serde_json::Value> {
    wait_for("documents delivered", LONG, || {
        let docs = install.documents();
        (docs.len() == n && docs.iter().all(|d| d["state"] == "delivered")).then_some(docs)
    })
}

fn audit_verifies(install: &Install) {
    let out = install
        .command()
        .args(["audit", "verify"])
        .output()
        .expect("poststelle");
    assert!(
        out.status.success(),
        "audit verify: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_scans_capture_record_is_delivered_sealed_and_queued_for_the_visual_check() {
    let app = Install::new().spawn_app(&[
        (
            "POSTSTELLE__INTAKE__HOT_FOLDER__STATION",
            "\"Poststelle EG\"",
        ),
        ("POSTSTELLE__CAPTURE__VISUAL_CHECK_SHARE", "1.0"),
    ]);
    let original = scan();
    app.drop_file("bauantrag.pdf", &original);
    let docs = delivered(&app, 1);
    let id = docs[0]["id"].as_str().expect("id").to_string();
    let side = sidecar(&app, &id);
    let c = &side["capture"];
    assert_eq!(c["channel"], "scan", "{c}");
    assert_eq!(c["source"], "Poststelle EG", "{c}");
    assert_eq!(c["dpi"], 300, "{c}");
    assert_eq!(c["colour"], "gray", "{c}");
    assert_eq!(c["pages"], 1, "{c}");
    assert_eq!(c["received_at"], side["received_at"], "receipt = commit");
    let sha = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    assert_eq!(c["sha256_original"], sha(&original).as_str());
    assert_eq!(c["sha256_rendition"], side["delivered"]["sha256"], "{side}");
    assert_ne!(
        c["sha256_rendition"], c["sha256_original"],
        "a searchable PDF"
    );
    assert_eq!(c["quality"]["pages_checked"], 1, "{c}");
    assert_eq!(
        c["quality"]["poorly_read_pages"],
        serde_json::json!([]),
        "{c}"
    );
    assert_eq!(c["visual_check"], true);
    // The API shows the same record and its seal; the audit trail seals it.
    let shown = api_get(&app, &format!("/api/documents/{id}"));
    assert_eq!(&shown["capture"], c);
    let seal = shown["capture_seal"].as_str().expect("seal").to_string();
    let record: poststelle::capture::CaptureRecord =
        serde_json::from_value(c.clone()).expect("record");
    assert_eq!(record.seal(), seal);
    let events = events(app.addr().port(), &app.token, &id);
    let sealed = events
        .iter()
        .find(|e| e["kind"] == "capture_recorded")
        .expect("capture_recorded event");
    assert_eq!(sealed["detail"]["seal"], seal.as_str(), "{sealed}");
    assert!(
        !sealed["detail"].to_string().contains("Poststelle EG"),
        "no source names in the audit trail: {sealed}"
    );
    // Share 1.0: the scan waits in the Sichtkontrolle; a verdict closes it, once.
    let checks = api_get(&app, "/api/visual-checks");
    assert_eq!(checks["open"].as_array().map(Vec::len), Some(1), "{checks}");
    assert_eq!(checks["open"][0]["document_id"], id.as_str());
    let client = reqwest::blocking::Client::new();
    let post = |path: &str| {
        client
            .post(app.url(path))
            .bearer_auth(&app.token)
            .json(&serde_json::json!({"note": "Seite 2 fehlt"}))
            .send()
            .expect("post")
    };
    let r = post(&format!("/api/visual-checks/{id}/rescan"));
    assert_eq!(r.status(), 200);
    assert_eq!(post(&format!("/api/visual-checks/{id}/ok")).status(), 409);
    let checks = api_get(&app, "/api/visual-checks");
    assert_eq!(checks["open"].as_array().map(Vec::len), Some(0), "{checks}");
    assert_eq!(checks["judged"][0]["verdict"], "rescan", "{checks}");
    assert_eq!(checks["judged"][0]["note"], "Seite 2 fehlt", "{checks}");
    audit_verifies(&app);
}

#[test]
fn capture_fields_reach_a_rest_targets_properties_and_no_scan_is_checked_at_share_zero() {
    let srv = rest("R-TOKEN");
    let url = format!(
        "\"{}/api/mailboxes/{{mailbox}}/documents/{{document_id}}\"",
        srv.url()
    );
    let fields = "{ eingang = \"{capture_received_at}\", kanal = \"{capture_channel}\", \
                  quelle = \"{capture_source}\", aufloesung = \"{capture_dpi}\", \
                  farbe = \"{capture_colour}\", seiten = \"{capture_pages}\", \
                  hash_original = \"{capture_sha256_original}\", \
                  hash_zugestellt = \"{capture_sha256_rendition}\", siegel = \"{capture_seal}\" }";
    let app = Install::new().spawn_app(&[
        ("POSTSTELLE__DELIVER__DEFAULT_TARGET", "ext"),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__KIND", "\"rest\""),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__METHOD", "\"PUT\""),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__URL", &url),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__AUTH", "\"bearer\""),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__SECRET", "R-TOKEN"),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__FIELDS", fields),
        (
            "POSTSTELLE__INTAKE__HOT_FOLDER__STATION",
            "\"Scanner 2. OG\"",
        ),
        ("POSTSTELLE__CAPTURE__VISUAL_CHECK_SHARE", "0.0"),
    ]);
    let original = scan();
    app.drop_file("scan-a.pdf", &original);
    app.drop_file(
        "scan-b.pdf",
        &scan_pdf(&noisy(render(&bauantrag_pdf(), 200), 6), 200),
    );
    let docs = delivered(&app, 2);
    let stored = srv.state.docs.lock().expect("lock").clone();
    assert_eq!(stored.len(), 2);
    for d in &docs {
        let id = d["id"].as_str().expect("id");
        let put = stored.iter().find(|s| s.id == id).expect("filed");
        let f = &put.fields;
        let shown = api_get(&app, &format!("/api/documents/{id}"));
        let c = &shown["capture"];
        assert_eq!(
            f["eingang"],
            c["received_at"].as_str().expect("time"),
            "{f:?}"
        );
        assert_eq!(
            f["eingang"],
            d["created_at"].as_str().unwrap_or_default(),
            "{d}"
        );
        assert_eq!(f["kanal"], "scan");
        assert_eq!(f["quelle"], "Scanner 2. OG");
        assert_eq!(f["farbe"], "gray");
        assert_eq!(f["seiten"], "1");
        assert_eq!(f["hash_zugestellt"], {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&put.bytes))
        });
        assert_eq!(f["siegel"], shown["capture_seal"].as_str().expect("seal"));
        assert_eq!(c["visual_check"], false);
    }
    let mut dpis: Vec<&str> = stored
        .iter()
        .map(|s| s.fields["aufloesung"].as_str())
        .collect();
    dpis.sort_unstable();
    assert_eq!(dpis, ["200", "300"], "resolution read from each file");
    let checks = api_get(&app, "/api/visual-checks");
    assert_eq!(checks["open"].as_array().map(Vec::len), Some(0), "{checks}");
    audit_verifies(&app);
}

fn mail(from: &str, to: &str, subject: &str, mid: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 09:00:00 +0100\r\n\
Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[test]
fn an_emails_record_names_its_account_and_its_acknowledgement_uses_the_mailboxs_template() {
    let server = Dovecot::start();
    let install = Install::new();
    let sink = SmtpSink::start(free_port(), &install.path("mail"), &[]);
    let accounts = format!(
        r#"[{{name = "buergerpost", host = "127.0.0.1", port = {}, tls = "plain", user = "{}", password = "{}", folders = ["INBOX"], processed_folder = "Erledigt", quarantine_folder = "Quarantaene", poll_secs = 1, max_failures = 3, acknowledge = true}}]"#,
        server.port,
        dovecot::USER,
        dovecot::PASSWORD
    );
    let smtp_port = sink.port.to_string();
    let templates = r#"{ default = "{anrede} Standardvorlage. Eingang: {eingang}. Vorgang {vorgangsnummer}.", "63" = "{anrede} Vorlage Bauordnung ({postfach}). Eingang: {eingang}. Vorgang {vorgangsnummer}. Bitte reichen Sie Bauvorlagen in Papier nach." }"#;
    let app = install.spawn_app(&[
        ("POSTSTELLE__INTAKE__IMAP__ENABLED", "true"),
        ("POSTSTELLE__INTAKE__IMAP__ACCOUNTS", &accounts),
        ("POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED", "false"),
        ("POSTSTELLE__OUTGOING__ENABLED", "true"),
        (
            "POSTSTELLE__OUTGOING__FROM_ADDRESS",
            "poststelle@musterstadt.de",
        ),
        ("POSTSTELLE__OUTGOING__RETRY_BASE_SECS", "1"),
        ("POSTSTELLE__OUTGOING__SMTP__HOST", "127.0.0.1"),
        ("POSTSTELLE__OUTGOING__SMTP__PORT", &smtp_port),
        ("POSTSTELLE__OUTGOING__SMTP__TLS", "plain"),
        ("POSTSTELLE__OUTGOING__DIGEST__ENABLED", "false"),
        (
            "POSTSTELLE__OUTGOING__ACKNOWLEDGEMENTS__TEMPLATES",
            templates,
        ),
    ]);
    server.append(
        "INBOX",
        &[
            mail(
                "Erika Mustermann <erika@example.org>",
                "bauordnung@musterstadt.de",
                "Bauantrag Carport Lindenweg 4",
                "bau-1@example.org",
                "Sehr geehrte Damen und Herren,\r\nanbei mein Bauantrag für einen Carport.\r\n\
                 Mit freundlichen Grüßen\r\nErika Mustermann",
            ),
            mail(
                "Jürgen Weber <j.weber@example.net>",
                "steueramt@musterstadt.de",
                "Hundesteuer Abmeldung",
                "hund-2@example.net",
                "Guten Tag,\r\nunser Hund ist verstorben. Ich melde ihn von der Hundesteuer ab.\r\n\
                 Jürgen Weber",
            ),
        ],
    );
    let docs = delivered(&app, 2);
    let acks = sink.wait_for(2, LONG);
    for d in &docs {
        let id = d["id"].as_str().expect("id");
        let side = sidecar(&app, id);
        let c = &side["capture"];
        assert_eq!(c["channel"], "email", "{c}");
        assert_eq!(c["source"], "buergerpost", "{c}");
        assert_eq!(c["received_at"], d["created_at"], "receipt = commit: {c}");
        assert!(
            c.get("dpi").is_none(),
            "no scan parameters for an e-mail: {c}"
        );
        assert_eq!(c["visual_check"], false);
        let at = chrono::DateTime::parse_from_rfc3339(c["received_at"].as_str().expect("time"))
            .expect("rfc 3339")
            .with_timezone(&chrono::Utc);
        let eingang = poststelle::outgoing::templates::german_time(at);
        let to = if d["mailbox"] == "63" {
            "erika@example.org"
        } else {
            "j.weber@example.net"
        };
        let ack = acks
            .iter()
            .find(|a| a.rcpt_tos == [to])
            .unwrap_or_else(|| panic!("acknowledgement to {to}: {acks:?}"));
        assert!(
            ack.body.contains(&format!("Eingang: {eingang}.")),
            "receipt time {eingang} in: {}",
            ack.body
        );
        if d["mailbox"] == "63" {
            assert!(
                ack.body.contains("Vorlage Bauordnung (Bauordnung)"),
                "{}",
                ack.body
            );
            assert!(
                ack.body.contains("Guten Tag Erika Mustermann,"),
                "{}",
                ack.body
            );
        } else {
            assert!(ack.body.contains("Standardvorlage"), "{}", ack.body);
            assert!(!ack.body.contains("Bauordnung"), "{}", ack.body);
        }
    }
    assert!(docs.iter().any(|d| d["mailbox"] == "63"), "{docs:?}");
    let events = events(
        app.addr().port(),
        &app.token,
        docs[0]["id"].as_str().expect("id"),
    );
    assert!(
        events.iter().any(|e| e["kind"] == "capture_recorded"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "acknowledgement_queued"
                && e["detail"]["template"].as_str().is_some()),
        "{events:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 2, "one acknowledgement each");
    audit_verifies(&app);
}
