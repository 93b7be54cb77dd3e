//! SQL of the capture record (Erfassungsprotokoll) and of the Sichtkontrolle.

use super::db::{query, query_scalar};
use super::{Result, Store, StoreError, doc_columns, insert_event, now_str, parse_state};
use crate::capture::CaptureRecord;
use crate::domain::DocumentId;
use serde::Serialize;
use sqlx::Row;

/// The conflict message of a verdict on a visual check judged before.
pub const CHECKED_ALREADY: &str = "the visual check is judged already";

/// What a person said about a scan in the Sichtkontrolle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualVerdict {
    /// Complete and legible.
    Ok,
    /// To be scanned again (pages missing, cut off or illegible).
    Rescan,
}

impl VisualVerdict {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            VisualVerdict::Ok => "ok",
            VisualVerdict::Rescan => "rescan",
        }
    }

    /// Parses [`VisualVerdict::as_str`].
    pub fn parse(s: &str) -> Option<VisualVerdict> {
        match s {
            "ok" => Some(VisualVerdict::Ok),
            "rescan" => Some(VisualVerdict::Rescan),
            _ => None,
        }
    }

    /// The verdict as people read it (German).
    pub fn german(self) -> &'static str {
        match self {
            VisualVerdict::Ok => "vollständig und lesbar",
            VisualVerdict::Rescan => "neu scannen",
        }
    }
}

/// A scan in the Sichtkontrolle.
#[derive(Debug, Clone, Serialize)]
pub struct VisualCheckRow {
    /// The document (also the check's id).
    pub document_id: DocumentId,
    /// Its file name.
    pub original_name: String,
    /// Its mailbox, once decided.
    pub mailbox: Option<String>,
    /// Its state.
    pub state: String,
    /// When it entered the check.
    pub queued_at: String,
    /// The verdict, `None` while open.
    pub verdict: Option<VisualVerdict>,
    /// The person's note (what is missing or illegible).
    pub note: Option<String>,
    /// Who judged.
    pub actor: Option<String>,
    /// When.
    pub judged_at: Option<String>,
}

const CHECK_COLUMNS: &str = "v.document_id, d.original_name, d.mailbox, d.state, v.queued_at, \
    v.verdict, v.note, v.actor, v.judged_at";

fn check_from_row(r: &sqlx::any::AnyRow) -> Result<VisualCheckRow> {
    let verdict: Option<String> = r.try_get("verdict")?;
    Ok(VisualCheckRow {
        document_id: DocumentId::from_store(r.try_get("document_id")?),
        original_name: r.try_get("original_name")?,
        mailbox: r.try_get("mailbox")?,
        state: r.try_get("state")?,
        queued_at: r.try_get("queued_at")?,
        verdict: verdict.as_deref().and_then(VisualVerdict::parse),
        note: r.try_get("note")?,
        actor: r.try_get("actor")?,
        judged_at: r.try_get("judged_at")?,
    })
}

impl Store {
    /// Stores a document's capture record, once: the record, its `capture_recorded` event
    /// (the seal and a summary) and, when the record says so, its place in the
    /// Sichtkontrolle, in one transaction. A record made before wins and is returned, so
    /// every delivery attempt sends the same record.
    pub async fn record_capture(&self, record: &CaptureRecord) -> Result<CaptureRecord> {
        let mut tx = self.begin_write().await?;
        if let Some(json) =
            query_scalar::<String>("SELECT record FROM capture_records WHERE document_id = ?")
                .bind(&record.document_id)
                .fetch_optional(&mut *tx)
                .await?
        {
            return parse_record(&json);
        }
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = now_str();
        query(
            "INSERT INTO capture_records (document_id, record, seal, recorded_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&record.document_id)
        .bind(&json)
        .bind(record.seal())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        if record.visual_check {
            query(
                "INSERT INTO visual_checks (document_id, queued_at) VALUES (?, ?) \
                 ON CONFLICT (document_id) DO NOTHING",
            )
            .bind(&record.document_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        insert_event(
            &mut tx,
            Some(&record.document_id),
            "system",
            "capture_recorded",
            &record.audit_detail(),
        )
        .await?;
        tx.commit().await?;
        Ok(record.clone())
    }

    /// A document's capture record, once made (and until its content is purged).
    pub async fn capture_record(&self, id: &DocumentId) -> Result<Option<CaptureRecord>> {
        let json: Option<String> =
            query_scalar("SELECT record FROM capture_records WHERE document_id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        json.as_deref().map(parse_record).transpose()
    }

    /// Who handed the document in: the actor of its `received` event (the signed-in person
    /// for an upload).
    pub async fn received_by(&self, id: &DocumentId) -> Result<Option<String>> {
        Ok(query_scalar(
            "SELECT actor FROM events WHERE document_id = ? AND kind = 'received' ORDER BY id LIMIT 1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The open visual checks, oldest first.
    pub async fn open_visual_checks(&self, limit: i64) -> Result<Vec<VisualCheckRow>> {
        let rows = query(&format!(
            "SELECT {CHECK_COLUMNS} FROM visual_checks v JOIN documents d ON d.id = v.document_id \
             WHERE v.verdict IS NULL ORDER BY v.queued_at, v.document_id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check_from_row).collect()
    }

    /// Every visual check (open and judged), newest first.
    pub async fn visual_checks(&self, limit: i64) -> Result<Vec<VisualCheckRow>> {
        let rows = query(&format!(
            "SELECT {CHECK_COLUMNS} FROM visual_checks v JOIN documents d ON d.id = v.document_id \
             ORDER BY v.queued_at DESC, v.document_id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check_from_row).collect()
    }

    /// One visual check, `None` when the document was not queued for one.
    pub async fn visual_check(&self, id: &DocumentId) -> Result<Option<VisualCheckRow>> {
        let row = query(&format!(
            "SELECT {CHECK_COLUMNS} FROM visual_checks v JOIN documents d ON d.id = v.document_id \
             WHERE v.document_id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(check_from_row).transpose()
    }

    /// Records a person's verdict on an open visual check (event `visual_check_judged`). A
    /// check judged before is a conflict.
    pub async fn judge_visual_check(
        &self,
        id: &DocumentId,
        verdict: VisualVerdict,
        note: Option<&str>,
        actor: &str,
    ) -> Result<VisualCheckRow> {
        let mut tx = self.begin_write().await?;
        let judged: Option<String> =
            query("SELECT verdict FROM visual_checks WHERE document_id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?
                .try_get("verdict")?;
        if judged.is_some() {
            let state = parse_state(
                &doc_columns(&mut tx, id, "state")
                    .await?
                    .try_get::<String, _>("state")?,
            )?;
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: CHECKED_ALREADY.into(),
            });
        }
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        query(
            "UPDATE visual_checks SET verdict = ?, note = ?, actor = ?, judged_at = ? WHERE document_id = ?",
        )
        .bind(verdict.as_str())
        .bind(note)
        .bind(actor)
        .bind(now_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "visual_check_judged",
            &serde_json::json!({"verdict": verdict.as_str(), "note": note}),
        )
        .await?;
        tx.commit().await?;
        self.visual_check(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }
}

fn parse_record(json: &str) -> Result<CaptureRecord> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("capture record: {e}")))
}
