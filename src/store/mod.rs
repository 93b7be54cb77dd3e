//! The store: every SQL statement of poststelle lives in this module.
//!
//! SQLite is the embedded default. Statements are plain, portable SQL run through sqlx's runtime
//! API (`query`/`query_as`), so a PostgreSQL backend can be added here without touching callers.
//! Every state change and its audit event are written in one transaction.

pub mod audit;
pub mod batches;
pub mod blobs;
pub mod capture;
pub mod db;
mod delivery;
pub mod imap;
pub mod lock;
pub mod metadata;
pub mod outgoing;
pub mod pseudonym;
pub mod retention;
pub mod samples;
mod sender;
pub mod settings;
pub mod shadow;
mod stages;
pub mod stats;
pub mod users;

use crate::domain::{DecidedBy, Decision, DocState, DocumentId, MailboxId};
use chrono::{DateTime, SecondsFormat, Utc};
pub use db::{Backend, Tx};
use db::{query, query_scalar};
use serde::Serialize;
use sqlx::{AnyPool, Row};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON could not be read or written.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value is not what the code expects.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// No such document.
    #[error("document {0} not found")]
    NotFound(String),
    /// No such account.
    #[error("Benutzer „{0}“ gibt es nicht.")]
    UnknownUser(String),
    /// The name is taken.
    #[error("{0} gibt es schon.")]
    Exists(String),
    /// The change is not allowed in the document's current state.
    #[error("document {id} is {state}: {message}")]
    Conflict {
        /// The document.
        id: String,
        /// Its state.
        state: DocState,
        /// Why not.
        message: String,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Timestamp format used in every column: RFC 3339, UTC, milliseconds.
pub fn now_str() -> String {
    fmt_time(Utc::now())
}

/// A time in the format of every column (see [`now_str`]).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A document as the store knows it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRow {
    /// Id.
    pub id: DocumentId,
    /// SHA-256 of the original bytes (also the blob key).
    pub sha256: String,
    /// Where it came from (`hot_folder`, `upload`, ...).
    pub source: String,
    /// The file name it arrived with.
    pub original_name: String,
    /// Detected media type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Current state.
    pub state: DocState,
    /// Decided (or proposed) mailbox.
    pub mailbox: Option<MailboxId>,
    /// Confidence of the decision.
    pub confidence: Option<f64>,
    /// What decided.
    pub decided_by: Option<DecidedBy>,
    /// The full decision with its explanation.
    pub decision: Option<Decision>,
    /// Why it is quarantined or a dead letter (German).
    pub reason: Option<String>,
    /// Failed attempts of the current stage so far (extraction, classification or delivery).
    pub attempts: i64,
    /// When the next attempt of the current stage is due.
    pub next_attempt_at: Option<String>,
    /// The target's reference after delivery.
    pub delivery_ref: Option<String>,
    /// For a dead letter: the stage it failed in, where a re-drive resumes (`None`: delivery).
    pub failed_stage: Option<DocState>,
    /// Arrival time.
    pub created_at: String,
    /// When it reached its source, if earlier than the commit (a scan waiting in the hot
    /// folder); else the commit time. Orders the sandbox's work on page 1: a letter that
    /// arrives while a stack of scans is being taken in counts as newer than the whole stack.
    pub arrived_at: String,
    /// Last change.
    pub updated_at: String,
    /// When its content was deleted (retention period or erasure request), if it was.
    pub purged_at: Option<String>,
    /// The decision's version: counted up by every change of the decision (the machine's, an
    /// assignment, a send-back). A delivery is recorded only for the version it was sent with.
    pub version: i64,
    /// The stack (batch) the document was split from, if it was.
    pub batch_id: Option<String>,
    /// Its pages in that stack (`3-5`).
    pub batch_pages: Option<String>,
}

/// What intake hands to the store.
#[derive(Debug, Clone)]
pub struct NewDocument {
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
    /// When the document reached its source (a file first seen in the hot folder), if that
    /// was before the commit; orders the work on page 1 (see [`DocumentRow::arrived_at`]).
    pub arrived_at: Option<chrono::DateTime<Utc>>,
}

/// Result of [`Store::insert_received`].
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new document.
    New(DocumentId),
    /// The same bytes were received before as this document.
    Duplicate(DocumentId),
    /// The same bytes were received before as this document, which was quarantined: it is
    /// read again (`quarantined -> received`, event `quarantine_retried`).
    Retried(DocumentId),
}

/// An audit event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Sequence number.
    pub id: i64,
    /// The document, if any.
    pub document_id: Option<String>,
    /// When.
    pub at: String,
    /// Who (`system`, `hot_folder`, a user name, ...).
    pub actor: String,
    /// What (`received`, `classified`, `delivered`, ...).
    pub kind: String,
    /// Details as JSON.
    pub detail: serde_json::Value,
}

/// A quarantine entry.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    /// Sequence number.
    pub id: i64,
    /// The document, when one was created.
    pub document_id: Option<String>,
    /// Source.
    pub source: String,
    /// Original name.
    pub original_name: String,
    /// Reason in German.
    pub reason: String,
    /// Technical detail.
    pub detail: String,
    /// Where the file was put.
    pub path: Option<String>,
    /// When.
    pub at: String,
}

/// The store handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

const DOC_COLUMNS: &str = "id, sha256, source, original_name, media_type, size_bytes, state, mailbox, \
     confidence, decided_by, decision, reason, attempts, next_attempt_at, delivery_ref, failed_stage, created_at, COALESCE(arrived_at, created_at) AS arrived_at, updated_at, purged_at, version, batch_id, batch_pages";

