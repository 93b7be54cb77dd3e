//! Retention and erasure in the database (DSGVO): what a purge removes from a document's row and
//! the rows that hang off it, and which documents and mails are due.
//!
//! A purged document keeps its row: id, source, media type, size, state, mailbox, confidence,
//! what decided, the delivery reference, timestamps, and its decision without the parts that
//! quote the letter (address field, subject, matched words, the model's words). Its text,
//! extraction, metadata, sender keys, file name and content hash go; its blobs are listed in
//! `blob_deletions` in the same transaction and deleted from the blob directory afterwards.

use super::db::{query, query_scalar};
use super::{Result, Store, StoreError, doc_columns, insert_event, now_str, parse_state};
use crate::domain::{DocState, DocumentId};
use sqlx::Row;

/// Why a document's content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeCause {
    /// Its retention period ended.
    Retention,
    /// A data subject asked for erasure (Art. 17 DSGVO).
    Erasure,
}

impl PurgeCause {
    fn as_str(self) -> &'static str {
        match self {
            PurgeCause::Retention => "retention",
            PurgeCause::Erasure => "erasure",
        }
    }
}

/// A document due for purging.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DueDocument {
    /// The document.
    pub id: DocumentId,
    /// Its state.
    pub state: DocState,
    /// Its last change.
    pub updated_at: String,
}

/// What stays of a document's name after a purge.
pub const PURGED_NAME: &str = "(gelöscht)";

/// States in which a document is being worked on by the pipeline: erasure waits for them to
/// end (a purge there would race the stage's own write).
const IN_FLIGHT: [DocState; 4] = [
    DocState::Received,
    DocState::Extracted,
    DocState::Classified,
    DocState::Queued,
];

