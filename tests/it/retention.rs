//! Retention and erasure (DSGVO) end to end, with the real daemon and the real commands: a
//! letter and an e-mail are delivered, a letter without routing information waits in review.
//! An erasure request by the e-mail's sender address and one for the waiting letter delete
//! their content at once; `purge --dry-run` lists what the periods make due and changes
//! nothing; `purge` deletes the delivered letter's content, its blobs and the hot folder's
//! processed files, and never a document waiting for a person. No audit event names a file,
//! an address or a subject.

use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);
const SENDER: &str = "j.weiss@example.org";

fn mail() -> Vec<u8> {
    format!(
        "From: =?UTF-8?Q?J=C3=BCrgen_Wei=C3=9F?= <{SENDER}>\r\n\
To: Bauordnung <bauordnung@musterstadt.de>\r\n\
Date: Tue, 1 Dec 2026 10:15:00 +0100\r\n\
Subject: Bauantrag Garage Weidenweg\r\n\
Message-ID: <retention-1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Sehr geehrte Damen und Herren,\r\n\
anbei mein Bauantrag für die Garage am Weidenweg.\r\n\
Mit freundlichen Grüßen\r\n\
Jürgen Weiß\r\n"
    )
    .into_bytes()
}

fn unclear() -> Vec<u8> {
    letter_pdf(&din_letter(
        &["Stadt Musterstadt", "Rathausplatz 1", "12345 Musterstadt"],
        "Rückruf",
        &["bitte rufen Sie mich zurück wegen der Sache von letzter Woche."],
    ))
}

/// The document that came from `name`.
fn doc<'a>(docs: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["original_name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {docs:#?}"))
}

fn by_id<'a>(docs: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {docs:#?}"))
}

fn blob(install: &Install, sha: &str) -> std::path::PathBuf {
    install.path(&format!("blobs/{}/{sha}", &sha[..2]))
}

/// Runs a command with the retention periods at zero days; it must succeed.
fn run(install: &Install, args: &[&str]) -> String {
    let out = install
        .command()
        .env("POSTSTELLE__RETENTION__CONTENT_DAYS", "0")
        .env("POSTSTELLE__RETENTION__MAIL_DAYS", "0")
        .args(args)
        .output()
        .expect("poststelle");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn erasure_and_retention_delete_personal_data_and_keep_the_routing() {
    let install = Install::new();
    let daemon = install.serve(&[("POSTSTELLE__RETENTION__ENABLED", "false")]);
    install.drop_file("bauantrag.pdf", &bauantrag_pdf());
    install.drop_file("garage.eml", &mail());
    install.drop_file("rueckruf.pdf", &unclear());
    let docs = wait_for("three documents settled", LONG, || {
        let docs = install.documents();
        let settled = docs
            .iter()
            .filter(|d| d["state"] == "delivered" || d["state"] == "review")
            .count();
        (settled == 3).then_some(docs)
    });
    daemon.kill();
    let letter = doc(&docs, "bauantrag.pdf").clone();
    let email = doc(&docs, "garage.eml").clone();
    let waiting = doc(&docs, "rueckruf.pdf").clone();
    assert_eq!(letter["state"], "delivered", "{letter}");
    assert_eq!(email["state"], "delivered", "{email}");
    assert_eq!(waiting["state"], "review", "{waiting}");
    let id = |d: &serde_json::Value| d["id"].as_str().expect("id").to_string();
    let sha = |d: &serde_json::Value| d["sha256"].as_str().expect("sha").to_string();
    for d in [&letter, &email, &waiting] {
        assert!(blob(&install, &sha(d)).exists(), "{d}");
    }
    assert!(install.path("processed/bauantrag.pdf").exists());

    // Erasure requests: by the sender's address, and for the waiting letter.
    let out = run(
        &install,
        &[
            "erase",
            "--sender",
            "J.Weiss@example.org",
            "--by",
            "datenschutz",
        ],
    );
    assert!(out.contains(&id(&email)), "{out}");
    run(
        &install,
        &["erase", "--document", &id(&waiting), "--by", "datenschutz"],
    );
    let docs = install.documents();
    let erased = by_id(&docs, &id(&email));
    assert!(erased["purged_at"].is_string(), "{erased}");
    assert_eq!(erased["original_name"], "(gelöscht)");
    assert_eq!(erased["state"], "delivered");
    assert_eq!(erased["mailbox"], email["mailbox"], "the routing stays");
    let was_waiting = by_id(&docs, &id(&waiting));
    assert_eq!(was_waiting["state"], "quarantined", "{was_waiting}");
    assert!(
        was_waiting["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Art. 17")),
        "{was_waiting}"
    );
    assert!(!blob(&install, &sha(&email)).exists());
    assert!(!blob(&install, &sha(&waiting)).exists());
    assert!(blob(&install, &sha(&letter)).exists(), "not asked for");

    // The periods: a dry run lists the delivered letter and changes nothing.
    let dry: serde_json::Value =
        serde_json::from_str(&run(&install, &["purge", "--dry-run", "--json"])).expect("json");
    let listed: Vec<&str> = dry["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(listed, vec![id(&letter).as_str()], "{dry}");
    assert!(blob(&install, &sha(&letter)).exists());
    assert!(install.path("processed/bauantrag.pdf").exists());
    assert!(by_id(&install.documents(), &id(&letter))["purged_at"].is_null());

    let done: serde_json::Value =
        serde_json::from_str(&run(&install, &["purge", "--json"])).expect("json");
    assert_eq!(
        done["documents"].as_array().map(Vec::len),
        Some(1),
        "{done}"
    );
    assert_eq!(done["blobs"], 1, "{done}");
    assert!(!blob(&install, &sha(&letter)).exists());
    assert!(!install.path("processed/bauantrag.pdf").exists());
    assert!(!install.path("processed/garage.eml").exists());
    let purged = by_id(&install.documents(), &id(&letter)).clone();
    assert!(purged["purged_at"].is_string(), "{purged}");
    assert_eq!(purged["mailbox"], letter["mailbox"]);
    assert_eq!(purged["confidence"], letter["confidence"]);
    // Nothing is due any more.
    let again: serde_json::Value =
        serde_json::from_str(&run(&install, &["purge", "--json"])).expect("json");
    assert_eq!(
        again["documents"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );

    // The audit trail: every step is there, and no event names a person, file or subject.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let events: Vec<(Option<String>, String, String, String)> = rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&install.store_url)
            .await
            .expect("db");
        sqlx::query_as("SELECT document_id, actor, kind, detail FROM events ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("events")
    });
    let all = format!("{events:?}");
    for secret in [
        "bauantrag.pdf",
        "garage.eml",
        "rueckruf.pdf",
        "weiss@",
        "Weiß",
        "Weidenweg",
        "Garage",
    ] {
        assert!(!all.contains(secret), "{secret} in the audit trail: {all}");
    }
    let kinds_of = |doc: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.0.as_deref() == Some(doc))
            .map(|e| e.2.as_str())
            .collect()
    };
    for (d, actor) in [
        (id(&email), "erasure:datenschutz"),
        (id(&waiting), "erasure:datenschutz"),
        (id(&letter), "retention"),
    ] {
        let kinds = kinds_of(&d);
        assert!(kinds.contains(&"received"), "{d}: {kinds:?}");
        assert!(
            events
                .iter()
                .any(|e| e.0.as_deref() == Some(d.as_str()) && e.2 == "purged" && e.1 == actor),
            "{d}: purged by {actor}: {kinds:?}"
        );
    }
}
