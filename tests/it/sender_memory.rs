//! Sender memory end to end (issue 12, item 4), with the real daemon: an e-mail whose text says
//! nothing about its matter is decided by a person through the API; the next one from the same
//! address goes to that person's mailbox on the strength of the sender's history, which its
//! explanation names. A sender whose earlier e-mails went to two different mailboxes gets no
//! such push: the daemon decides exactly as `poststelle route` (no history) does.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

fn api() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

/// The document that came from the file `name`, once it is decided (in review or delivered).
fn settled(d: &TestApp, name: &str) -> serde_json::Value {
    let id = wait_for(&format!("{name} decided"), LONG, || {
        let list: serde_json::Value = api()
            .get(d.url("/api/documents?limit=100"))
            .bearer_auth(&d.token)
            .send()
            .ok()?
            .json()
            .ok()?;
        list["documents"].as_array()?.iter().find_map(|doc| {
            let done = doc["state"] == "review" || doc["state"] == "delivered";
            (doc["original_name"] == name && done)
                .then(|| doc["id"].as_str().map(str::to_string))
                .flatten()
        })
    });
    show(d, &id)
}

fn show(d: &TestApp, id: &str) -> serde_json::Value {
    api()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(&d.token)
        .send()
        .expect("document")
        .json()
        .expect("json")
}

/// A person decides the document's mailbox through the API, then it is delivered there.
fn assign(d: &TestApp, doc: &serde_json::Value, mailbox: &str) {
    let id = doc["document"]["id"].as_str().expect("id");
    let r = api()
        .post(d.url(&format!("/api/documents/{id}/assign")))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"mailbox": mailbox, "origin": "review"}))
        .send()
        .expect("assign");
    assert_eq!(r.status(), 200, "{:?}", r.text());
    wait_for(&format!("{id} delivered to {mailbox}"), LONG, || {
        let doc = show(d, id);
        (doc["state"] == "delivered" && doc["mailbox"] == mailbox).then_some(())
    });
}

