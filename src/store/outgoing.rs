//! SQL of outgoing e-mail: the mail queue, acknowledgement decisions and digest runs.

use super::db::{Tx, query};
use super::{Result, Store, StoreError, fmt_time, insert_event, now_str};
use crate::domain::{DocState, DocumentId, MailboxId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// A mail ready to be stored in the queue (fully formatted).
#[derive(Debug, Clone)]
pub struct NewMail {
    /// `acknowledgement` or `digest`.
    pub kind: String,
    /// One mail per key.
    pub dedup_key: String,
    /// The document the mail is about, if any.
    pub document_id: Option<DocumentId>,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Subject (for people looking at the queue).
    pub subject: String,
    /// Message-ID, without angle brackets.
    pub message_id: String,
    /// The RFC 5322 message.
    pub message: Vec<u8>,
}

/// A stored outgoing mail.
#[derive(Debug, Clone, Serialize)]
pub struct MailRow {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Dedup key.
    pub dedup_key: String,
    /// Document, if any.
    pub document_id: Option<String>,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Message-ID.
    pub message_id: String,
    /// The message.
    #[serde(skip)]
    pub message: Vec<u8>,
    /// `queued`, `sent` or `dead`.
    pub state: String,
    /// Send attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// Last error (German when shown to people).
    pub last_error: Option<String>,
    /// When stored.
    pub created_at: String,
    /// When sent.
    pub sent_at: Option<String>,
}

/// Result of [`Store::record_acknowledgement`].
#[derive(Debug, Clone, PartialEq)]
pub enum AckRecord {
    /// A mail was stored in the queue.
    Queued(String),
    /// Decided earlier (the same message reported again): nothing done.
    AlreadyHandled,
    /// Not sent, with the German reason.
    Suppressed(String),
    /// Written once the e-mail's mailbox is decided (per-mailbox templates).
    Pending,
}

/// What an acknowledgement decision stores.
#[derive(Debug, Clone)]
pub enum AckMail {
    /// The mail, written now.
    Now(NewMail),
    /// The e-mail's facts (JSON), for the mail written once the routing decided its mailbox.
    Later(String),
}

/// An acknowledgement waiting for its document's decision, now decided.
#[derive(Debug, Clone)]
pub struct PendingAck {
    /// The acknowledgement's key.
    pub key: String,
    /// The e-mail's facts (JSON of an [`crate::domain::InboundMail`]).
    pub mail: String,
    /// The document's state.
    pub state: String,
    /// Its mailbox (decided or proposed).
    pub mailbox: Option<String>,
    /// Its commit: the time of receipt.
    pub received_at: String,
}

/// A per-sender limit: at most `max` queued acknowledgements since `since`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Window start.
    pub since: DateTime<Utc>,
    /// Most acknowledgements in the window.
    pub max: u32,
    /// German reason when the limit is reached.
    pub reason: String,
}

/// One line of a digest.
#[derive(Debug, Clone, Serialize)]
pub struct DigestItem {
    /// The document.
    pub document_id: DocumentId,
    /// When it was delivered (department digest) or received (review digest).
    pub at: String,
    /// File name it arrived with.
    pub original_name: String,
    /// Subject line found in it.
    pub subject: Option<String>,
    /// Confidence of the decision.
    pub confidence: Option<f64>,
    /// Proposed mailbox.
    pub mailbox: Option<MailboxId>,
    /// Why it waits for a person (review digest).
    pub review_reason: Option<String>,
}

/// A digest run to record.
#[derive(Debug, Clone)]
pub struct DigestRun {
    /// Unique key (`<mailbox>:<period>`).
    pub run_key: String,
    /// Mailbox.
    pub mailbox: String,
    /// Period (local date, or `manual-...`).
    pub period: String,
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end.
    pub until: DateTime<Utc>,
    /// Number of items.
    pub items: i64,
}

const MAIL_COLUMNS: &str = "id, kind, dedup_key, document_id, envelope_from, recipients, subject, message_id, \
     message, state, attempts, next_attempt_at, last_error, created_at, sent_at";

