//! Quarantine is no dead end (issue 13): a reader that runs out of time or dies is tried
//! again with backoff (`[extract] worker_fault_attempts`) before the document is quarantined;
//! genuine input faults are quarantined at once; a quarantined document goes back into the
//! pipeline by `poststelle quarantine retry`, `POST /api/documents/{id}/retry` or by handing in
//! the same bytes again.

use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

fn state_of(install: &Install, id: &str) -> Option<String> {
    install
        .documents()
        .into_iter()
        .find(|d| d["id"] == id)
        .and_then(|d| d["state"].as_str().map(str::to_string))
}

fn kinds(install: &Install, id: &str) -> Vec<String> {
    events(install.port, &install.token, id)
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

/// A page the sandbox cannot read within one second (a large noisy scan, OCR): every attempt
/// times out. It is read three times, with backoff, and only then quarantined, the reason
/// saying so. With a sane time limit, `poststelle quarantine retry` brings it back and it is
/// read and routed.
#[test]
fn a_worker_timeout_is_retried_with_backoff_before_quarantine_and_retry_brings_it_back() {
    let install = Install::new();
    let slow = install.serve(&[
        ("POSTSTELLE__EXTRACT__TIMEOUT_SECS", "1"),
        ("POSTSTELLE__EXTRACT__WORKER_FAULT_ATTEMPTS", "3"),
        ("POSTSTELLE__EXTRACT__RETRY_BASE_SECS", "1"),
        ("POSTSTELLE__EXTRACT__RETRY_MAX_SECS", "2"),
    ]);
    // Two large noisy pages: more OCR than one second of CPU or wall time allows.
    let page = noisy(render(&bauantrag_pdf(), 600), 40);
    let scan = tiff(&[&page, &page]);
    install.drop_file("scan.tif", &scan);
    let id = wait_for("the scan is quarantined", LONG, || {
        let doc = install.documents().into_iter().next()?;
        (doc["state"] == "quarantined").then(|| doc["id"].as_str().map(str::to_string))?
    });
    let events = events(install.port, &install.token, &id);
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "stage_failed")
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "two retries before the quarantine: {events:?}"
    );
    for f in &failed {
        let error = f["detail"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("timed out"), "{error}");
    }
    let quarantined = events
        .iter()
        .find(|e| e["kind"] == "quarantined")
        .expect("quarantined event");
    let reason = quarantined["detail"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Zeitlimit") && reason.contains("3 Versuche"),
        "{reason}"
    );
    slow.kill();
    // Restarted with the install's time limit (60 s): retry from the command line.
    let _d = install.serve(&[]);
    let out = install
        .command()
        .args(["quarantine", "retry", &id])
        .output()
        .expect("quarantine retry");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wird erneut gelesen"));
    let state = wait_for("read and routed", LONG, || {
        let s = state_of(&install, &id)?;
        matches!(s.as_str(), "queued" | "delivered" | "review").then_some(s)
    });
    assert!(
        kinds(&install, &id).contains(&"quarantine_retried".to_string()),
        "{state}"
    );
    // Only a quarantined document can be retried.
    let again = install
        .command()
        .args(["quarantine", "retry", &id])
        .output()
        .expect("quarantine retry");
    assert!(!again.status.success());
}

/// A broken PDF is the input's fault: quarantined at the first attempt. Dropping the same
/// bytes again (another name) reads it anew instead of calling it a duplicate; the API's retry
/// does the same for the Poststelle, and refuses a department.
#[test]
fn an_input_fault_is_quarantined_at_once_and_can_be_tried_again() {
    let app = Install::new().spawn_app(&[]);
    let broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\nkaputt\n%%EOF\n";
    app.drop_file("kaputt.pdf", broken);
    let id = wait_for("quarantined", LONG, || {
        let doc = app.documents().into_iter().next()?;
        (doc["state"] == "quarantined").then(|| doc["id"].as_str().map(str::to_string))?
    });
    let url = |p: &str| app.url(p);
    let port = app.addr().port();
    let kinds_now = || -> Vec<String> {
        events(port, &app.token, &id)
            .iter()
            .filter_map(|e| e["kind"].as_str().map(str::to_string))
            .collect()
    };
    let count = |k: &[String], what: &str| k.iter().filter(|x| x.as_str() == what).count();
    assert_eq!(count(&kinds_now(), "stage_failed"), 0, "not retried");
    // The same bytes again, under another name.
    app.drop_file("kaputt-nochmal.pdf", broken);
    wait_for("read anew and quarantined again", LONG, || {
        let k = kinds_now();
        (count(&k, "quarantined") == 2).then_some(())
    });
    let evs = events(port, &app.token, &id);
    let retried = evs
        .iter()
        .find(|e| e["kind"] == "quarantine_retried")
        .expect("quarantine_retried");
    assert_eq!(retried["detail"]["trigger"], "same_bytes_again");
    // The audit trail names no file: the name is a pseudonym (see "Datenschutz").
    assert!(
        retried["detail"]["original_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("p:") && !n.contains("kaputt")),
        "{retried}"
    );
    assert!(!kinds_now().contains(&"duplicate_received".to_string()));
    // The API: a department may not, the Poststelle (here the admin token) may.
    crate::auth::add_user(&app, "b.bau", "fachbereich", &["63"]);
    let dept = crate::auth::user_token(&app, "b.bau");
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(url(&format!("/api/documents/{id}/retry")))
        .bearer_auth(&dept)
        .send()
        .expect("retry");
    assert_eq!(r.status(), 403);
    let r = client
        .post(url(&format!("/api/documents/{id}/retry")))
        .bearer_auth(&app.token)
        .send()
        .expect("retry");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["state"], "received");
    wait_for("quarantined a third time", LONG, || {
        (count(&kinds_now(), "quarantined") == 3).then_some(())
    });
    // An unknown document.
    let r = client
        .post(url("/api/documents/not-a-document/retry"))
        .bearer_auth(&app.token)
        .send()
        .expect("retry");
    assert!(matches!(r.status().as_u16(), 400 | 404), "{}", r.status());
}
