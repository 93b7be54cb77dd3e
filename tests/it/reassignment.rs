//! Re-assignment during a delivery in flight (issue 13). The daemon stops at the pause point
//! `after_deliver` (the target has filed the document, the store does not know yet) while the
//! test changes the decision; then it resumes. No timing luck: the pause is a hook.
//!
//! The delivery is recorded with a compare-and-set on the mailbox and the decision's version:
//! one that lost the race is recorded as what it was (`delivered_superseded`, with a German
//! note saying where the target has it) and the document is delivered again with its new
//! decision.

use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

fn hundesteuer(name: &str) -> Vec<u8> {
    format!(
        "Von: Eva Schmitz <eva.schmitz@example.org>\nAn: steueramt@musterstadt.de\nBetreff: Anmeldung Hundesteuer\n\n\
         Guten Tag, ich melde hiermit unseren Hund {name} zur Hundesteuer an. Bitte senden Sie mir den \
         Hundesteuerbescheid und die Steuermarke zu.\nMit freundlichen Grüßen\nEva Schmitz"
    )
    .into_bytes()
}

/// The daemon paused after its first delivery of one letter (to 22, Steueramt); returns it with
/// the document's id and the resume file.
fn paused_after_delivery(install: &Install, dog: &str) -> (Daemon, String, std::path::PathBuf) {
    let marker = install.path("paused");
    let resume = install.path("resume");
    let d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "after_deliver"),
        ("POSTSTELLE_PAUSE_MARKER", &marker.display().to_string()),
        ("POSTSTELLE_PAUSE_RESUME", &resume.display().to_string()),
    ]);
    install.drop_file("brief.txt", &hundesteuer(dog));
    wait_file(&marker, LONG);
    let doc = &install.documents()[0];
    assert_eq!(doc["mailbox"], "22", "{doc}");
    assert_eq!(doc["state"], "queued");
    let id = doc["id"].as_str().expect("id").to_string();
    (d, id, resume)
}

fn assign(install: &Install, id: &str, mailbox: &str) {
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/documents/{id}/assign",
            install.port
        ))
        .bearer_auth(&install.token)
        .json(&serde_json::json!({"mailbox": mailbox}))
        .send()
        .expect("assign");
    assert!(r.status().is_success(), "{:?}", r.text());
}

fn sidecar(install: &Install, mailbox: &str, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(install.path(&format!("dms/{mailbox}/{id}.json")))
        .expect("sidecar");
    serde_json::from_str(&text).expect("sidecar json")
}

/// Re-assigned from 22 to 21 while the delivery to 22 was in flight: delivered to 21 in the
/// end, and the event of the delivery to 22 says, in German, that the target filed it there.
#[test]
fn a_reassignment_during_delivery_ends_in_the_new_mailbox_and_records_the_old_filing() {
    let install = Install::new();
    let (_d, id, resume) = paused_after_delivery(&install, "Luna");
    assign(&install, &id, "21");
    std::fs::write(&resume, b"go").expect("resume");
    wait_for("delivered to 21", LONG, || {
        let doc = install.documents().into_iter().next()?;
        (doc["state"] == "delivered" && doc["mailbox"] == "21").then_some(())
    });
    let events = events(install.port, &install.token, &id);
    let superseded = events
        .iter()
        .find(|e| e["kind"] == "delivered_superseded")
        .expect("the lost race is recorded");
    assert_eq!(superseded["detail"]["mailbox"], "22");
    assert_eq!(superseded["detail"]["now_mailbox"], "21");
    let note = superseded["detail"]["note"].as_str().expect("German note");
    assert!(
        note.contains("in Postfach 22 abgelegt")
            && note.contains("an Postfach 21 erneut zugestellt"),
        "{note}"
    );
    let delivered: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["kind"] == "delivered").collect();
    assert_eq!(delivered.len(), 1, "{events:?}");
    assert_eq!(delivered[0]["detail"]["mailbox"], "21");
    assert_eq!(sidecar(&install, "21", &id)["decided_by"], "person");
}

/// Re-assigned from 22 to 21 and back to 22 while the delivery to 22 (with the machine's
/// decision) was in flight: the mailbox is the same again, but the decision is not (a person
/// decided). Comparing the mailbox alone would mark the stale delivery as the final one; the
/// decision's version makes the document go out again with the person's decision.
#[test]
fn a_decision_changed_and_changed_back_during_delivery_is_delivered_again() {
    let install = Install::new();
    let (_d, id, resume) = paused_after_delivery(&install, "Bello");
    let machine = sidecar(&install, "22", &id);
    assert_ne!(machine["decided_by"], "person", "{machine}");
    assign(&install, &id, "21");
    assign(&install, &id, "22");
    std::fs::write(&resume, b"go").expect("resume");
    wait_for("delivered to 22 with the person's decision", LONG, || {
        let doc = install.documents().into_iter().next()?;
        (doc["state"] == "delivered"
            && doc["mailbox"] == "22"
            && sidecar(&install, "22", &id)["decided_by"] == "person")
            .then_some(())
    });
    let events = events(install.port, &install.token, &id);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let superseded = kinds.iter().position(|k| *k == "delivered_superseded");
    let delivered = kinds.iter().position(|k| *k == "delivered");
    assert!(
        matches!((superseded, delivered), (Some(s), Some(d)) if s < d),
        "the stale delivery is superseded, then the document delivered: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "delivered").count(),
        1,
        "{kinds:?}"
    );
}