/// The sender-memory entries of a document's explanation.
fn sender_hits(doc: &serde_json::Value) -> Vec<serde_json::Value> {
    doc["explanation"]["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter(|r| r["zone"] == "sender")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `poststelle route --json` for one file: the decision without any history.
fn route_without_history(d: &TestApp, file: &Path) -> serde_json::Value {
    let lines = d.json_lines([
        std::ffi::OsStr::new("route"),
        std::ffi::OsStr::new("--json"),
        file.as_os_str(),
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

/// Writes `text` as `name` into the install (for `route`) and drops it into the hot folder.
fn send(d: &TestApp, name: &str, text: &str) -> PathBuf {
    let dir = d.path("files");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    d.drop_file(name, text.as_bytes());
    path
}

fn mail(from: &str, subject: &str, body: &str) -> String {
    format!(
        "Von: {from}\nAn: info@musterstadt.de\nBetreff: {subject}\n\nGuten Tag,\n{body}\n\n\
         Mit freundlichen Grüßen\n{}\n",
        from.split(" <").next().unwrap_or(from)
    )
}

/// A citizen's letter (sender block, the town as recipient, no subject) with an IBAN.
fn letter(date: &str, body: &str) -> String {
    format!(
        "Jana Schulz\nLindenweg 4\n12345 Musterstadt\n\nStadt Musterstadt\nRathausplatz 1\n\
         12345 Musterstadt\n\n{date}\n\nSehr geehrte Damen und Herren,\n\n{body}\n\
         Meine Bankverbindung: IBAN DE89 3704 0044 0532 0130 00\n\nMit freundlichen Grüßen\n\
         Jana Schulz\n"
    )
}

#[test]
fn a_letter_with_a_known_iban_goes_where_the_correction_sent_the_earlier_one() {
    let d = spawn_app(&[]);
    send(
        &d,
        "schulz-1.txt",
        &letter(
            "12.03.2026",
            "ich komme auf mein Schreiben zurück und bitte um kurze Nachricht, wie es weitergeht.",
        ),
    );
    let first = settled(&d, "schulz-1.txt");
    assert_ne!(
        first["mailbox"], "32",
        "the person's decision is a correction"
    );
    // Decided in review or corrected after delivery: either way the final mailbox counts.
    assign(&d, &first, "32");
    let second = send(
        &d,
        "schulz-2.txt",
        &letter(
            "20.04.2026",
            "leider habe ich noch keine Antwort erhalten. Bitte melden Sie sich bei mir.",
        ),
    );
    let alone = route_without_history(&d, &second);
    assert!(
        alone["mailbox"] != "32" || alone["needs_review"] == true,
        "the text alone must not decide for 32, or the test shows nothing: {alone}"
    );
    // One person's decision is evidence for 32: the decision names 32, with the IBAN as the
    // reason. Whether it also clears the review threshold (chosen for 99.5 % precision) is the
    // threshold's business; the e-mail test below shows a longer history going straight through.
    let doc = settled(&d, "schulz-2.txt");
    let decided = &doc["document"]["decision"];
    assert_eq!(decided["mailbox"], "32", "{decided}");
    assert_eq!(
        decided["explanation"]["candidates"][0]["mailbox"], "32",
        "{decided}"
    );
    let hits = sender_hits(&doc);
    assert_eq!(hits.len(), 1, "the strongest key speaks: {hits:?}");
    assert_eq!(
        hits[0]["rule"],
        "Absender bekannt: 1 von 1 früheren Schreiben mit der IBAN DE89…3000 ging an \
         32 (Ordnungsamt), von einer Person zugeordnet"
    );
    assert_eq!(doc["metadata"]["ibans"][0], "DE89370400440532013000");
}

#[test]
fn a_known_sender_goes_where_a_person_sent_the_earlier_mail_a_split_history_gives_no_push() {
    let d = spawn_app(&[]);
    let weber = "Karl Weber <K.Weber@example.org>";
    let lange = "Petra Lange <p.lange@example.net>";
    send(
        &d,
        "weber-1.txt",
        &mail(
            weber,
            "Rückfrage",
            "bitte rufen Sie mich zurück wegen der Sache von letzter Woche.",
        ),
    );
    send(
        &d,
        "lange-1.txt",
        &mail(
            lange,
            "Rückfrage",
            "ich bitte um einen Rückruf zu meinem Anliegen.",
        ),
    );
    send(
        &d,
        "lange-2.txt",
        &mail(
            lange,
            "Noch eine Frage",
            "ich habe noch eine Frage zu meinem Anliegen, bitte melden Sie sich.",
        ),
    );

    // The first e-mail says nothing about its matter: a person decides it (Personalamt).
    let first = settled(&d, "weber-1.txt");
    assert!(
        sender_hits(&first).is_empty(),
        "no history yet: {}",
        first["explanation"]
    );
    assert_ne!(
        first["mailbox"], "11",
        "the person's decision is a correction"
    );
    assign(&d, &first, "11");
    // Petra Lange's two earlier e-mails go to two different departments.
    assign(&d, &settled(&d, "lange-1.txt"), "51");
    assign(&d, &settled(&d, "lange-2.txt"), "32");

    let weber_2 = send(
        &d,
        "weber-2.txt",
        &mail(
            "Karl Weber <k.weber@example.org>",
            "Nochmals meine Sache",
            "ich hatte letzte Woche schon geschrieben und warte noch auf eine Antwort. \
             Können Sie mir bitte sagen, wie es weitergeht?",
        ),
    );
    let lange_3 = send(
        &d,
        "lange-3.txt",
        &mail(
            lange,
            "Erneute Rückfrage",
            "ich bitte nochmals um einen Rückruf zu meinem Anliegen.",
        ),
    );

    // Karl Weber's second e-mail: without a history it would not go to 11 on its own ...
    let alone = route_without_history(&d, &weber_2);
    assert!(
        alone["mailbox"] != "11" || alone["needs_review"] == true,
        "the text alone must not decide for 11, or the test shows nothing: {alone}"
    );
    // ... with the history (same address, other spelling) the decision is 11, and the
    // explanation says why; one earlier decision may not yet clear the threshold (99.5 %
    // precision), then a person confirms it.
    let second = settled(&d, "weber-2.txt");
    let decided = &second["document"]["decision"];
    assert_eq!(decided["mailbox"], "11", "{decided}");
    let hits = sender_hits(&second);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["mailbox"], "11");
    let first_weight = hits[0]["weight"].as_f64().unwrap_or(0.0);
    assert!(first_weight > 0.0, "{hits:?}");
    assert_eq!(
        hits[0]["rule"],
        "Absender bekannt: 1 von 1 früheren Schreiben von der E-Mail-Adresse \
         k.weber@example.org ging an 11 (Personalamt), von einer Person zugeordnet"
    );
    if second["state"] == "review" {
        assign(&d, &second, "11");
    }
    // A third vague e-mail: two earlier ones went to 11, the evidence is stronger and it is
    // delivered to 11 without anyone looking.
    let weber_3 = send(
        &d,
        "weber-3.txt",
        &mail(
            weber,
            "Immer noch offen",
            "ich warte immer noch auf eine Antwort zu meiner Sache. Bitte melden Sie sich.",
        ),
    );
    let alone = route_without_history(&d, &weber_3);
    assert!(
        alone["mailbox"] != "11" || alone["needs_review"] == true,
        "the text alone must not decide for 11, or the test shows nothing: {alone}"
    );
    let third_weber = settled(&d, "weber-3.txt");
    assert_eq!(
        third_weber["state"], "delivered",
        "{}",
        third_weber["explanation"]
    );
    assert_eq!(
        third_weber["mailbox"], "11",
        "{}",
        third_weber["explanation"]
    );
    let third_id = third_weber["document"]["id"].as_str().expect("id");
    assert!(
        d.delivered().iter().any(|(m, f)| m == "11"
            && f.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(third_id))),
        "{:?}",
        d.delivered()
    );
    let hits = sender_hits(&third_weber);
    assert_eq!(hits.len(), 1, "{hits:?}");
    let rule = hits[0]["rule"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        rule.starts_with(
            "absender bekannt: 2 von 2 früheren schreiben von der e-mail-adresse \
             k.weber@example.org gingen an 11 (personalamt)"
        ),
        "{rule}"
    );
    assert!(
        hits[0]["weight"].as_f64().unwrap_or(0.0) > first_weight,
        "a longer consistent history weighs more: {hits:?}"
    );
    let decided = third_weber["document"]["decision"].clone();
    assert_eq!(decided["needs_review"], false, "{decided}");
    assert!(
        decided["confidence"].as_f64().unwrap_or(0.0)
            >= decided["explanation"]["threshold"].as_f64().unwrap_or(1.0),
        "{decided}"
    );

    // Petra Lange's history is split half and half: no push, the daemon decides as `route`.
    let third = settled(&d, "lange-3.txt");
    assert!(
        sender_hits(&third).is_empty(),
        "a split history is no evidence: {}",
        third["explanation"]
    );
    let alone = route_without_history(&d, &lange_3);
    let decided = &third["document"]["decision"];
    assert_eq!(decided["mailbox"], alone["mailbox"], "{decided} / {alone}");
    assert_eq!(
        decided["confidence"], alone["confidence"],
        "{decided} / {alone}"
    );
    assert_eq!(decided["needs_review"], alone["needs_review"]);
}
