//! Regression tests for issue "one road for each decision": `route --json` and the daemon
//! decide through the same router; a stage that keeps failing ends as a re-drivable dead
//! letter; a panicking task ends the daemon with a non-zero exit.

use crate::harness::*;
use std::path::PathBuf;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// An e-mail to the Bauordnung's own address about a dog tax matter: the classifier alone
/// would look elsewhere, the recipient address decides.
fn mail_to_bauordnung() -> Vec<u8> {
    b"From: Erika Muster <erika@example.org>\r\n\
To: Bauordnung <bauordnung@musterstadt.de>\r\n\
Date: Tue, 1 Dec 2026 10:15:00 +0100\r\n\
Subject: Hundesteuer fuer unseren Hund Bello\r\n\
Message-ID: <router-1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Sehr geehrte Damen und Herren,\r\n\
bitte melden Sie unseren Hund Bello zur Hundesteuer ab, er ist verstorben.\r\n\
Die Steuermarke lege ich bei.\r\n\
Mit freundlichen Gruessen\r\n"
        .to_vec()
}

#[test]
fn route_json_and_daemon_agree_on_einvoice_and_recipient_address() {
    let install = Install::new();
    let invoice = std::fs::read(repo().join("tests/data/einvoice/xrechnung-cii.xml"))
        .expect("sample invoice");
    let files = [
        ("rechnung.xml", invoice),
        ("hundesteuer.eml", mail_to_bauordnung()),
    ];
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, bytes)| {
            let p = install.path(name);
            std::fs::write(&p, bytes).expect("write");
            p
        })
        .collect();
    let mut args = vec![std::ffi::OsString::from("route"), "--json".into()];
    args.extend(paths.iter().map(|p| p.clone().into_os_string()));
    let routed = install.json_lines(args);
    assert_eq!(routed.len(), 2, "{routed:?}");
    // The configured Leitweg-ID 05315000-63000-21 and the address bauordnung@ both mean 63.
    assert_eq!(routed[0]["decided_by"], "invoice", "{}", routed[0]);
    assert_eq!(routed[0]["mailbox"], "63");
    assert_eq!(routed[1]["decided_by"], "recipient", "{}", routed[1]);
    assert_eq!(routed[1]["mailbox"], "63");

    let install = install.spawn_app(&[]);
    for (name, bytes) in &files {
        install.drop_file(name, bytes);
    }
    let delivered = wait_for("two deliveries", LONG, || {
        let d = install.delivered();
        (d.len() == 2).then_some(d)
    });
    for (route, (name, _)) in routed.iter().zip(&files) {
        let (mailbox, path) = delivered
            .iter()
            .find(|(_, p)| {
                std::fs::read(p.with_extension("json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|sidecar| sidecar["original_name"] == *name)
            })
            .unwrap_or_else(|| panic!("{name} not delivered: {delivered:?}"));
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).expect("sidecar"))
                .expect("json");
        assert_eq!(Some(mailbox.as_str()), route["mailbox"].as_str(), "{name}");
        assert_eq!(sidecar["decided_by"], route["decided_by"], "{name}");
        assert_eq!(sidecar["mailbox"], route["mailbox"], "{name}");
    }
}

/// Settings for a daemon without hot folder whose quarantine directory cannot be created
/// (a plain file stands in its place): quarantining fails for a reason that is not the input's.
fn broken_quarantine(install: &Install) -> Vec<(String, String)> {
    std::fs::write(install.path("quarantine"), b"not a directory").expect("file");
    vec![
        (
            "POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED".into(),
            "false".into(),
        ),
        ("POSTSTELLE__EXTRACT__MAX_ATTEMPTS".into(), "3".into()),
        ("POSTSTELLE__EXTRACT__RETRY_BASE_SECS".into(), "0".into()),
    ]
}