impl Store {
    /// Decides an acknowledgement once per key: stores `mail` (unless a rate limit is reached) or
    /// the suppression `reason`, with an audit event, in one transaction.
    pub async fn record_acknowledgement(
        &self,
        key: &str,
        document: &DocumentId,
        sender: Option<&str>,
        mail: std::result::Result<AckMail, String>,
        limits: &[RateLimit],
    ) -> Result<AckRecord> {
        let mut tx = self.begin_write().await?;
        if query("SELECT 1 FROM acknowledgements WHERE dedup_key = ?")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Ok(AckRecord::AlreadyHandled);
        }
        let mut mail = mail;
        if let (Ok(_), Some(sender)) = (&mail, sender) {
            for l in limits {
                let n: i64 = query(
                    "SELECT COUNT(*) AS n FROM acknowledgements WHERE sender = ? AND decision IN ('queued', 'pending') AND at > ?",
                )
                .bind(sender)
                .bind(fmt_time(l.since))
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if n >= i64::from(l.max) {
                    mail = Err(l.reason.clone());
                    break;
                }
            }
        }
        let now = now_str();
        let out = match mail {
            Ok(AckMail::Later(json)) => {
                query("INSERT INTO acknowledgements (dedup_key, document_id, sender, decision, reason, mail_id, at, pending_mail) VALUES (?, ?, ?, 'pending', NULL, NULL, ?, ?)")
                    .bind(key).bind(document.as_str()).bind(sender).bind(&now).bind(json)
                    .execute(&mut *tx).await?;
                insert_event(
                    &mut tx,
                    Some(document.as_str()),
                    "outgoing",
                    "acknowledgement_pending",
                    &serde_json::json!({"to": sender}),
                )
                .await?;
                AckRecord::Pending
            }
            Ok(AckMail::Now(m)) => {
                let id = insert_mail(&mut tx, &m, &now).await?;
                query("INSERT INTO acknowledgements (dedup_key, document_id, sender, decision, reason, mail_id, at) VALUES (?, ?, ?, 'queued', NULL, ?, ?)")
                    .bind(key).bind(document.as_str()).bind(sender).bind(&id).bind(&now)
                    .execute(&mut *tx).await?;
                insert_event(
                    &mut tx,
                    Some(document.as_str()),
                    "outgoing",
                    "acknowledgement_queued",
                    &serde_json::json!({"mail": id, "to": sender, "message_id": m.message_id}),
                )
                .await?;
                AckRecord::Queued(id)
            }
            Err(reason) => {
                query("INSERT INTO acknowledgements (dedup_key, document_id, sender, decision, reason, mail_id, at) VALUES (?, ?, ?, 'suppressed', ?, NULL, ?)")
                    .bind(key).bind(document.as_str()).bind(sender).bind(&reason).bind(&now)
                    .execute(&mut *tx).await?;
                insert_event(
                    &mut tx,
                    Some(document.as_str()),
                    "outgoing",
                    "acknowledgement_suppressed",
                    &serde_json::json!({"to": sender, "reason": reason}),
                )
                .await?;
                AckRecord::Suppressed(reason)
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Acknowledgements waiting for the decision of their document, whose document is now
    /// decided (or will not be: quarantined, a dead letter), oldest first.
    pub async fn decided_pending_acknowledgements(&self, limit: i64) -> Result<Vec<PendingAck>> {
        let rows = query(
            "SELECT a.dedup_key, a.pending_mail, d.state, d.mailbox, d.created_at \
             FROM acknowledgements a JOIN documents d ON d.id = a.document_id \
             WHERE a.decision = 'pending' AND a.pending_mail IS NOT NULL \
             AND d.state NOT IN ('received', 'extracted') ORDER BY a.at LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingAck {
                    key: r.try_get("dedup_key")?,
                    mail: r.try_get("pending_mail")?,
                    state: r.try_get("state")?,
                    mailbox: r.try_get("mailbox")?,
                    received_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Writes a pending acknowledgement: the mail queued (event `acknowledgement_queued` with
    /// the template used) or, when it cannot be written, suppressed with the reason. One
    /// transaction; an acknowledgement no longer pending is left alone.
    pub async fn queue_pending_acknowledgement(
        &self,
        key: &str,
        mail: std::result::Result<NewMail, String>,
        template: &str,
    ) -> Result<AckRecord> {
        let mut tx = self.begin_write().await?;
        let Some(row) = query(
            "SELECT document_id, sender FROM acknowledgements WHERE dedup_key = ? AND decision = 'pending'",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(AckRecord::AlreadyHandled);
        };
        let document: String = row.try_get("document_id")?;
        let sender: Option<String> = row.try_get("sender")?;
        let now = now_str();
        let out = match mail {
            Ok(m) => {
                let id = insert_mail(&mut tx, &m, &now).await?;
                query("UPDATE acknowledgements SET decision = 'queued', mail_id = ?, pending_mail = NULL WHERE dedup_key = ?")
                    .bind(&id).bind(key)
                    .execute(&mut *tx).await?;
                insert_event(
                    &mut tx,
                    Some(&document),
                    "outgoing",
                    "acknowledgement_queued",
                    &serde_json::json!({"mail": id, "to": sender, "message_id": m.message_id, "template": template}),
                )
                .await?;
                AckRecord::Queued(id)
            }
            Err(reason) => {
                query("UPDATE acknowledgements SET decision = 'suppressed', reason = ?, pending_mail = NULL WHERE dedup_key = ?")
                    .bind(&reason).bind(key)
                    .execute(&mut *tx).await?;
                insert_event(
                    &mut tx,
                    Some(&document),
                    "outgoing",
                    "acknowledgement_suppressed",
                    &serde_json::json!({"to": sender, "reason": reason}),
                )
                .await?;
                AckRecord::Suppressed(reason)
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Queued mails whose next attempt is due, oldest first.
    pub async fn outgoing_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<MailRow>> {
        let rows = query(&format!(
            "SELECT {MAIL_COLUMNS} FROM outgoing_mail WHERE state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
             ORDER BY created_at, id LIMIT ?"
        ))
        .bind(fmt_time(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(mail_from_row).collect()
    }

    /// The earliest next attempt of a queued mail, if any.
    pub async fn outgoing_next_due(&self) -> Result<Option<String>> {
        let row = query(
            "SELECT MIN(COALESCE(next_attempt_at, created_at)) AS t FROM outgoing_mail WHERE state = 'queued'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("t")?)
    }

    /// Outgoing mails, newest first.
    pub async fn outgoing_list(&self, limit: i64) -> Result<Vec<MailRow>> {
        let rows = query(&format!(
            "SELECT {MAIL_COLUMNS} FROM outgoing_mail ORDER BY created_at DESC, id DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(mail_from_row).collect()
    }

    /// The server accepted the mail: `queued -> sent`.
    pub async fn outgoing_sent(&self, mail: &MailRow, response: &str) -> Result<()> {
        self.outgoing_update(
            mail,
            "sent",
            mail.attempts + 1,
            None,
            None,
            "mail_sent",
            serde_json::json!({"mail": mail.id, "kind": mail.kind, "to": mail.recipients, "response": response}),
        )
        .await
    }

    /// A send attempt failed; try again at `next`.
    pub async fn outgoing_retry(
        &self,
        mail: &MailRow,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.outgoing_update(
            mail,
            "queued",
            mail.attempts + 1,
            Some(fmt_time(next)),
            Some(error),
            "mail_send_failed",
            serde_json::json!({"mail": mail.id, "attempt": mail.attempts + 1, "error": error, "next_attempt_at": fmt_time(next)}),
        )
        .await
    }

    /// Sending gave up: `queued -> dead` with the reason.
    pub async fn outgoing_dead(&self, mail: &MailRow, reason: &str) -> Result<()> {
        self.outgoing_update(
            mail,
            "dead",
            mail.attempts + 1,
            None,
            Some(reason),
            "mail_dead",
            serde_json::json!({"mail": mail.id, "attempts": mail.attempts + 1, "reason": reason}),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn outgoing_update(
        &self,
        mail: &MailRow,
        state: &str,
        attempts: i64,
        next: Option<String>,
        error: Option<&str>,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_str();
        let done = query(
            "UPDATE outgoing_mail SET state = ?, attempts = ?, next_attempt_at = ?, last_error = COALESCE(?, last_error), \
             updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ? AND state = 'queued'",
        )
        .bind(state)
        .bind(attempts)
        .bind(next)
        .bind(error)
        .bind(&now)
        .bind(state)
        .bind(&now)
        .bind(&mail.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "outgoing mail {} is no longer queued",
                mail.id
            )));
        }
        insert_event(
            &mut tx,
            mail.document_id.as_deref(),
            "outgoing",
            kind,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a digest run with this key was recorded.
    pub async fn digest_run_exists(&self, run_key: &str) -> Result<bool> {
        Ok(query("SELECT 1 FROM digest_runs WHERE run_key = ?")
            .bind(run_key)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// End of the last digest window of a mailbox.
    pub async fn last_digest_until(&self, mailbox: &str) -> Result<Option<DateTime<Utc>>> {
        let row = query("SELECT MAX(until_at) AS t FROM digest_runs WHERE mailbox = ?")
            .bind(mailbox)
            .fetch_one(&self.pool)
            .await?;
        let t: Option<String> = row.try_get("t")?;
        t.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| StoreError::Corrupt(format!("digest time {t:?}: {e}")))
        })
        .transpose()
    }

    /// Records a digest run and its mail (if any) in one transaction. False when the run was
    /// recorded before (nothing stored then).
    pub async fn record_digest_run(&self, run: &DigestRun, mail: Option<&NewMail>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        if query("SELECT 1 FROM digest_runs WHERE run_key = ?")
            .bind(&run.run_key)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let now = now_str();
        let mail_id = match mail {
            Some(m) => Some(insert_mail(&mut tx, m, &now).await?),
            None => None,
        };
        query("INSERT INTO digest_runs (run_key, mailbox, period, since_at, until_at, items, mail_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&run.run_key)
            .bind(&run.mailbox)
            .bind(&run.period)
            .bind(fmt_time(run.since))
            .bind(fmt_time(run.until))
            .bind(run.items)
            .bind(&mail_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            None,
            "outgoing",
            "digest_recorded",
            &serde_json::json!({"run": run.run_key, "mailbox": run.mailbox, "items": run.items,
                "since": fmt_time(run.since), "until": fmt_time(run.until), "mail": mail_id}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Documents delivered to `mailbox` in `(since, until]`, in delivery order.
    pub async fn delivered_between(
        &self,
        mailbox: &MailboxId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<DigestItem>> {
        let rows = query(
            "SELECT d.id, d.original_name, d.confidence, d.decision, d.mailbox, e.at FROM events e \
             JOIN documents d ON d.id = e.document_id \
             WHERE e.kind = 'delivered' AND d.mailbox = ? AND e.at > ? AND e.at <= ? ORDER BY e.at, e.id",
        )
        .bind(mailbox.as_str())
        .bind(fmt_time(since))
        .bind(fmt_time(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Documents waiting in review, oldest first.
    pub async fn waiting_in_review(&self, limit: i64) -> Result<Vec<DigestItem>> {
        let rows = query(
            "SELECT id, original_name, confidence, decision, mailbox, created_at AS at FROM documents \
             WHERE state = ? ORDER BY created_at, id LIMIT ?",
        )
        .bind(DocState::Review.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }
}

pub(super) async fn insert_mail(tx: &mut Tx<'_>, m: &NewMail, now: &str) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    query(
        "INSERT INTO outgoing_mail (id, kind, dedup_key, document_id, envelope_from, recipients, subject, message_id, \
         message, state, attempts, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, NULL, ?, ?)",
    )
    .bind(&id)
    .bind(&m.kind)
    .bind(&m.dedup_key)
    .bind(m.document_id.as_ref().map(|d| d.as_str().to_string()))
    .bind(&m.envelope_from)
    .bind(serde_json::to_string(&m.recipients)?)
    .bind(&m.subject)
    .bind(&m.message_id)
    .bind(&m.message)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    insert_event(
        tx,
        m.document_id.as_ref().map(|d| d.as_str()),
        "outgoing",
        "mail_queued",
        &serde_json::json!({"mail": id, "kind": m.kind, "to": m.recipients, "subject": m.subject}),
    )
    .await?;
    Ok(id)
}

fn mail_from_row(r: &sqlx::any::AnyRow) -> Result<MailRow> {
    let recipients: String = r.try_get("recipients")?;
    Ok(MailRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        dedup_key: r.try_get("dedup_key")?,
        document_id: r.try_get("document_id")?,
        envelope_from: r.try_get("envelope_from")?,
        recipients: serde_json::from_str(&recipients)?,
        subject: r.try_get("subject")?,
        message_id: r.try_get("message_id")?,
        message: r.try_get("message")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}

fn item_from_row(r: &sqlx::any::AnyRow) -> Result<DigestItem> {
    let decision: Option<String> = r.try_get("decision")?;
    let decision: Option<crate::domain::Decision> =
        decision.map(|d| serde_json::from_str(&d)).transpose()?;
    let (subject, review_reason) = match &decision {
        Some(d) => (
            d.explanation.subject.clone(),
            d.explanation.review_reason.clone(),
        ),
        None => (None, None),
    };
    Ok(DigestItem {
        document_id: DocumentId::from_store(r.try_get("id")?),
        at: r.try_get("at")?,
        original_name: r.try_get("original_name")?,
        subject,
        confidence: r.try_get("confidence")?,
        mailbox: r
            .try_get::<Option<String>, _>("mailbox")?
            .and_then(|m| MailboxId::parse(&m)),
        review_reason,
    })
}
