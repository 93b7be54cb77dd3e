//! Stacks (Stapel, `batches`): the scanned stack's row and original, its analysed pages (one
//! row each, so that a restart resumes the analysis where it stopped) and the split that makes
//! one document per letter, in one transaction.

use super::db::{Tx, query, query_scalar, text};
use super::{
    DocumentRow, Result, Store, StoreError, doc_from_row, fmt_time, insert_event, now_str,
    parse_state,
};
use crate::domain::{DocState, DocumentId};
use serde::Serialize;
use sqlx::Row;

/// A stack's state.
pub mod state {
    /// Committed; its pages are being analysed.
    pub const RECEIVED: &str = "received";
    /// Split into documents.
    pub const SPLIT: &str = "split";
    /// Could not be split (not a PDF, unreadable), with a German reason.
    pub const QUARANTINED: &str = "quarantined";
}

/// A stack as the store knows it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// Id (a UUID v7, like a document's).
    pub id: String,
    /// SHA-256 of the stack's original (also its blob key).
    pub sha256: String,
    /// Where it came from (`hot_folder`).
    pub source: String,
    /// The file name it arrived with.
    pub original_name: String,
    /// Detected media type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// `received`, `split` or `quarantined`.
    pub state: String,
    /// Pages in the stack, once known.
    pub page_count: Option<i64>,
    /// The split (a [`crate::batch::Plan`] as JSON), once made.
    pub plan: Option<serde_json::Value>,
    /// Why it is quarantined (German), or the last failed attempt's error.
    pub reason: Option<String>,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// Commit time.
    pub created_at: String,
    /// When it reached the hot folder (else the commit time).
    pub arrived_at: String,
    /// When its content was deleted, if it was.
    pub purged_at: Option<String>,
}

const BATCH_COLUMNS: &str = "id, sha256, source, original_name, media_type, size_bytes, state, \
    page_count, plan, reason, attempts, next_attempt_at, created_at, \
    COALESCE(arrived_at, created_at) AS arrived_at, purged_at";

fn batch_from_row(r: &sqlx::any::AnyRow) -> Result<BatchRow> {
    Ok(BatchRow {
        id: r.try_get("id")?,
        sha256: r.try_get("sha256")?,
        source: r.try_get("source")?,
        original_name: r.try_get("original_name")?,
        media_type: r.try_get("media_type")?,
        size_bytes: r.try_get("size_bytes")?,
        state: r.try_get("state")?,
        page_count: r.try_get("page_count")?,
        plan: r
            .try_get::<Option<String>, _>("plan")?
            .map(|p| serde_json::from_str(&p))
            .transpose()?,
        reason: r.try_get("reason")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        arrived_at: r.try_get("arrived_at")?,
        purged_at: r.try_get("purged_at")?,
    })
}

