//! E-mails delivered as PDF (`[intake.imap] deliver_as = "pdf"`) or, by default, as the
//! original `.eml`: a real daemon takes a `.eml` file from the hot folder, routes it by its
//! recipient and files it into the filesystem DMS (in-process, or a child process where the
//! test kills it).

use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

fn mail() -> Vec<u8> {
    let mut body = String::new();
    for i in 1..=80 {
        body.push_str(&format!(
            "Absatz {i}: Die Garage soll an der Grundstücksgrenze zur Straße stehen.\r\n"
        ));
    }
    format!(
        "From: =?UTF-8?Q?J=C3=BCrgen_Wei=C3=9F?= <j.weiss@example.org>\r\n\
To: Bauordnung <bauordnung@musterstadt.de>\r\n\
Cc: info@musterstadt.de\r\n\
Date: Tue, 1 Dec 2026 10:15:00 +0100\r\n\
Subject: =?UTF-8?Q?Bauantrag_Garage_Flurst=C3=BCck_12?=\r\n\
Message-ID: <pdf-1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Sehr geehrte Damen und Herren,\r\n\
anbei mein Bauantrag für die Garage (Gebühr 120 €).\r\n\
{body}\
Mit freundlichen Grüßen\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8; name=\"lageplan-notiz.txt\"\r\n\
Content-Disposition: attachment; filename=\"lageplan-notiz.txt\"\r\n\
\r\n\
Lageplan folgt per Post.\r\n\
--b1--\r\n"
    )
    .into_bytes()
}

fn pdftotext(path: &std::path::Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn deliver_one(install: &Install) -> std::path::PathBuf {
    install.drop_file("antrag.eml", &mail());
    let delivered = wait_for("one delivery", LONG, || {
        let d = install.delivered();
        (d.len() == 1).then_some(d)
    });
    assert_eq!(delivered[0].0, "63", "routed by its recipient");
    delivered[0].1.clone()
}

#[test]
fn with_deliver_as_pdf_an_email_is_filed_as_a_pdf_with_its_text() {
    let d = spawn_app(&[("POSTSTELLE__INTAKE__IMAP__DELIVER_AS", "pdf")]);
    let file = deliver_one(&d);
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("pdf"));
    let bytes = std::fs::read(&file).expect("read");
    assert!(bytes.starts_with(b"%PDF-"), "a PDF");
    let text = pdftotext(&file);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Von: Jürgen Weiß <j.weiss@example.org>",
        "An: Bauordnung <bauordnung@musterstadt.de>",
        "Cc: info@musterstadt.de",
        "Datum: 01.12.2026 10:15:00 +01:00",
        "Betreff: Bauantrag Garage Flurstück 12",
        "anbei mein Bauantrag für die Garage (Gebühr 120 €).",
        "Absatz 80: Die Garage soll an der Grundstücksgrenze zur Straße stehen.",
        "Mit freundlichen Grüßen",
        "lageplan-notiz.txt",
    ] {
        assert!(flat.contains(want), "missing {want:?} in {text}");
    }
    // 80 body lines do not fit on one page.
    assert!(text.contains("Seite 2 von 2"), "{text}");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file.with_extension("json")).expect("sidecar"))
            .expect("json");
    assert_eq!(sidecar["original_name"], "antrag.eml");
    let docs = d.documents();
    d.stop();
    assert_eq!(docs.len(), 1, "{docs:?}");
}

#[test]
fn by_default_an_email_is_filed_as_the_original_eml() {
    let install = spawn_app(&[]);
    let file = deliver_one(&install);
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("eml"));
    assert_eq!(std::fs::read(&file).expect("read"), mail(), "unchanged");
}

#[test]
fn sigkill_between_delivery_and_confirmation_resends_the_same_pdf_once() {
    let install = Install::new();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let pdf = [("POSTSTELLE__INTAKE__IMAP__DELIVER_AS", "pdf")];
    let d = install.serve(&[
        pdf[0],
        ("POSTSTELLE_PAUSE_AT", "after_deliver"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
    ]);
    install.drop_file("antrag.eml", &mail());
    wait_file(&marker, LONG);
    d.kill();
    let first = install.delivered();
    assert_eq!(first.len(), 1);
    let bytes = std::fs::read(&first[0].1).expect("read");
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(install.documents()[0]["state"], "queued");
    let _d = install.serve(&pdf);
    wait_for("confirmed", LONG, || {
        (install.documents()[0]["state"] == "delivered").then_some(())
    });
    let again = install.delivered();
    assert_eq!(again.len(), 1, "the retry must not create a second copy");
    assert_eq!(
        std::fs::read(&again[0].1).expect("read"),
        bytes,
        "same bytes"
    );
}
