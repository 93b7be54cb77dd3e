//! The audit trail's hash chain. Every event row stores
//! `hash = SHA-256(previous hash || canonical form of the row)`, where the canonical form is
//! the JSON array `[id, document_id, at, actor, kind, detail]` of the values as stored (after
//! pseudonymisation, see [`super::pseudonym`]) and the first event's previous hash is 32 zero
//! bytes. An event edited, deleted or moved breaks the chain at the first event whose hash no
//! longer fits; [`Store::verify_audit`] finds it (`poststelle audit verify`).
//!
//! The chain is not keyed: someone with the file who recomputes every hash after a change goes
//! unseen by the chain alone, and so does the removal of the newest events. The head (id and
//! hash of the newest event) that `verify` prints, noted outside the database, closes that gap
//! for everything up to it.

use super::db::{Tx, query, query_scalar};
use super::{Result, Store, StoreError};
use futures::TryStreamExt as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The previous hash of the first event.
const GENESIS: [u8; 32] = [0; 32];

/// The hash of an event row chained to `prev` (lowercase hex).
pub(crate) fn event_hash(
    prev: &[u8; 32],
    id: i64,
    document_id: Option<&str>,
    at: &str,
    actor: &str,
    kind: &str,
    detail: &str,
) -> String {
    let canonical = serde_json::json!([id, document_id, at, actor, kind, detail]).to_string();
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// A stored hash as bytes; `None` for a missing or malformed one.
fn hash_bytes(hex_hash: Option<&str>) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash?, &mut out).ok()?;
    Some(out)
}