impl Store {
    /// Opens the database at `url` (`sqlite://path`, created if missing, or `postgres://…`)
    /// and applies the engine's migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let (pool, backend) = db::connect(url).await?;
        let store = Store { pool, backend };
        store.ensure_pseudonym_key().await?;
        store.pseudonymise_old_events().await?;
        store.chain_old_events().await?;
        Ok(store)
    }

    /// The engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction, exclusive among all writers of the database (SQLite's
    /// `BEGIN IMMEDIATE`; on PostgreSQL the transaction-level advisory lock
    /// [`db::WRITE_LOCK`]).
    async fn begin_write(&self) -> Result<Tx<'static>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                query("SELECT pg_advisory_xact_lock(?)")
                    .bind(db::WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Creates this installation's pseudonym key on first start (32 random bytes, hex).
    async fn ensure_pseudonym_key(&self) -> Result<()> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            StoreError::Corrupt(format!("no randomness for the pseudonym key: {e}"))
        })?;
        query(
            "INSERT INTO store_secrets (name, value) VALUES ('pseudonym_key', ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(hex::encode(key))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rewrites the details of events written before the audit trail was pseudonymised, once
    /// (the append-only trigger is lifted for this migration only, in its transaction).
    async fn pseudonymise_old_events(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done: Option<String> =
            query_scalar("SELECT value FROM store_secrets WHERE name = 'events_pseudonymised'")
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            return Ok(());
        }
        let key = pseudonym_key(&mut tx).await?;
        query("DROP TRIGGER IF EXISTS events_no_update")
            .execute(&mut *tx)
            .await?;
        let rows = query("SELECT id, detail FROM events")
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let detail: String = r.try_get("detail")?;
            let scrubbed = match serde_json::from_str::<serde_json::Value>(&detail) {
                Ok(v) => pseudonym::scrub(&key, &v).to_string(),
                Err(_) => pseudonym::scrub_text(&key, &detail),
            };
            if scrubbed != detail {
                query("UPDATE events SET detail = ? WHERE id = ?")
                    .bind(scrubbed)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        query(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events \
             BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        )
        .execute(&mut *tx)
        .await?;
        query("INSERT INTO store_secrets (name, value) VALUES ('events_pseudonymised', ?)")
            .bind(now_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a received document, or recognises its bytes as a duplicate. One transaction.
    pub async fn insert_received(&self, doc: &NewDocument, actor: &str) -> Result<Inserted> {
        let mut tx = self.begin_write().await?;
        if let Some(row) = query("SELECT id, state FROM documents WHERE sha256 = ?")
            .bind(&doc.sha256)
            .fetch_optional(&mut *tx)
            .await?
        {
            let id: String = row.try_get("id")?;
            if parse_state(&row.try_get::<String, _>("state")?)? == DocState::Quarantined {
                // Handed in again: read it anew instead of calling it a duplicate.
                requeue_quarantined(
                    &mut tx,
                    &id,
                    actor,
                    serde_json::json!({
                        "trigger": "same_bytes_again", "original_name": doc.original_name,
                        "source": doc.source,
                        "note": "Dieselbe Datei wurde erneut eingereicht; sie wird neu gelesen.",
                    }),
                )
                .await?;
                tx.commit().await?;
                return Ok(Inserted::Retried(DocumentId::from_store(id)));
            }
            insert_event(
                &mut tx,
                Some(&id),
                actor,
                "duplicate_received",
                &serde_json::json!({"original_name": doc.original_name, "source": doc.source}),
            )
            .await?;
            tx.commit().await?;
            return Ok(Inserted::Duplicate(DocumentId::from_store(id)));
        }
        let id = DocumentId::new();
        let now = now_str();
        query(
            "INSERT INTO documents (id, sha256, source, original_name, media_type, size_bytes, state, created_at, arrived_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(&doc.sha256)
        .bind(&doc.source)
        .bind(db::text(&doc.original_name))
        .bind(&doc.media_type)
        .bind(doc.size_bytes)
        .bind(DocState::Received.as_str())
        .bind(&now)
        .bind(doc.arrived_at.map(fmt_time))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "received",
            &serde_json::json!({"original_name": doc.original_name, "source": doc.source, "sha256": doc.sha256, "size": doc.size_bytes}),
        )
        .await?;
        tx.commit().await?;
        Ok(Inserted::New(id))
    }

    /// One document.
    pub async fn get(&self, id: &DocumentId) -> Result<DocumentRow> {
        let row = query(&format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        doc_from_row(&row)
    }

    /// Documents, newest first, optionally in one state.
    pub async fn list(&self, state: Option<DocState>, limit: i64) -> Result<Vec<DocumentRow>> {
        let rows = match state {
            Some(s) => {
                query(&format!(
                    "SELECT {DOC_COLUMNS} FROM documents WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                query(&format!(
                    "SELECT {DOC_COLUMNS} FROM documents ORDER BY created_at DESC, id DESC LIMIT ?"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(doc_from_row).collect()
    }

    /// Documents in `mailboxes` (what a department sees: queued, delivered or dead letters
    /// there), newest first; `state` narrows further.
    pub async fn list_in_mailboxes(
        &self,
        mailboxes: &[MailboxId],
        state: Option<DocState>,
        limit: i64,
    ) -> Result<Vec<DocumentRow>> {
        if mailboxes.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; mailboxes.len()].join(", ");
        let visible = [DocState::Queued, DocState::Delivered, DocState::DeadLetter];
        let states: Vec<DocState> = match state {
            Some(s) if visible.contains(&s) => vec![s],
            Some(_) => return Ok(Vec::new()),
            None => visible.to_vec(),
        };
        let state_marks = vec!["?"; states.len()].join(", ");
        let sql = format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE mailbox IN ({marks}) AND state IN ({state_marks}) \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        let mut q = query(&sql);
        for m in mailboxes {
            q = q.bind(m.as_str());
        }
        for st in &states {
            q = q.bind(st.as_str());
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// Ids of documents in a state whose next attempt is due (a stage that failed waits for its
    /// backoff), oldest first: the pipeline's work list.
    pub async fn ids_in_state(&self, state: DocState, limit: i64) -> Result<Vec<DocumentId>> {
        self.due_ids(state, "created_at, id", limit).await
    }

    /// Like [`Store::ids_in_state`], the latest arrivals first (see [`DocumentRow::arrived_at`]).
    pub async fn newest_in_state(&self, state: DocState, limit: i64) -> Result<Vec<DocumentId>> {
        self.due_ids(
            state,
            "COALESCE(arrived_at, created_at) DESC, id DESC",
            limit,
        )
        .await
    }

    /// Queued documents whose next delivery attempt is due.
    pub async fn due_for_delivery(&self, limit: i64) -> Result<Vec<DocumentId>> {
        self.due_ids(DocState::Queued, "created_at, id", limit)
            .await
    }

    /// Ids in `state` whose next attempt is due, in `order` (a fixed ORDER BY clause).
    async fn due_ids(
        &self,
        state: DocState,
        order: &'static str,
        limit: i64,
    ) -> Result<Vec<DocumentId>> {
        let sql = format!(
            "SELECT id FROM documents WHERE state = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
             ORDER BY {order} LIMIT ?"
        );
        let rows = query(&sql)
            .bind(state.as_str())
            .bind(now_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(DocumentId::from_store(r.try_get("id")?)))
            .collect()
    }

    /// Stores the extraction (text + JSON pages) and moves `received -> extracted`.
    pub async fn set_extracted(
        &self,
        id: &DocumentId,
        text: &str,
        extraction_json: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.transition(
            id,
            &[DocState::Received],
            DocState::Extracted,
            "system",
            "extracted",
            detail,
            |q| {
                q.push_str(
                    ", text_content = ?, extraction = ?, attempts = 0, next_attempt_at = NULL, reason = NULL",
                );
            },
            vec![db::text(text), extraction_json.to_string()],
        )
        .await
    }

    /// The stored extraction JSON.
    pub async fn extraction(&self, id: &DocumentId) -> Result<Option<String>> {
        let row = query("SELECT extraction FROM documents WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Ok(row.try_get("extraction")?)
    }

    /// Stores a machine decision; the document goes to `review` or `queued`.
    pub async fn set_decision(&self, id: &DocumentId, decision: &Decision) -> Result<DocState> {
        self.set_decision_sampled(id, decision, false).await
    }

    /// Stores a machine decision like [`Store::set_decision`]; when `sampled` and the document
    /// goes straight to `queued`, it also enters the Stichprobe (a `samples` row, open), in the
    /// same transaction.
    pub async fn set_decision_sampled(
        &self,
        id: &DocumentId,
        decision: &Decision,
        sampled: bool,
    ) -> Result<DocState> {
        let next = if decision.needs_review {
            DocState::Review
        } else {
            DocState::Queued
        };
        let json = serde_json::to_string(decision)?;
        let mut tx = self.begin_write().await?;
        let current = state_of(&mut tx, id).await?;
        if current != DocState::Extracted && current != DocState::Classified {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state: current,
                message: "not waiting for a decision".into(),
            });
        }
        query(
            "UPDATE documents SET state = ?, mailbox = ?, confidence = ?, decided_by = ?, decision = ?, \
             attempts = 0, next_attempt_at = NULL, reason = NULL, version = version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(next.as_str())
        .bind(decision.mailbox.as_ref().map(|m| m.as_str().to_string()))
        .bind(decision.confidence)
        .bind(decided_by_str(decision.decided_by))
        .bind(&json)
        .bind(now_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            "classifier",
            "classified",
            &serde_json::json!({
                "mailbox": decision.mailbox, "confidence": decision.confidence,
                "decided_by": decision.decided_by, "needs_review": decision.needs_review,
                "state": next,
            }),
        )
        .await?;
        if let (true, DocState::Queued, Some(mailbox)) = (sampled, next, &decision.mailbox) {
            samples::insert_sample(
                &mut tx,
                id,
                mailbox,
                decision.confidence,
                decided_by_str(decision.decided_by),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(next)
    }

    /// A person assigns a mailbox (review decision or correction): stored as a correction, then
    /// the document is queued for delivery to that mailbox.
    pub async fn assign(
        &self,
        id: &DocumentId,
        mailbox: &MailboxId,
        actor: &str,
        origin: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        assign_in(&mut tx, id, mailbox, actor, origin).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The clerk a delivery found for the document's mailbox (the mailbox's assignment table,
    /// asked anew by every delivery): stored in the decision's explanation when it differs
    /// from the stored one, with an event, unless the decision changed meanwhile (`version`,
    /// compare-and-set; no new version: the mailbox is the same). Returns whether it was stored.
    pub async fn set_clerk(
        &self,
        id: &DocumentId,
        version: i64,
        clerk: Option<&crate::domain::ClerkAssignment>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "decision, version").await?;
        if row.try_get::<i64, _>("version")? != version {
            return Ok(false);
        }
        let Some(mut decision) = row
            .try_get::<Option<String>, _>("decision")?
            .map(|j| serde_json::from_str::<Decision>(&j))
            .transpose()?
        else {
            return Ok(false);
        };
        if decision.explanation.clerk.as_ref() == clerk {
            return Ok(false);
        }
        decision.explanation.clerk = clerk.cloned();
        query("UPDATE documents SET decision = ?, updated_at = ? WHERE id = ? AND version = ?")
            .bind(serde_json::to_string(&decision)?)
            .bind(now_str())
            .bind(id.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            "outbox",
            "clerk_assigned",
            &serde_json::json!({
                "mailbox": clerk.map(|c| &c.mailbox), "clerk": clerk.map(|c| &c.id),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A department sends a document back to the Poststelle (it was not theirs): it returns to
    /// the review queue with `reason` as its review reason. The document stays where it was
    /// filed until the Poststelle assigns it again; that assignment re-delivers it (the
    /// target's re-assignment rules) and is the correction the model learns from.
    pub async fn send_back(
        &self,
        id: &DocumentId,
        from: &MailboxId,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "state, mailbox, decision").await?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let current: Option<String> = row.try_get("mailbox")?;
        if !matches!(
            state,
            DocState::Delivered | DocState::Queued | DocState::DeadLetter
        ) || current.as_deref() != Some(from.as_str())
        {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: "only documents queued or delivered in this mailbox can be sent back"
                    .into(),
            });
        }
        let mut decision: Option<Decision> = row
            .try_get::<Option<String>, _>("decision")?
            .map(|j| serde_json::from_str(&j))
            .transpose()?;
        let text = format!("Vom Fachbereich {from} zurückgegeben: {reason}");
        if let Some(d) = decision.as_mut() {
            d.needs_review = true;
            d.explanation.review_reason = Some(text.clone());
            // The department said it is not theirs: it is no longer the proposal.
            // Candidates without evidence are no proposal either.
            d.explanation
                .candidates
                .retain(|c| &c.mailbox != from && c.score > 0.0);
            d.mailbox = d.explanation.candidates.first().map(|c| c.mailbox.clone());
            d.confidence = d.explanation.candidates.first().map_or(0.0, |c| c.score);
            d.explanation.clerk = None;
        }
        let now = now_str();
        query(
            "UPDATE documents SET state = ?, decision = ?, attempts = 0, next_attempt_at = NULL, \
             reason = NULL, failed_stage = NULL, version = version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(DocState::Review.as_str())
        .bind(decision.map(|d| serde_json::to_string(&d)).transpose()?)
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "sent_back",
            &serde_json::json!({"from": from, "reason": reason}),
        )
        .await?;
        samples::judge_by_correction(&mut tx, id, None, actor, "sent_back").await?;
        tx.commit().await?;
        Ok(())
    }

    /// The target confirmed the document in `mailbox`, sent with decision `version`: `queued
    /// -> delivered`, but only when mailbox and version are still the document's
    /// (compare-and-set). When the decision changed while this delivery was in flight (a
    /// person re-assigned it, or it was sent back to review), the delivery is recorded
    /// honestly (event `delivered_superseded`: the target has it in `mailbox` too, with a
    /// German note) and the state stays: the document is delivered again with its new decision
    /// (the target's re-assignment rules), or waits in review. Returns whether the document is
    /// delivered now.
    pub async fn mark_delivered(
        &self,
        id: &DocumentId,
        target: &str,
        reference: &str,
        mailbox: &MailboxId,
        version: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "state, mailbox, version").await?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let current: Option<String> = row.try_get("mailbox")?;
        let current_version: i64 = row.try_get("version")?;
        let unchanged = current.as_deref() == Some(mailbox.as_str()) && current_version == version;
        let delivered = match state {
            DocState::Queued if unchanged => {
                let updated = query(
                    "UPDATE documents SET state = ?, delivery_ref = ?, next_attempt_at = NULL, \
                     updated_at = ? WHERE id = ? AND state = ? AND mailbox = ? AND version = ?",
                )
                .bind(DocState::Delivered.as_str())
                .bind(reference)
                .bind(now_str())
                .bind(id.as_str())
                .bind(DocState::Queued.as_str())
                .bind(mailbox.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err(StoreError::Conflict {
                        id: id.to_string(),
                        state,
                        message: "changed while being marked delivered".into(),
                    });
                }
                let detail = serde_json::json!({
                    "target": target, "reference": reference, "mailbox": mailbox,
                    "version": version,
                });
                insert_event(&mut tx, Some(id.as_str()), "outbox", "delivered", &detail).await?;
                true
            }
            DocState::Queued | DocState::Review => {
                // Decided anew while in flight: the target has it in `mailbox`, the document's
                // decision is another one now.
                let note = superseded_note(target, reference, mailbox, state, current.as_deref());
                let detail = serde_json::json!({
                    "target": target, "reference": reference, "mailbox": mailbox,
                    "version": version, "now_mailbox": current, "now_version": current_version,
                    "now_state": state, "note": note,
                });
                insert_event(
                    &mut tx,
                    Some(id.as_str()),
                    "outbox",
                    "delivered_superseded",
                    &detail,
                )
                .await?;
                false
            }
            other => {
                return Err(StoreError::Conflict {
                    id: id.to_string(),
                    state: other,
                    message: "cannot go to delivered".into(),
                });
            }
        };
        tx.commit().await?;
        Ok(delivered)
    }

    /// A delivery attempt failed; schedule the next one.
    pub async fn schedule_retry(
        &self,
        id: &DocumentId,
        attempts: i64,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.transition(
            id,
            &[DocState::Queued],
            DocState::Queued,
            "outbox",
            "delivery_failed",
            serde_json::json!({"attempt": attempts, "error": error, "next_attempt_at": fmt_time(next)}),
            |q| q.push_str(", attempts = CAST(? AS BIGINT), next_attempt_at = ?, reason = ?"),
            vec![attempts.to_string(), fmt_time(next), error.to_string()],
        )
        .await
    }

    /// Delivery gave up: `queued -> dead_letter`.
    pub async fn dead_letter(&self, id: &DocumentId, attempts: i64, reason: &str) -> Result<()> {
        self.transition(
            id,
            &[DocState::Queued],
            DocState::DeadLetter,
            "outbox",
            "dead_letter",
            serde_json::json!({"attempts": attempts, "reason": reason}),
            |q| q.push_str(", attempts = CAST(? AS BIGINT), reason = ?"),
            vec![attempts.to_string(), reason.to_string()],
        )
        .await
    }

    /// Puts a dead letter back where it failed: the outbox (`queued`), or the extract/classify
    /// stage it gave up in. Attempts start again from zero.
    pub async fn redrive(&self, id: &DocumentId, actor: &str) -> Result<DocState> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "state, failed_stage").await?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        if state != DocState::DeadLetter {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: "only dead letters can be re-driven".into(),
            });
        }
        let to = row
            .try_get::<Option<String>, _>("failed_stage")?
            .map(|s| parse_state(&s))
            .transpose()?
            .unwrap_or(DocState::Queued);
        query(
            "UPDATE documents SET state = ?, failed_stage = NULL, attempts = 0, next_attempt_at = NULL, \
             updated_at = ? WHERE id = ?",
        )
        .bind(to.as_str())
        .bind(now_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "redrive",
            &serde_json::json!({"to": to}),
        )
        .await?;
        tx.commit().await?;
        Ok(to)
    }

    /// Tries a quarantined document again (e.g. after a timeout under load): `quarantined ->
    /// received`, so that extraction runs anew on the stored original.
    pub async fn retry_quarantined(&self, id: &DocumentId, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "state, purged_at").await?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        if state != DocState::Quarantined {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: "only quarantined documents can be tried again".into(),
            });
        }
        if row.try_get::<Option<String>, _>("purged_at")?.is_some() {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state,
                message: "Der Inhalt wurde gelöscht (Aufbewahrungsfrist oder Löschantrag); das \
                          Schriftstück kann nicht erneut gelesen werden."
                    .into(),
            });
        }
        requeue_quarantined(&mut tx, id.as_str(), actor, serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a document unreadable and records the quarantine entry (one transaction).
    pub async fn quarantine_document(
        &self,
        id: &DocumentId,
        reason: &str,
        detail: &str,
        path: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = doc_columns(&mut tx, id, "source, original_name").await?;
        let source: String = row.try_get("source")?;
        let name: String = row.try_get("original_name")?;
        let now = now_str();
        query("UPDATE documents SET state = ?, reason = ?, updated_at = ? WHERE id = ?")
            .bind(DocState::Quarantined.as_str())
            .bind(db::text(reason))
            .bind(&now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        query("INSERT INTO quarantine (document_id, source, original_name, reason, detail, path, at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(&source)
            .bind(db::text(&name))
            .bind(db::text(reason))
            .bind(db::text(detail))
            .bind(path)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            "system",
            "quarantined",
            &serde_json::json!({"reason": reason, "detail": detail}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an input that never became a document (e.g. an empty file).
    pub async fn quarantine_input(
        &self,
        source: &str,
        name: &str,
        reason: &str,
        detail: &str,
        path: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_str();
        query("INSERT INTO quarantine (document_id, source, original_name, reason, detail, path, at) VALUES (NULL, ?, ?, ?, ?, ?, ?)")
            .bind(source)
            .bind(db::text(name))
            .bind(db::text(reason))
            .bind(db::text(detail))
            .bind(path)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            None,
            source,
            "input_quarantined",
            &serde_json::json!({"name": name, "reason": reason, "detail": detail}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Quarantine entries, newest first.
    pub async fn quarantine_entries(&self, limit: i64) -> Result<Vec<QuarantineEntry>> {
        let rows = query(&format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine ORDER BY id DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_from_row).collect()
    }

    /// One quarantine entry by its id.
    pub async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>> {
        query(&format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(quarantine_from_row)
        .transpose()
    }

    /// Appends an audit event not tied to a state change.
    pub async fn log_event(
        &self,
        document: Option<&DocumentId>,
        actor: &str,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_event(&mut tx, document.map(|d| d.as_str()), actor, kind, &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A document's audit trail, oldest first.
    pub async fn events(&self, id: &DocumentId) -> Result<Vec<Event>> {
        let rows = query("SELECT id, document_id, at, actor, kind, detail FROM events WHERE document_id = ? ORDER BY id")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(Event {
                    id: r.try_get("id")?,
                    document_id: r.try_get("document_id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    kind: r.try_get("kind")?,
                    detail: serde_json::from_str(&detail)?,
                })
            })
            .collect()
    }

    /// The latest correction per document with the document's text, oldest first, for training:
    /// (document id, text, corrected mailbox, when).
    pub async fn corrections_for_training(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = query(
            "SELECT c.document_id, d.text_content, c.to_mailbox, c.at FROM corrections c JOIN documents d ON d.id = c.document_id \
             WHERE d.text_content IS NOT NULL AND c.id = (SELECT MAX(c2.id) FROM corrections c2 WHERE c2.document_id = c.document_id) ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("document_id")?,
                    r.try_get("text_content")?,
                    r.try_get("to_mailbox")?,
                    r.try_get("at")?,
                ))
            })
            .collect()
    }

    /// Records a model version and whether it is the active one (the audit trail of models;
    /// the model files themselves live in the registry directory).
    pub async fn record_model(
        &self,
        version: &str,
        path: &str,
        metrics: &serde_json::Value,
        active: bool,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let known = query("SELECT active FROM model_versions WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        let was_active = match &known {
            Some(r) => r.try_get::<i64, _>("active")? == 1,
            None => false,
        };
        if known.is_none() {
            query("INSERT INTO model_versions (version, path, created_at, metrics, active) VALUES (?, ?, ?, ?, 0)")
                .bind(version)
                .bind(path)
                .bind(now_str())
                .bind(metrics.to_string())
                .execute(&mut *tx)
                .await?;
        }
        if active && !was_active {
            query("UPDATE model_versions SET active = CASE WHEN version = ? THEN 1 ELSE 0 END")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            insert_event(
                &mut tx,
                None,
                "system",
                "model_activated",
                &serde_json::json!({"version": version}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts of documents per state.
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            query("SELECT state, COUNT(*) AS n FROM documents GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Generic guarded transition with an event; `extra` appends `, col = ?` pieces bound to `binds`
    /// (text: a number column says `CAST(? AS BIGINT)`).
    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &self,
        id: &DocumentId,
        from: &[DocState],
        to: DocState,
        actor: &str,
        kind: &str,
        detail: serde_json::Value,
        extra: impl FnOnce(&mut String),
        binds: Vec<String>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let current = state_of(&mut tx, id).await?;
        if !from.contains(&current) {
            return Err(StoreError::Conflict {
                id: id.to_string(),
                state: current,
                message: format!("cannot go to {to}"),
            });
        }
        let mut sql = String::from("UPDATE documents SET state = ?, updated_at = ?");
        extra(&mut sql);
        sql.push_str(" WHERE id = ?");
        let mut q = query(&sql).bind(to.as_str()).bind(now_str());
        for b in &binds {
            q = q.bind(b);
        }
        q.bind(id.as_str()).execute(&mut *tx).await?;
        insert_event(&mut tx, Some(id.as_str()), actor, kind, &detail).await?;
        tx.commit().await?;
        Ok(())
    }
}

const QUARANTINE_COLUMNS: &str = "id, document_id, source, original_name, reason, detail, path, at";

fn quarantine_from_row(r: &sqlx::any::AnyRow) -> Result<QuarantineEntry> {
    Ok(QuarantineEntry {
        id: r.try_get("id")?,
        document_id: r.try_get("document_id")?,
        source: r.try_get("source")?,
        original_name: r.try_get("original_name")?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        path: r.try_get("path")?,
        at: r.try_get("at")?,
    })
}

/// [`Store::assign`] inside a transaction (also the overturning of a sample).
async fn assign_in(
    tx: &mut Tx<'_>,
    id: &DocumentId,
    mailbox: &MailboxId,
    actor: &str,
    origin: &str,
) -> Result<()> {
    let row = doc_columns(tx, id, "state, mailbox, decision, purged_at").await?;
    let state = parse_state(&row.try_get::<String, _>("state")?)?;
    if row.try_get::<Option<String>, _>("purged_at")?.is_some() {
        return Err(StoreError::Conflict {
            id: id.to_string(),
            state,
            message: "Der Inhalt wurde gelöscht (Aufbewahrungsfrist oder Löschantrag); das \
                      Schriftstück kann nicht mehr weitergeleitet werden."
                .into(),
        });
    }
    if !matches!(
        state,
        DocState::Review | DocState::Delivered | DocState::DeadLetter | DocState::Queued
    ) {
        return Err(StoreError::Conflict {
            id: id.to_string(),
            state,
            message: "only documents in review, queued, delivered or dead letters can be assigned"
                .into(),
        });
    }
    let previous: Option<String> = row.try_get("mailbox")?;
    let mut decision: Option<Decision> = row
        .try_get::<Option<String>, _>("decision")?
        .map(|j| serde_json::from_str(&j))
        .transpose()?;
    if let Some(d) = decision.as_mut() {
        d.mailbox = Some(mailbox.clone());
        d.decided_by = DecidedBy::Person;
        d.needs_review = false;
        d.confidence = 1.0;
        // Another mailbox's clerk is not this one's: the delivery asks the new mailbox's
        // table (`Store::set_clerk`).
        if d.explanation
            .clerk
            .as_ref()
            .is_some_and(|c| &c.mailbox != mailbox)
        {
            d.explanation.clerk = None;
        }
    }
    let now = now_str();
    query("INSERT INTO corrections (document_id, from_mailbox, to_mailbox, actor, origin, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(&previous)
            .bind(mailbox.as_str())
            .bind(actor)
            .bind(origin)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
    query(
            "UPDATE documents SET state = ?, mailbox = ?, confidence = 1.0, decided_by = ?, decision = ?, \
             attempts = 0, next_attempt_at = NULL, reason = NULL, failed_stage = NULL, version = version + 1, \
             updated_at = ? WHERE id = ?",
        )
        .bind(DocState::Queued.as_str())
        .bind(mailbox.as_str())
        .bind(decided_by_str(DecidedBy::Person))
        .bind(decision.map(|d| serde_json::to_string(&d)).transpose()?)
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    insert_event(
        tx,
        Some(id.as_str()),
        actor,
        "assigned",
        &serde_json::json!({"from": previous, "to": mailbox, "origin": origin}),
    )
    .await?;
    if origin != "sample" {
        samples::judge_by_correction(tx, id, Some(mailbox), actor, origin).await?;
    }
    Ok(())
}

/// The German note of a `delivered_superseded` event: where the target has the document, and
/// what happens next.
fn superseded_note(
    target: &str,
    reference: &str,
    filed_in: &MailboxId,
    now: DocState,
    now_mailbox: Option<&str>,
) -> String {
    let filed = format!(
        "Das Zielsystem „{target}“ hat das Dokument in Postfach {filed_in} abgelegt (Referenz {reference})"
    );
    match (now, now_mailbox) {
        (DocState::Review, _) => format!(
            "{filed}, während es an die Poststelle zurückgegeben wurde. Es liegt dort weiterhin, bis eine Person neu entscheidet."
        ),
        (_, Some(m)) if m != filed_in.as_str() => format!(
            "{filed}, während es Postfach {m} zugeordnet wurde. Es wird an Postfach {m} erneut zugestellt; ob es in Postfach {filed_in} bleibt, hängt vom Zielsystem ab (bitte dort prüfen)."
        ),
        _ => format!(
            "{filed}, während die Entscheidung geändert wurde. Es wird mit der neuen Entscheidung erneut zugestellt."
        ),
    }
}

/// `quarantined -> received` with its event `quarantine_retried`: attempts start again.
async fn requeue_quarantined(
    tx: &mut Tx<'_>,
    id: &str,
    actor: &str,
    detail: serde_json::Value,
) -> Result<()> {
    query(
        "UPDATE documents SET state = ?, reason = NULL, failed_stage = NULL, attempts = 0, \
         next_attempt_at = NULL, updated_at = ? WHERE id = ?",
    )
    .bind(DocState::Received.as_str())
    .bind(now_str())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    insert_event(tx, Some(id), actor, "quarantine_retried", &detail).await
}

/// The named columns of one document inside a transaction (`NotFound` when there is none).
async fn doc_columns(tx: &mut Tx<'_>, id: &DocumentId, columns: &str) -> Result<sqlx::any::AnyRow> {
    query(&format!("SELECT {columns} FROM documents WHERE id = ?"))
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))
}

async fn state_of(tx: &mut Tx<'_>, id: &DocumentId) -> Result<DocState> {
    let row = doc_columns(tx, id, "state").await?;
    parse_state(&row.try_get::<String, _>("state")?)
}

async fn insert_event(
    tx: &mut Tx<'_>,
    document: Option<&str>,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    let key = pseudonym_key(tx).await?;
    let detail = pseudonym::scrub(&key, detail);
    audit::append(
        tx,
        document,
        &now_str(),
        &pseudonym::scrub_text(&key, actor),
        kind,
        &detail.to_string(),
    )
    .await
}

/// This installation's pseudonym key (see [`pseudonym`]).
async fn pseudonym_key(tx: &mut Tx<'_>) -> Result<Vec<u8>> {
    let hex_key: String =
        query_scalar("SELECT value FROM store_secrets WHERE name = 'pseudonym_key'")
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the pseudonym key is missing".into()))?;
    hex::decode(hex_key).map_err(|e| StoreError::Corrupt(format!("pseudonym key: {e}")))
}

fn parse_state(s: &str) -> Result<DocState> {
    DocState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown state {s:?}")))
}

fn decided_by_str(d: DecidedBy) -> &'static str {
    match d {
        DecidedBy::Rule => "rule",
        DecidedBy::Model => "model",
        DecidedBy::Combined => "combined",
        DecidedBy::Person => "person",
        DecidedBy::Nothing => "nothing",
        DecidedBy::Recipient => "recipient",
        DecidedBy::Invoice => "invoice",
    }
}

fn parse_decided_by(s: &str) -> Option<DecidedBy> {
    [
        DecidedBy::Rule,
        DecidedBy::Model,
        DecidedBy::Combined,
        DecidedBy::Person,
        DecidedBy::Nothing,
        DecidedBy::Recipient,
        DecidedBy::Invoice,
    ]
    .into_iter()
    .find(|d| decided_by_str(*d) == s)
}

fn doc_from_row(r: &sqlx::any::AnyRow) -> Result<DocumentRow> {
    let decision: Option<String> = r.try_get("decision")?;
    Ok(DocumentRow {
        id: DocumentId::from_store(r.try_get("id")?),
        sha256: r.try_get("sha256")?,
        source: r.try_get("source")?,
        original_name: r.try_get("original_name")?,
        media_type: r.try_get("media_type")?,
        size_bytes: r.try_get("size_bytes")?,
        state: parse_state(&r.try_get::<String, _>("state")?)?,
        mailbox: r
            .try_get::<Option<String>, _>("mailbox")?
            .and_then(|m| MailboxId::parse(&m)),
        confidence: r.try_get("confidence")?,
        decided_by: r
            .try_get::<Option<String>, _>("decided_by")?
            .and_then(|d| parse_decided_by(&d)),
        decision: decision.map(|d| serde_json::from_str(&d)).transpose()?,
        reason: r.try_get("reason")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        delivery_ref: r.try_get("delivery_ref")?,
        failed_stage: r
            .try_get::<Option<String>, _>("failed_stage")?
            .map(|s| parse_state(&s))
            .transpose()?,
        created_at: r.try_get("created_at")?,
        arrived_at: r.try_get("arrived_at")?,
        updated_at: r.try_get("updated_at")?,
        purged_at: r.try_get("purged_at")?,
        version: r.try_get("version")?,
        batch_id: r.try_get("batch_id")?,
        batch_pages: r.try_get("batch_pages")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (db::TestDb, Store) {
        db::TestDb::store().await
    }

    fn new_doc(sha: &str) -> NewDocument {
        NewDocument {
            sha256: sha.into(),
            source: "test".into(),
            original_name: "a.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: 3,
            arrived_at: None,
        }
    }

    #[tokio::test]
    async fn a_letter_that_arrived_last_is_the_newest_even_if_committed_earlier() {
        let (_d, s) = store().await;
        let insert = |sha: &'static str, arrived: Option<chrono::DateTime<Utc>>| {
            let s = s.clone();
            async move {
                let mut doc = new_doc(sha);
                doc.arrived_at = arrived;
                match s.insert_received(&doc, "t").await.expect("insert") {
                    Inserted::New(id) => id,
                    Inserted::Duplicate(_) | Inserted::Retried(_) => panic!("new"),
                }
            }
        };
        // A stack that waited in the hot folder for an hour is committed after the letter
        // that arrived just now: the letter is still the newest arrival.
        let letter = insert("aa", None).await;
        let stack = insert("bb", Some(Utc::now() - chrono::Duration::hours(1))).await;
        let newest = s
            .newest_in_state(DocState::Received, 10)
            .await
            .expect("newest");
        assert_eq!(newest, vec![letter.clone(), stack.clone()]);
        let row = s.get(&stack).await.expect("row");
        assert!(row.arrived_at < row.created_at, "{row:?}");
        assert_eq!(
            s.get(&letter).await.expect("row").arrived_at,
            s.get(&letter).await.expect("row").created_at
        );
    }

    #[tokio::test]
    async fn events_carry_pseudonyms_and_old_events_are_pseudonymised_once_at_upgrade() {
        // An upgrade of a SQLite database from before (a PostgreSQL database starts with the
        // current schema).
        let db = db::TestDb::sqlite();
        let url = db.url.clone();
        let s = Store::open(&url).await.expect("open");
        let mut doc = new_doc("ab");
        doc.original_name = "Antrag Ewa Nowak.pdf".into();
        let Inserted::New(id) = s.insert_received(&doc, "t").await.expect("insert") else {
            panic!("new")
        };
        let detail = s.events(&id).await.expect("events")[0].detail.to_string();
        assert!(!detail.contains("Nowak"), "{detail}");
        assert!(detail.contains("\"original_name\":\"p:"), "{detail}");
        // A database from before: an event with personal data, no marker.
        query(
            "INSERT INTO events (document_id, at, actor, kind, detail) VALUES (?, 'x', 'imap:ewa@example.org', 'mail', ?)",
        )
        .bind(id.as_str())
        .bind(r#"{"to":"ewa@example.org","subject":"Mein Antrag","from":"63"}"#)
        .execute(&s.pool)
        .await
        .expect("old event");
        query("DELETE FROM store_secrets WHERE name = 'events_pseudonymised'")
            .execute(&s.pool)
            .await
            .expect("unmark");
        drop(s);
        let s = Store::open(&url).await.expect("reopen");
        let events = s.events(&id).await.expect("events");
        let old = events.last().expect("old event").detail.to_string();
        assert!(
            !old.contains("ewa@") && !old.contains("Mein Antrag"),
            "{old}"
        );
        assert!(old.contains("\"from\":\"63\""), "{old}");
        // Still append-only after the one-time rewrite.
        assert!(
            query("UPDATE events SET detail = '{}'")
                .execute(&s.pool)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_purge_keeps_the_routing_and_refuses_a_document_in_flight() {
        use super::retention::PurgeCause;
        let (_d, s) = store().await;
        let Inserted::New(id) = s
            .insert_received(&new_doc("cd"), "t")
            .await
            .expect("insert")
        else {
            panic!("new")
        };
        // Received: in flight, neither retention nor erasure touch it.
        for cause in [PurgeCause::Retention, PurgeCause::Erasure] {
            assert!(matches!(
                s.purge_document(&id, cause, "t").await,
                Err(StoreError::Conflict { .. })
            ));
        }
        s.quarantine_document(&id, "kaputt", "detail", None)
            .await
            .expect("quarantine");
        assert!(
            s.purge_document(&id, PurgeCause::Retention, "t")
                .await
                .expect("purge")
        );
        assert!(
            !s.purge_document(&id, PurgeCause::Retention, "t")
                .await
                .expect("again")
        );
        let row = s.get(&id).await.expect("row");
        assert!(row.purged_at.is_some());
        assert_eq!(row.original_name, retention::PURGED_NAME);
        assert_eq!(row.state, DocState::Quarantined);
        assert_eq!(
            s.blob_deletions().await.expect("list"),
            vec!["cd".to_string()]
        );
        assert!(!s.blob_in_use("cd").await.expect("in use"));
        // The same bytes again are a new document, not a duplicate of the purged one.
        assert!(matches!(
            s.insert_received(&new_doc("cd"), "t").await.expect("again"),
            Inserted::New(_)
        ));
        assert!(s.blob_in_use("cd").await.expect("in use"));
    }

    #[tokio::test]
    async fn same_bytes_twice_is_a_duplicate() {
        let (_d, s) = store().await;
        let Inserted::New(id) = s
            .insert_received(&new_doc("aa"), "t")
            .await
            .expect("insert")
        else {
            panic!("first insert must be new")
        };
        assert_eq!(
            s.insert_received(&new_doc("aa"), "t").await.expect("again"),
            Inserted::Duplicate(id.clone())
        );
        let kinds: Vec<String> = s
            .events(&id)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["received", "duplicate_received"]);
    }

    #[tokio::test]
    async fn events_are_append_only() {
        let (_d, s) = store().await;
        s.insert_received(&new_doc("bb"), "t")
            .await
            .expect("insert");
        let err = query("DELETE FROM events").execute(&s.pool).await;
        assert!(err.is_err(), "deleting audit events must fail");
        let err = query("UPDATE events SET actor = 'x'")
            .execute(&s.pool)
            .await;
        assert!(err.is_err(), "rewriting audit events must fail");
    }

    #[tokio::test]
    async fn transitions_are_guarded() {
        let (_d, s) = store().await;
        let Inserted::New(id) = s
            .insert_received(&new_doc("cc"), "t")
            .await
            .expect("insert")
        else {
            panic!("new")
        };
        // Not queued yet: delivery confirmation must be refused.
        assert!(matches!(
            s.mark_delivered(&id, "fs", "x", &MailboxId::parse("63").expect("id"), 0)
                .await,
            Err(StoreError::Conflict { .. })
        ));
        s.set_extracted(&id, "text", "{}", serde_json::json!({}))
            .await
            .expect("extracted");
        assert_eq!(s.get(&id).await.expect("get").state, DocState::Extracted);
    }
}