fn upload(api: &str, token: &str, name: &str, bytes: Vec<u8>) -> String {
    let r = reqwest::blocking::Client::new()
        .post(format!("{api}/api/documents"))
        .query(&[("name", name)])
        .header("Authorization", format!("Bearer {token}"))
        .body(bytes)
        .send()
        .expect("upload");
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn show(api: &str, token: &str, id: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(format!("{api}/api/documents/{id}"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .expect("show")
        .json()
        .expect("json")
}

#[test]
fn extraction_stage_that_keeps_failing_ends_as_dead_letter_and_can_be_redriven() {
    let install = Install::new();
    let env = broken_quarantine(&install);
    let extra: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let install = install.spawn_app(&extra);
    let api = install.url("");
    // Unreadable input goes to quarantine; the quarantine cannot be written.
    let id = upload(
        &api,
        &install.token,
        "kaputt.pdf",
        b"%PDF-1.7\n%broken".to_vec(),
    );
    let doc = wait_for("dead letter", LONG, || {
        let v = show(&api, &install.token, &id);
        (v["document"]["state"] == "dead_letter").then_some(v)
    });
    let reason = doc["document"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("nach 3 Versuchen") && reason.contains("nicht gelesen werden"),
        "{reason}"
    );
    assert_eq!(doc["document"]["attempts"], 3);
    assert_eq!(doc["document"]["failed_stage"], "received");
    // Visible in `documents list`, reason included.
    let listed = install
        .command()
        .args(["documents", "list", "--state", "dead_letter"])
        .output()
        .expect("list");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(&id) && text.contains("nach 3 Versuchen"),
        "{text}"
    );
    // The audit trail shows each failed attempt.
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    let failed = events
        .iter()
        .filter(|e| e["kind"] == "stage_failed")
        .count();
    assert_eq!(failed, 2, "{events:?}");
    // Repaired: the re-drive resumes the stage, and the file is quarantined as it should be.
    std::fs::remove_file(install.path("quarantine")).expect("rm");
    let r = reqwest::blocking::Client::new()
        .post(install.url(&format!("/api/documents/{id}/redrive")))
        .header("Authorization", format!("Bearer {}", install.token))
        .send()
        .expect("redrive");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().expect("json")["state"],
        "received"
    );
    wait_for("quarantined after re-drive", LONG, || {
        (show(&api, &install.token, &id)["document"]["state"] == "quarantined").then_some(())
    });
    assert!(
        std::fs::read_dir(install.path("quarantine"))
            .expect("quarantine dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("kaputt.pdf")),
        "quarantined file written"
    );
}

#[test]
fn extract_failure_with_overlong_file_name_is_quarantined_not_retried_forever() {
    let install = Install::new();
    let install = install.spawn_app(&[("POSTSTELLE__INTAKE__HOT_FOLDER__ENABLED", "false")]);
    let api = install.url("");
    let name = format!("{}.pdf", "Antrag-auf-Baugenehmigung-".repeat(9)); // 238 bytes
    assert!(name.len() > 230);
    let id = upload(&api, &install.token, &name, b"%PDF-1.7\n%broken".to_vec());
    let doc = wait_for("quarantined", LONG, || {
        let v = show(&api, &install.token, &id);
        (v["document"]["state"] == "quarantined").then_some(v)
    });
    assert_eq!(doc["document"]["attempts"], 0, "{doc}");
    let files: Vec<String> = std::fs::read_dir(install.path("quarantine"))
        .expect("quarantine dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.starts_with(&id) && f.ends_with("~.pdf")),
        "{files:?}"
    );
}

#[test]
fn panicking_pipeline_work_ends_the_daemon_with_nonzero_exit() {
    let install = Install::new();
    let mut d = install.serve(&[("POSTSTELLE_PANIC_AT", "before_route")]);
    install.drop_file("bauantrag.pdf", &bauantrag_pdf());
    let status = wait_for("daemon exit", LONG, || d.child.try_wait().ok().flatten());
    assert!(!status.success(), "{status:?}");
    let logs: String = std::fs::read_dir(install.dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(logs.contains("pipeline work panicked"), "{logs}");
    // Nothing is lost: a restart without the hook routes and delivers the letter.
    drop(d);
    let _d2 = install.serve(&[]);
    wait_for("delivered after restart", LONG, || {
        (install.delivered().len() == 1).then_some(())
    });
}