/// Appends an event in `tx` with its place in the chain. The previous hash is read in the
/// same transaction as the insert: SQLite lets one write transaction at a time commit, and a
/// transaction whose read became stale fails instead of forking the chain.
pub(crate) async fn append(
    tx: &mut Tx<'_>,
    document: Option<&str>,
    at: &str,
    actor: &str,
    kind: &str,
    detail: &str,
) -> Result<()> {
    let last = query("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (id, prev) = match last {
        None => (1, GENESIS),
        Some(r) => {
            let id: i64 = r.try_get("id")?;
            let hash: Option<String> = r.try_get("hash")?;
            let prev = hash_bytes(hash.as_deref()).ok_or_else(|| {
                StoreError::Corrupt(format!("audit event {id} has no valid hash"))
            })?;
            (id + 1, prev)
        }
    };
    let hash = event_hash(&prev, id, document, at, actor, kind, detail);
    query(
        "INSERT INTO events (id, document_id, at, actor, kind, detail, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(document)
    .bind(at)
    .bind(actor)
    .bind(kind)
    .bind(detail)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditBreak {
    /// The first event whose hash does not fit the events before it.
    pub event_id: i64,
    /// Why (German, for the operator).
    pub reason: String,
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Events whose hash fits, from the first up to the break (or all).
    pub verified: u64,
    /// The first break; `None` when the whole chain holds.
    pub first_break: Option<AuditBreak>,
    /// The newest event's id and hash, to be noted outside the database.
    pub head: Option<(i64, String)>,
}

impl Store {
    /// Gives the events written before the chain existed their hashes, once (the append-only
    /// trigger is lifted for this migration only, in its transaction). Runs after the one-time
    /// pseudonymisation, so the chain covers the rows as they stay.
    pub(super) async fn chain_old_events(&self) -> Result<()> {
        let marker = "SELECT value FROM store_secrets WHERE name = 'events_chained'";
        let done: Option<String> = query_scalar(marker).fetch_optional(&self.pool).await?;
        if done.is_some() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // Again inside the write lock: another process may have chained them meanwhile.
        let done: Option<String> = query_scalar(marker).fetch_optional(&mut *tx).await?;
        if done.is_some() {
            return Ok(());
        }
        query("DROP TRIGGER IF EXISTS events_no_update")
            .execute(&mut *tx)
            .await?;
        let rows = query("SELECT id, document_id, at, actor, kind, detail FROM events ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let mut prev = GENESIS;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let document: Option<String> = r.try_get("document_id")?;
            let hash = event_hash(
                &prev,
                id,
                document.as_deref(),
                r.try_get("at")?,
                r.try_get("actor")?,
                r.try_get("kind")?,
                r.try_get("detail")?,
            );
            prev = hash_bytes(Some(&hash)).unwrap_or(GENESIS);
            query("UPDATE events SET hash = ? WHERE id = ?")
                .bind(hash)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        query(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events \
             BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        )
        .execute(&mut *tx)
        .await?;
        query("INSERT INTO store_secrets (name, value) VALUES ('events_chained', ?)")
            .bind(super::now_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Walks the audit trail in id order and recomputes every hash: the number of events that
    /// fit and the first that does not (edited, deleted before it, moved, or without a hash).
    /// Reads one row at a time.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let mut conn = self.pool.acquire().await?;
        let mut rows =
            query("SELECT id, document_id, at, actor, kind, detail, hash FROM events ORDER BY id")
                .fetch(&mut *conn);
        let mut prev = GENESIS;
        let mut verified = 0u64;
        let mut head = None;
        while let Some(r) = rows.try_next().await? {
            let id: i64 = r.try_get("id")?;
            let document: Option<String> = r.try_get("document_id")?;
            let stored: Option<String> = r.try_get("hash")?;
            let expected = event_hash(
                &prev,
                id,
                document.as_deref(),
                r.try_get("at")?,
                r.try_get("actor")?,
                r.try_get("kind")?,
                r.try_get("detail")?,
            );
            let Some(stored) = stored else {
                return Ok(AuditReport {
                    verified,
                    first_break: Some(AuditBreak {
                        event_id: id,
                        reason: "Ereignis ohne Prüfsumme".into(),
                    }),
                    head,
                });
            };
            if stored != expected {
                let reason = if verified == 0 && id != 1 {
                    "Prüfsumme passt nicht: Ereignisse vor diesem fehlen, oder es wurde verändert"
                } else {
                    "Prüfsumme passt nicht: das Ereignis oder eines davor wurde verändert, \
                     gelöscht oder umsortiert"
                };
                return Ok(AuditReport {
                    verified,
                    first_break: Some(AuditBreak {
                        event_id: id,
                        reason: reason.into(),
                    }),
                    head,
                });
            }
            prev = hash_bytes(Some(&stored)).unwrap_or(GENESIS);
            verified += 1;
            head = Some((id, stored));
        }
        Ok(AuditReport {
            verified,
            first_break: None,
            head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{Backend, TestDb};
    use crate::store::{Inserted, NewDocument};

    async fn store() -> (TestDb, Store, String) {
        let (db, s) = TestDb::store().await;
        let url = db.url.clone();
        (db, s, url)
    }

    fn doc(sha: &str) -> NewDocument {
        NewDocument {
            sha256: sha.into(),
            source: "test".into(),
            original_name: format!("Antrag {sha}.pdf"),
            media_type: "application/pdf".into(),
            size_bytes: 3,
            arrived_at: None,
        }
    }

    /// Five documents received, the fifth twice: six events.
    async fn six_events(s: &Store) {
        for sha in ["a1", "a2", "a3", "a4", "a5", "a5"] {
            s.insert_received(&doc(sha), "hot_folder")
                .await
                .expect("insert");
        }
    }

    async fn sql(s: &Store, q: &str) {
        query(q).execute(&s.pool).await.expect(q);
    }

    /// As someone with access to the database would: the append-only triggers lifted.
    async fn lift_append_only(s: &Store) {
        match s.backend() {
            Backend::Sqlite => {
                sql(s, "DROP TRIGGER events_no_update").await;
                sql(s, "DROP TRIGGER events_no_delete").await;
            }
            Backend::Postgres => sql(s, "ALTER TABLE events DISABLE TRIGGER USER").await,
        }
    }

    fn broken_at(r: &AuditReport) -> i64 {
        r.first_break.as_ref().expect("a break").event_id
    }

    #[tokio::test]
    async fn audit_chain_holds_on_a_normal_run() {
        let (_d, s, _) = store().await;
        assert_eq!(
            s.verify_audit().await.expect("verify"),
            AuditReport {
                verified: 0,
                first_break: None,
                head: None
            }
        );
        six_events(&s).await;
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((r.verified, r.first_break.clone()), (6, None), "{r:?}");
        let (id, hash) = r.head.expect("head");
        assert_eq!(id, 6);
        assert_eq!(hash.len(), 64);
    }

    #[tokio::test]
    async fn audit_chain_finds_an_edited_event() {
        let (_d, s, _) = store().await;
        six_events(&s).await;
        // As someone with the file would: drop the trigger, then edit.
        lift_append_only(&s).await;
        sql(
            &s,
            "UPDATE events SET detail = replace(detail, 'test', 'upload') WHERE id = 3",
        )
        .await;
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((broken_at(&r), r.verified), (3, 2), "{r:?}");
        // The actor alone, too.
        let (_d, s, _) = store().await;
        six_events(&s).await;
        lift_append_only(&s).await;
        sql(&s, "UPDATE events SET actor = 'admin' WHERE id = 5").await;
        assert_eq!(broken_at(&s.verify_audit().await.expect("verify")), 5);
    }

    #[tokio::test]
    async fn audit_chain_finds_a_deleted_event() {
        let (_d, s, _) = store().await;
        six_events(&s).await;
        lift_append_only(&s).await;
        sql(&s, "DELETE FROM events WHERE id = 2").await;
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((broken_at(&r), r.verified), (3, 1), "{r:?}");
        // The first one: the chain does not start where it should.
        sql(&s, "DELETE FROM events WHERE id = 1").await;
        assert_eq!(broken_at(&s.verify_audit().await.expect("verify")), 3);
    }

    #[tokio::test]
    async fn audit_chain_finds_reordered_events() {
        let (_d, s, _) = store().await;
        six_events(&s).await;
        lift_append_only(&s).await;
        // Swap events 2 and 4 (their ids), hashes and all.
        sql(&s, "UPDATE events SET id = 100 WHERE id = 2").await;
        sql(&s, "UPDATE events SET id = 2 WHERE id = 4").await;
        sql(&s, "UPDATE events SET id = 4 WHERE id = 100").await;
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((broken_at(&r), r.verified), (2, 1), "{r:?}");
    }

    #[tokio::test]
    async fn concurrent_events_form_one_chain() {
        let (_d, s, _) = store().await;
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let sha = format!("c{}", i % 12);
                    match s.insert_received(&doc(&sha), "hot_folder").await {
                        Ok(Inserted::New(_) | Inserted::Duplicate(_)) => {}
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((r.verified, r.first_break.clone()), (24, None), "{r:?}");
    }

    #[tokio::test]
    async fn events_from_before_the_chain_are_chained_once_at_open_after_pseudonymisation() {
        // An upgrade of a SQLite database from before (a PostgreSQL database starts chained).
        let db = TestDb::sqlite();
        let s = db.open().await;
        let url = db.url.clone();
        six_events(&s).await;
        // A database from before both: no hashes, personal data in a detail, no markers.
        sql(&s, "DROP TRIGGER events_no_update").await;
        sql(&s, "UPDATE events SET hash = NULL").await;
        sql(
            &s,
            r#"UPDATE events SET detail = '{"to":"ewa@example.org","subject":"Mein Antrag"}' WHERE id = 4"#,
        )
        .await;
        sql(
            &s,
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events \
             BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        )
        .await;
        sql(
            &s,
            "DELETE FROM store_secrets WHERE name IN ('events_chained', 'events_pseudonymised')",
        )
        .await;
        assert_eq!(
            s.verify_audit().await.expect("verify").first_break,
            Some(AuditBreak {
                event_id: 1,
                reason: "Ereignis ohne Prüfsumme".into()
            })
        );
        drop(s);
        let s = Store::open(&url).await.expect("reopen");
        let detail: String = query_scalar("SELECT detail FROM events WHERE id = 4")
            .fetch_one(&s.pool)
            .await
            .expect("detail");
        assert!(!detail.contains("ewa@"), "pseudonymised first: {detail}");
        let r = s.verify_audit().await.expect("verify");
        assert_eq!((r.verified, r.first_break.clone()), (6, None), "{r:?}");
        // New events continue the chain; the trigger is back.
        s.insert_received(&doc("a6"), "hot_folder")
            .await
            .expect("insert");
        assert_eq!(s.verify_audit().await.expect("verify").verified, 7);
        assert!(
            query("UPDATE events SET detail = '{}'")
                .execute(&s.pool)
                .await
                .is_err()
        );
        // Once: a hash removed later is not filled in again at the next open.
        sql(&s, "DROP TRIGGER events_no_update").await;
        sql(&s, "UPDATE events SET hash = NULL WHERE id = 7").await;
        drop(s);
        let s = Store::open(&url).await.expect("reopen");
        assert_eq!(broken_at(&s.verify_audit().await.expect("verify")), 7);
    }
}