/// A stack intake hands to the store.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// SHA-256 of the bytes (already in the blob store).
    pub sha256: String,
    /// Source name.
    pub source: String,
    /// Original file name.
    pub original_name: String,
    /// Detected media type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// When it reached its source, if before the commit.
    pub arrived_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Result of [`Store::insert_batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum BatchInserted {
    /// A new stack.
    New(String),
    /// The same bytes arrived before as this stack.
    Duplicate(String),
}

/// One letter of a split, as the pipeline made it.
#[derive(Debug, Clone)]
pub struct NewPart {
    /// SHA-256 of the part's PDF (already in the blob store).
    pub sha256: String,
    /// Its size.
    pub size_bytes: i64,
    /// Its pages in the stack (`3-5`).
    pub pages: String,
    /// The extraction (text, JSON) made from the stack's analysed pages; the document starts
    /// as `extracted`.
    pub extraction: Option<(String, String)>,
    /// A broken page: the document is quarantined with this reason and the quarantine file.
    pub broken: Option<(String, String)>,
}

impl Store {
    /// Records a received stack, or recognises its bytes as a stack received before. One
    /// transaction.
    pub async fn insert_batch(&self, b: &NewBatch, actor: &str) -> Result<BatchInserted> {
        let mut tx = self.begin_write().await?;
        if let Some(id) = query_scalar::<String>("SELECT id FROM batches WHERE sha256 = ?")
            .bind(&b.sha256)
            .fetch_optional(&mut *tx)
            .await?
        {
            insert_event(
                &mut tx,
                Some(&id),
                actor,
                "duplicate_batch_received",
                &serde_json::json!({"original_name": b.original_name, "source": b.source}),
            )
            .await?;
            tx.commit().await?;
            return Ok(BatchInserted::Duplicate(id));
        }
        let id = DocumentId::new().to_string();
        let now = now_str();
        query(
            "INSERT INTO batches (id, sha256, source, original_name, media_type, size_bytes, state, \
             created_at, arrived_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&b.sha256)
        .bind(&b.source)
        .bind(&b.original_name)
        .bind(&b.media_type)
        .bind(b.size_bytes)
        .bind(state::RECEIVED)
        .bind(&now)
        .bind(b.arrived_at.map(fmt_time))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(&id),
            actor,
            "batch_received",
            &serde_json::json!({"original_name": b.original_name, "source": b.source,
                                "sha256": b.sha256, "size": b.size_bytes}),
        )
        .await?;
        tx.commit().await?;
        Ok(BatchInserted::New(id))
    }

    /// One stack.
    pub async fn batch(&self, id: &str) -> Result<BatchRow> {
        let row = query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        batch_from_row(&row)
    }

    /// Stacks waiting to be split whose next attempt is due, oldest first.
    pub async fn batches_due(&self, limit: i64) -> Result<Vec<BatchRow>> {
        let rows = query(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE state = ? AND \
             (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY created_at, id LIMIT ?"
        ))
        .bind(state::RECEIVED)
        .bind(now_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from_row).collect()
    }

    /// The stack's analysed pages so far: (page, analysis JSON), in page order.
    pub async fn batch_pages(&self, id: &str) -> Result<Vec<(u32, String)>> {
        let rows = query("SELECT page, analysis FROM batch_pages WHERE batch_id = ? ORDER BY page")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("page")? as u32, r.try_get("analysis")?)))
            .collect()
    }

    /// Keeps one analysed page (and the stack's page count), so that it is not read again.
    pub async fn save_batch_page(
        &self,
        id: &str,
        page: u32,
        page_count: u32,
        analysis: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO batch_pages (batch_id, page, analysis) VALUES (?, ?, ?) \
             ON CONFLICT (batch_id, page) DO UPDATE SET analysis = excluded.analysis",
        )
        .bind(id)
        .bind(i64::from(page))
        .bind(analysis)
        .execute(&mut *tx)
        .await?;
        query("UPDATE batches SET page_count = ?, updated_at = ? WHERE id = ?")
            .bind(i64::from(page_count))
            .bind(now_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A failed attempt at splitting (not the input's fault): wait until `at`.
    pub async fn batch_failed(
        &self,
        id: &str,
        attempts: i64,
        at: chrono::DateTime<chrono::Utc>,
        error: &str,
    ) -> Result<()> {
        query(
            "UPDATE batches SET attempts = ?, next_attempt_at = ?, reason = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(attempts)
        .bind(fmt_time(at))
        .bind(error)
        .bind(now_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A stack that cannot be split (not a PDF, unreadable): quarantined with its reason and
    /// quarantine file (one transaction).
    pub async fn quarantine_batch(
        &self,
        id: &str,
        reason: &str,
        detail: &str,
        path: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = query("SELECT source, original_name FROM batches WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let (source, name): (String, String) =
            (row.try_get("source")?, row.try_get("original_name")?);
        let now = now_str();
        query("UPDATE batches SET state = ?, reason = ?, updated_at = ? WHERE id = ?")
            .bind(state::QUARANTINED)
            .bind(reason)
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        query(
            "INSERT INTO quarantine (document_id, source, original_name, reason, detail, path, at) \
             VALUES (NULL, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&source)
        .bind(text(&name))
        .bind(text(reason))
        .bind(text(detail))
        .bind(path)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id),
            "system",
            "batch_quarantined",
            &serde_json::json!({"reason": reason, "detail": detail}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The documents split from a stack, in page order.
    pub async fn batch_parts(&self, id: &str) -> Result<Vec<DocumentRow>> {
        let rows = query(&format!(
            "SELECT {} FROM documents WHERE batch_id = ? ORDER BY created_at, id",
            super::DOC_COLUMNS
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// Splits a stack: one document per part (`extracted`, or `quarantined` with its reason
    /// when a page of it is broken), the plan kept with the stack, in one transaction. Only a
    /// stack still `received` is split; a second call finds it split and changes nothing.
    /// Returns the new documents' ids.
    pub async fn split_batch(
        &self,
        id: &str,
        plan: &serde_json::Value,
        parts: &[NewPart],
        actor: &str,
    ) -> Result<Vec<DocumentId>> {
        let mut tx = self.begin_write().await?;
        let batch = batch_in(&mut tx, id).await?;
        if batch.state != state::RECEIVED {
            return Err(StoreError::Corrupt(format!(
                "stack {id} is {}, not received",
                batch.state
            )));
        }
        let ids = insert_parts(&mut tx, &batch, parts, actor).await?;
        query(
            "UPDATE batches SET state = ?, plan = ?, attempts = 0, next_attempt_at = NULL, \
             reason = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(state::SPLIT)
        .bind(plan.to_string())
        .bind(now_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id),
            actor,
            "batch_split",
            &serde_json::json!({"parts": parts.iter().map(|p| &p.pages).collect::<Vec<_>>(),
                                "documents": ids}),
        )
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Splits a stack anew by a person's plan: its documents, which must all still wait in
    /// review (or quarantine), are replaced by the new parts in one transaction. Their blobs
    /// are listed for deletion (a blob a new part has too stays: the purge checks use).
    pub async fn resplit_batch(
        &self,
        id: &str,
        plan: &serde_json::Value,
        parts: &[NewPart],
        actor: &str,
    ) -> Result<Vec<DocumentId>> {
        let mut tx = self.begin_write().await?;
        let batch = batch_in(&mut tx, id).await?;
        if batch.state != state::SPLIT || batch.purged_at.is_some() {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state: DocState::Review,
                message: "Der Stapel ist nicht (mehr) geteilt; er kann nicht neu geteilt werden."
                    .into(),
            });
        }
        let old = query(
            "SELECT id, state, sha256, purged_at FROM documents WHERE batch_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &old {
            let st = parse_state(&r.try_get::<String, _>("state")?)?;
            if !matches!(st, DocState::Review | DocState::Quarantined)
                || r.try_get::<Option<String>, _>("purged_at")?.is_some()
            {
                return Err(StoreError::Conflict {
                    id: r.try_get("id")?,
                    state: st,
                    message: "Ein Brief des Stapels ist schon weitergeleitet; die Trennung kann \
                              nur geändert werden, solange alle Briefe im Prüfkorb liegen."
                        .into(),
                });
            }
        }
        let now = now_str();
        for r in &old {
            let doc: String = r.try_get("id")?;
            let sha: String = r.try_get("sha256")?;
            for table in [
                "sender_keys",
                "shadow_decisions",
                "samples",
                "corrections",
                "quarantine",
                "capture_records",
                "visual_checks",
            ] {
                query(&format!("DELETE FROM {table} WHERE document_id = ?"))
                    .bind(&doc)
                    .execute(&mut *tx)
                    .await?;
            }
            query("DELETE FROM documents WHERE id = ?")
                .bind(&doc)
                .execute(&mut *tx)
                .await?;
            query(
                "INSERT INTO blob_deletions (sha256, at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            insert_event(
                &mut tx,
                Some(&doc),
                actor,
                "replaced_by_resplit",
                &serde_json::json!({"batch": id,
                    "note": "Der Stapel wurde neu geteilt; dieser Brief ist ersetzt."}),
            )
            .await?;
        }
        let ids = insert_parts(&mut tx, &batch, parts, actor).await?;
        query("UPDATE batches SET plan = ?, updated_at = ? WHERE id = ?")
            .bind(plan.to_string())
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            Some(id),
            actor,
            "batch_resplit",
            &serde_json::json!({"parts": parts.iter().map(|p| &p.pages).collect::<Vec<_>>(),
                                "documents": ids}),
        )
        .await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// Deletes a stack's content (its original, listed for deletion, and its analysed pages) once
/// every document split from it is purged, or at once when `now` (an erasure request: the
/// stack holds the erased letter's pages too). Inside the purge's transaction. Returns whether
/// it was purged now.
pub(super) async fn purge_batch_in(
    tx: &mut Tx<'_>,
    id: &str,
    now_anyway: bool,
    actor: &str,
) -> Result<bool> {
    let batch = batch_in(tx, id).await?;
    if batch.purged_at.is_some() {
        return Ok(false);
    }
    let open: i64 =
        query_scalar("SELECT COUNT(*) FROM documents WHERE batch_id = ? AND purged_at IS NULL")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    if !now_anyway && open > 0 {
        return Ok(false);
    }
    let now = now_str();
    query("DELETE FROM batch_pages WHERE batch_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    query(
        "UPDATE batches SET plan = NULL, original_name = ?, sha256 = ?, purged_at = ?, \
         updated_at = ? WHERE id = ?",
    )
    .bind(super::retention::PURGED_NAME)
    .bind(format!("purged:{id}"))
    .bind(&now)
    .bind(&now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    query("INSERT INTO blob_deletions (sha256, at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING")
        .bind(&batch.sha256)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    insert_event(tx, Some(id), actor, "batch_purged", &serde_json::json!({})).await?;
    Ok(true)
}

async fn batch_in(tx: &mut Tx<'_>, id: &str) -> Result<BatchRow> {
    let row = query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    batch_from_row(&row)
}

/// Inserts the parts of a stack as documents with their events.
async fn insert_parts(
    tx: &mut Tx<'_>,
    batch: &BatchRow,
    parts: &[NewPart],
    actor: &str,
) -> Result<Vec<DocumentId>> {
    let mut ids = Vec::new();
    let now = now_str();
    let stem = batch
        .original_name
        .rsplit_once('.')
        .map_or(batch.original_name.as_str(), |(s, _)| s);
    for p in parts {
        let id = DocumentId::new();
        let name = format!("{stem} (Seiten {}).pdf", p.pages);
        let (state, text, extraction, reason) = match (&p.broken, &p.extraction) {
            (Some((reason, _)), _) => (DocState::Quarantined, None, None, Some(reason.clone())),
            (None, Some((text, json))) => (
                DocState::Extracted,
                Some(text.clone()),
                Some(json.clone()),
                None,
            ),
            (None, None) => (DocState::Received, None, None, None),
        };
        // The same bytes as an earlier document (the same stack scanned twice is caught as a
        // duplicate stack; this is a part of another stack with the same pages): kept apart.
        let taken: Option<String> = query_scalar("SELECT id FROM documents WHERE sha256 = ?")
            .bind(&p.sha256)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(other) = taken {
            insert_event(
                tx,
                Some(&other),
                actor,
                "duplicate_received",
                &serde_json::json!({"original_name": name, "source": batch.source,
                                    "batch": batch.id, "pages": p.pages}),
            )
            .await?;
            ids.push(DocumentId::from_store(other));
            continue;
        }
        query(
            "INSERT INTO documents (id, sha256, source, original_name, media_type, size_bytes, \
             state, text_content, extraction, reason, created_at, arrived_at, updated_at, \
             batch_id, batch_pages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(&p.sha256)
        .bind(&batch.source)
        .bind(super::db::text(&name))
        .bind("application/pdf")
        .bind(p.size_bytes)
        .bind(state.as_str())
        .bind(text.as_deref().map(super::db::text))
        .bind(extraction)
        .bind(&reason)
        .bind(&now)
        .bind(&batch.arrived_at)
        .bind(&now)
        .bind(&batch.id)
        .bind(&p.pages)
        .execute(&mut **tx)
        .await?;
        insert_event(
            tx,
            Some(id.as_str()),
            actor,
            "received",
            &serde_json::json!({"original_name": name, "source": batch.source,
                                "sha256": p.sha256, "size": p.size_bytes,
                                "batch": batch.id, "pages": p.pages}),
        )
        .await?;
        if let Some((reason, path)) = &p.broken {
            query(
                "INSERT INTO quarantine (document_id, source, original_name, reason, detail, path, at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(&batch.source)
            .bind(&name)
            .bind(reason)
            .bind(format!("stack {} pages {}", batch.id, p.pages))
            .bind(path)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
            insert_event(
                tx,
                Some(id.as_str()),
                "system",
                "quarantined",
                &serde_json::json!({"reason": reason}),
            )
            .await?;
        } else if state == DocState::Extracted {
            insert_event(
                tx,
                Some(id.as_str()),
                "system",
                "extracted",
                &serde_json::json!({"method": "ocr", "from_batch": batch.id}),
            )
            .await?;
        }
        ids.push(id);
    }
    Ok(ids)
}
