//! The audit trail's hash chain with the real daemon and the real command: after a normal run
//! `poststelle audit verify` finds every event in place; an event edited, deleted or moved by
//! someone who has the database file (and drops the append-only triggers first) is named by
//! its id, and the command fails.

use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// `audit verify --json`: (exit success, the report).
fn verify(install: &Install) -> (bool, serde_json::Value) {
    let out = install
        .command()
        .args(["audit", "verify", "--json"])
        .output()
        .expect("poststelle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

/// Runs SQL on the install's database, as someone with the file would.
fn sql(install: &Install, statements: &[&str]) {
    let db = install.path("poststelle.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("db");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect(s);
        }
        pool.close().await;
    });
}

fn event_count(install: &Install) -> i64 {
    let db = install.path("poststelle.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("db");
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count")
    })
}

#[test]
fn audit_verify_holds_after_a_run_and_names_an_edited_deleted_or_moved_event() {
    let install = Install::new();
    let daemon = install.serve(&[]);
    install.drop_file("bauantrag.pdf", &bauantrag_pdf());
    install.drop_file("kaputt.pdf", b"%PDF-1.4 kein echtes PDF");
    wait_for("both settled", LONG, || {
        let docs = install.documents();
        (docs.len() == 2
            && docs
                .iter()
                .all(|d| d["state"] == "delivered" || d["state"] == "quarantined"))
        .then_some(())
    });
    daemon.kill();
    let n = event_count(&install);
    assert!(n >= 4, "{n} events");
    let (ok, r) = verify(&install);
    assert!(ok, "{r}");
    assert_eq!(r["verified"], n, "{r}");
    assert!(r["first_break"].is_null(), "{r}");
    assert_eq!(r["head"][0], n, "{r}");
    // The text form says the same.
    let out = install
        .command()
        .args(["audit", "verify"])
        .output()
        .expect("poststelle");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{n} events verified")) && text.contains("chain intact"),
        "{text}"
    );

    // Moved: two events swap places.
    sql(
        &install,
        &[
            "DROP TRIGGER events_no_update",
            "UPDATE events SET id = 1000 WHERE id = 2",
            "UPDATE events SET id = 2 WHERE id = 3",
            "UPDATE events SET id = 3 WHERE id = 1000",
        ],
    );
    let (ok, r) = verify(&install);
    assert!(!ok, "{r}");
    assert_eq!(r["first_break"]["event_id"], 2, "{r}");
    assert_eq!(r["verified"], 1, "{r}");
    sql(
        &install,
        &[
            "UPDATE events SET id = 1000 WHERE id = 2",
            "UPDATE events SET id = 2 WHERE id = 3",
            "UPDATE events SET id = 3 WHERE id = 1000",
        ],
    );
    assert!(verify(&install).0, "put back, the chain holds again");

    // Edited: the last event's detail.
    sql(
        &install,
        &[&format!("UPDATE events SET detail = '{{}}' WHERE id = {n}")],
    );
    let (ok, r) = verify(&install);
    assert!(!ok, "{r}");
    assert_eq!(r["first_break"]["event_id"], n, "{r}");
    let out = install
        .command()
        .args(["audit", "verify"])
        .output()
        .expect("poststelle");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("BROKEN at event {n}")), "{text}");

    // Deleted: an event in the middle; the one after it is named.
    sql(
        &install,
        &[
            "DROP TRIGGER events_no_delete",
            "DELETE FROM events WHERE id = 2",
        ],
    );
    let (ok, r) = verify(&install);
    assert!(!ok, "{r}");
    assert_eq!(r["first_break"]["event_id"], 3, "{r}");
    assert_eq!(r["verified"], 1, "{r}");
}