impl Store {
    /// Documents whose content is due: delivered and unchanged since `delivered_before`, or
    /// quarantined since `quarantined_before`; never purged yet. Documents waiting for a person
    /// (review, dead letters) are never due.
    pub async fn purge_due(
        &self,
        delivered_before: &str,
        quarantined_before: &str,
    ) -> Result<Vec<DueDocument>> {
        let rows = query(
            "SELECT id, state, updated_at FROM documents WHERE purged_at IS NULL AND \
             ((state = 'delivered' AND updated_at < ?) OR (state = 'quarantined' AND updated_at < ?)) \
             ORDER BY updated_at",
        )
        .bind(delivered_before)
        .bind(quarantined_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(DueDocument {
                    id: DocumentId::parse(&id)
                        .ok_or_else(|| StoreError::Corrupt(format!("document id {id:?}")))?,
                    state: parse_state(&r.try_get::<String, _>("state")?)?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Deletes a document's content (see the module docs) and records it in the audit trail as
    /// `purged` by `actor`. With [`PurgeCause::Retention`] only a delivered or quarantined
    /// document is purged; an erasure purges any document the pipeline is not working on (one
    /// waiting in review leaves the queue: it is quarantined with the reason). Returns false
    /// when the document was purged before.
    pub async fn purge_document(
        &self,
        id: &DocumentId,
        cause: PurgeCause,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row = doc_columns(
            &mut tx,
            id,
            "state, sha256, rendition_sha256, decision, purged_at, batch_id",
        )
        .await?;
        if row.try_get::<Option<String>, _>("purged_at")?.is_some() {
            return Ok(false);
        }
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let allowed = match cause {
            PurgeCause::Retention => matches!(state, DocState::Delivered | DocState::Quarantined),
            PurgeCause::Erasure => !IN_FLIGHT.contains(&state),
        };
        if !allowed {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: "Das Schriftstück wird gerade verarbeitet; bitte nach der Zustellung \
                          erneut löschen."
                    .into(),
            });
        }
        let sha: String = row.try_get("sha256")?;
        let rendition: Option<String> = row.try_get("rendition_sha256")?;
        let decision = row
            .try_get::<Option<String>, _>("decision")?
            .map(|d| strip_decision(&d));
        let now = now_str();
        let (new_state, reason) = match (cause, state) {
            (PurgeCause::Erasure, DocState::Review) => (
                DocState::Quarantined,
                Some("Auf Antrag gelöscht (Art. 17 DSGVO), bevor es zugeordnet wurde."),
            ),
            _ => (state, None),
        };
        query(
            "UPDATE documents SET text_content = NULL, extraction = NULL, metadata = NULL, \
             decision = ?, original_name = ?, sha256 = ?, rendition_sha256 = NULL, \
             state = ?, reason = COALESCE(?, reason), purged_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(decision)
        .bind(PURGED_NAME)
        .bind(format!("purged:{id}"))
        .bind(new_state.as_str())
        .bind(reason)
        .bind(&now)
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        query("DELETE FROM sender_keys WHERE document_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        query(
            "UPDATE quarantine SET original_name = ?, detail = '', path = NULL WHERE document_id = ?",
        )
        .bind(PURGED_NAME)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        // Mails about the document: their bodies go; one not sent yet is not sent any more.
        query(
            "UPDATE outgoing_mail SET message = ?, recipients = '[]', subject = '', \
             state = CASE WHEN state = 'queued' THEN 'dead' ELSE state END, \
             last_error = CASE WHEN state = 'queued' THEN 'gelöscht' ELSE last_error END, \
             purged_at = ?, updated_at = ? WHERE document_id = ? AND purged_at IS NULL",
        )
        .bind(Vec::<u8>::new())
        .bind(&now)
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        query(
            "UPDATE acknowledgements SET sender = NULL, pending_mail = NULL, \
             decision = CASE WHEN decision = 'pending' THEN 'suppressed' ELSE decision END, \
             reason = CASE WHEN decision = 'pending' THEN 'gelöscht' ELSE reason END \
             WHERE document_id = ?",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        // The capture record names the source (station, person, account) and the stack's
        // file: it goes with the content; its seal stays in the audit trail.
        query("DELETE FROM capture_records WHERE document_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        query("UPDATE visual_checks SET note = NULL WHERE document_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        for s in std::iter::once(sha).chain(rendition) {
            query(
                "INSERT INTO blob_deletions (sha256, at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(s)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "purged",
            &serde_json::json!({"cause": cause.as_str(), "state": new_state.as_str()}),
        )
        .await?;
        // The stack it was split from goes with its last letter (with an erased letter at once).
        if let Some(batch) = row.try_get::<Option<String>, _>("batch_id")? {
            super::batches::purge_batch_in(&mut tx, &batch, cause == PurgeCause::Erasure, actor)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Blobs listed for deletion.
    pub async fn blob_deletions(&self) -> Result<Vec<String>> {
        Ok(
            query_scalar("SELECT sha256 FROM blob_deletions ORDER BY at")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Whether any document still refers to the blob (as its original or rendition).
    pub async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        let n: i64 = query_scalar(
            "SELECT (SELECT COUNT(*) FROM documents WHERE sha256 = ? OR rendition_sha256 = ?) \
             + (SELECT COUNT(*) FROM batches WHERE sha256 = ?)",
        )
        .bind(sha256)
        .bind(sha256)
        .bind(sha256)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Takes a blob off the deletion list (deleted, or in use again).
    pub async fn blob_deleted(&self, sha256: &str) -> Result<()> {
        query("DELETE FROM blob_deletions WHERE sha256 = ?")
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Empties outgoing mails (acknowledgements, digests) sent or given up before `before`,
    /// and forgets the senders of acknowledgement decisions older than that; returns how many
    /// mails were emptied. The rows stay, so a mail is still never sent twice.
    pub async fn purge_mail(&self, before: &str, dry_run: bool) -> Result<u64> {
        let due: i64 = query_scalar(
            "SELECT COUNT(*) FROM outgoing_mail WHERE purged_at IS NULL AND state IN ('sent', 'dead') \
             AND updated_at < ?",
        )
        .bind(before)
        .fetch_one(&self.pool)
        .await?;
        if dry_run || due == 0 {
            return Ok(due.max(0) as u64);
        }
        let mut tx = self.pool.begin().await?;
        let now = now_str();
        let done = query(
            "UPDATE outgoing_mail SET message = ?, recipients = '[]', subject = '', purged_at = ? \
             WHERE purged_at IS NULL AND state IN ('sent', 'dead') AND updated_at < ?",
        )
        .bind(Vec::<u8>::new())
        .bind(&now)
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        query("UPDATE acknowledgements SET sender = NULL WHERE sender IS NOT NULL AND at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            None,
            "retention",
            "mail_purged",
            &serde_json::json!({"mails": done, "before": before}),
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Forgets the file names, details and paths of quarantine entries older than `before`
    /// that have no document row (inputs refused before they were stored); returns how many.
    pub async fn purge_quarantine_entries(&self, before: &str, dry_run: bool) -> Result<u64> {
        let filter = "document_id IS NULL AND at < ? AND original_name <> ?";
        if dry_run {
            let n: i64 = query_scalar(&format!("SELECT COUNT(*) FROM quarantine WHERE {filter}"))
                .bind(before)
                .bind(PURGED_NAME)
                .fetch_one(&self.pool)
                .await?;
            return Ok(n.max(0) as u64);
        }
        Ok(query(&format!(
            "UPDATE quarantine SET original_name = ?, detail = '', path = NULL WHERE {filter}"
        ))
        .bind(PURGED_NAME)
        .bind(before)
        .bind(PURGED_NAME)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Documents of a sender, found by the e-mail address (sender keys of letters and e-mails,
    /// and the recipients of acknowledgements).
    pub async fn documents_of_sender(&self, address: &str) -> Result<Vec<DocumentId>> {
        let a = address.trim().to_lowercase();
        let ids: Vec<String> = query_scalar(
            "SELECT document_id FROM sender_keys WHERE kind = 'email' AND value = ? \
             UNION SELECT document_id FROM acknowledgements WHERE lower(sender) = ? \
             ORDER BY 1",
        )
        .bind(&a)
        .bind(&a)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.iter().filter_map(|i| DocumentId::parse(i)).collect())
    }

    /// Records an erasure request that found nothing to delete, so the audit trail shows it
    /// was handled.
    pub async fn record_erasure_request(&self, actor: &str, documents: usize) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_event(
            &mut tx,
            None,
            actor,
            "erasure_request",
            &serde_json::json!({"documents": documents}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A stored decision without the parts that quote the letter.
fn strip_decision(json: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
        return "null".into();
    };
    if let Some(ex) = v.get_mut("explanation").and_then(|e| e.as_object_mut()) {
        for k in ["address_field", "subject", "review_reason"] {
            if ex.get(k).is_some_and(|x| !x.is_null()) {
                ex.insert(k.into(), serde_json::Value::Null);
            }
        }
        // The clerk stays, its reason may quote the sender's name or address.
        if let Some(c) = ex.get_mut("clerk").and_then(|c| c.as_object_mut()) {
            c.insert("reason".into(), "(gelöscht)".into());
        }
        if let Some(f) = ex.get_mut("model_features") {
            *f = serde_json::Value::Array(Vec::new());
        }
        if let Some(rules) = ex.get_mut("rules").and_then(|r| r.as_array_mut()) {
            for r in rules.iter_mut().filter_map(|r| r.as_object_mut()) {
                r.insert("matched".into(), serde_json::Value::Array(Vec::new()));
                r.insert("position".into(), serde_json::Value::Null);
                if r.get("zone").and_then(|z| z.as_str()) == Some(crate::classify::sender::ZONE) {
                    r.insert("rule".into(), "Absender bekannt (gelöscht)".into());
                }
            }
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripped_decision_keeps_the_routing_and_drops_the_quotes() {
        let d = serde_json::json!({
            "mailbox": "63", "confidence": 0.97, "decided_by": "combined", "needs_review": false,
            "explanation": {
                "rules": [
                    {"rule": "bauantrag", "mailbox": "63", "weight": 2.5, "zone": "page1",
                     "matched": ["Bauantrag"], "position": {"page": 1}},
                    {"rule": "Absender bekannt: ewa@example.org", "mailbox": "63", "weight": 1.0,
                     "zone": crate::classify::sender::ZONE, "matched": ["ewa@example.org"], "position": null}
                ],
                "model_features": [{"feature": "nowak", "weight": 1.0}],
                "address_field": "Ewa Nowak\nBirkenweg 12", "subject": "Anbau",
                "candidates": [{"mailbox": "63", "score": 0.97}], "threshold": 0.9,
                "review_reason": null,
                "clerk": {"mailbox": "63", "id": "sb2", "name": "Herr Lange",
                          "reason": "Nachnamen L–Z: „Nowak“"}
            }
        })
        .to_string();
        let s = strip_decision(&d);
        for gone in ["Nowak", "nowak", "Birkenweg", "Anbau", "ewa@", "Bauantrag"] {
            assert!(!s.contains(gone), "{gone} in {s}");
        }
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(v["mailbox"], "63");
        assert_eq!(v["confidence"], 0.97);
        assert_eq!(v["explanation"]["candidates"][0]["mailbox"], "63");
        assert_eq!(v["explanation"]["rules"][0]["rule"], "bauantrag");
        assert_eq!(
            v["explanation"]["clerk"]["id"], "sb2",
            "the clerk stays, not why"
        );
    }
}
