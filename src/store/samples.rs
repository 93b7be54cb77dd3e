//! SQL of the Stichprobe: sampled documents and their verdicts, and the review thresholds that
//! the measured precision raised.

use super::{Result, Store, StoreError, assign_in, doc_columns, insert_event, now_str};
use crate::domain::{DocumentId, MailboxId};
use crate::store::outgoing::{NewMail, insert_mail};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// The conflict message of a verdict on a sample judged before.
pub const JUDGED_ALREADY: &str = "the sample is judged already";

/// The conflict message of overturning to the machine's own mailbox.
pub const SAME_MAILBOX: &str = "overturning needs another mailbox";

/// What a person said about a sampled document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The machine's mailbox was right.
    Confirmed,
    /// Another mailbox was right (the document was assigned there).
    Overturned,
}

impl Verdict {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Overturned => "overturned",
        }
    }

    fn parse(s: &str) -> Option<Verdict> {
        match s {
            "confirmed" => Some(Verdict::Confirmed),
            "overturned" => Some(Verdict::Overturned),
            _ => None,
        }
    }
}

/// A sampled document.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRow {
    /// The document (also the sample's id).
    pub document_id: DocumentId,
    /// The mailbox the machine routed it to.
    pub mailbox: MailboxId,
    /// The machine's confidence.
    pub confidence: f64,
    /// What decided (`rule`, `model`, `combined`, `recipient`, `invoice`).
    pub decided_by: String,
    /// When it entered the sample.
    pub sampled_at: String,
    /// The verdict, `None` while open.
    pub verdict: Option<Verdict>,
    /// The right mailbox once judged.
    pub correct_mailbox: Option<MailboxId>,
    /// Who judged.
    pub actor: Option<String>,
    /// When.
    pub judged_at: Option<String>,
    /// The file name the document arrived with.
    pub original_name: String,
    /// Its state now.
    pub state: String,
    /// The subject line found in it, if any.
    pub subject: Option<String>,
}

/// A review threshold raised by the Stichprobe (the newest per mailbox is in force).
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdRaise {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The threshold now in force for it.
    pub threshold: f64,
    /// The threshold before.
    pub previous: f64,
    /// Judged samples of the mailbox it rests on.
    pub judged: i64,
    /// Of which confirmed.
    pub confirmed: i64,
    /// Why, in German.
    pub reason: String,
    /// When.
    pub at: String,
}

const SAMPLE_COLUMNS: &str = "s.document_id, s.mailbox, s.confidence, s.decided_by, s.sampled_at, \
     s.verdict, s.correct_mailbox, s.actor, s.judged_at, d.original_name, d.state, d.decision";

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {v:?}"))
}

fn sample_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<SampleRow> {
    let mailbox: String = r.try_get("mailbox")?;
    let verdict: Option<String> = r.try_get("verdict")?;
    let correct: Option<String> = r.try_get("correct_mailbox")?;
    let decision: Option<String> = r.try_get("decision")?;
    let subject = decision
        .and_then(|j| serde_json::from_str::<crate::domain::Decision>(&j).ok())
        .and_then(|d| d.explanation.subject);
    Ok(SampleRow {
        document_id: DocumentId::from_store(r.try_get("document_id")?),
        mailbox: MailboxId::parse(&mailbox).ok_or_else(|| corrupt("mailbox", &mailbox))?,
        confidence: r.try_get("confidence")?,
        decided_by: r.try_get("decided_by")?,
        sampled_at: r.try_get("sampled_at")?,
        verdict: verdict
            .as_deref()
            .map(|v| Verdict::parse(v).ok_or_else(|| corrupt("verdict", v)))
            .transpose()?,
        correct_mailbox: correct
            .as_deref()
            .map(|m| MailboxId::parse(m).ok_or_else(|| corrupt("mailbox", m)))
            .transpose()?,
        actor: r.try_get("actor")?,
        judged_at: r.try_get("judged_at")?,
        original_name: r.try_get("original_name")?,
        state: r.try_get("state")?,
        subject,
    })
}

/// Puts a document into the sample (inside the transaction that stores its decision).
pub(super) async fn insert_sample(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &DocumentId,
    mailbox: &MailboxId,
    confidence: f64,
    decided_by: &str,
) -> Result<()> {
    // A document decided again (a re-drive of its classification) keeps its first sample.
    sqlx::query(
        "INSERT INTO samples (document_id, mailbox, confidence, decided_by, sampled_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (document_id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(mailbox.as_str())
    .bind(confidence)
    .bind(decided_by)
    .bind(now_str())
    .execute(&mut **tx)
    .await?;
    insert_event(
        tx,
        Some(id.as_str()),
        "classifier",
        "sampled",
        &serde_json::json!({"mailbox": mailbox, "confidence": confidence}),
    )
    .await
}

impl Store {
    /// Open samples, oldest first.
    pub async fn open_samples(&self, limit: i64) -> Result<Vec<SampleRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples s JOIN documents d ON d.id = s.document_id \
             WHERE s.verdict IS NULL ORDER BY s.sampled_at, s.document_id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sample_from_row).collect()
    }

    /// One sample (open or judged), `None` when the document was not sampled.
    pub async fn sample(&self, id: &DocumentId) -> Result<Option<SampleRow>> {
        let row = sqlx::query(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples s JOIN documents d ON d.id = s.document_id \
             WHERE s.document_id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(sample_from_row).transpose()
    }

    /// Records a person's verdict on an open sample. Overturning assigns the document to
    /// `correct` in the same transaction ([`Store::assign`]: a correction the model learns
    /// from, and a re-delivery). A sample judged before is a conflict; so is overturning to
    /// the mailbox the machine chose (that is a confirmation).
    pub async fn judge_sample(
        &self,
        id: &DocumentId,
        verdict: Verdict,
        correct: Option<&MailboxId>,
        actor: &str,
    ) -> Result<SampleRow> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT mailbox, verdict FROM samples WHERE document_id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let machine: String = row.try_get("mailbox")?;
        let state = super::parse_state(
            &doc_columns(&mut tx, id, "state")
                .await?
                .try_get::<String, _>("state")?,
        )?;
        let conflict = |message: &str| StoreError::Conflict {
            id: id.to_string(),
            state,
            message: message.into(),
        };
        if row.try_get::<Option<String>, _>("verdict")?.is_some() {
            return Err(conflict(JUDGED_ALREADY));
        }
        let correct = match (verdict, correct) {
            (Verdict::Confirmed, _) => machine.clone(),
            (Verdict::Overturned, Some(m)) if m.as_str() != machine => m.as_str().to_string(),
            (Verdict::Overturned, _) => {
                return Err(conflict(SAME_MAILBOX));
            }
        };
        let now = now_str();
        sqlx::query(
            "UPDATE samples SET verdict = ?, correct_mailbox = ?, actor = ?, judged_at = ? \
             WHERE document_id = ?",
        )
        .bind(verdict.as_str())
        .bind(&correct)
        .bind(actor)
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            actor,
            "sample_judged",
            &serde_json::json!({"verdict": verdict, "machine": machine, "correct": correct}),
        )
        .await?;
        if verdict == Verdict::Overturned {
            let to = MailboxId::parse(&correct).ok_or_else(|| corrupt("mailbox", &correct))?;
            assign_in(&mut tx, id, &to, actor, "sample").await?;
        }
        tx.commit().await?;
        self.sample(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Every judged sample (of `mailbox`, or all), oldest verdict first.
    pub async fn judged_samples(&self, mailbox: Option<&MailboxId>) -> Result<Vec<SampleRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples s JOIN documents d ON d.id = s.document_id \
             WHERE s.verdict IS NOT NULL AND (? IS NULL OR s.mailbox = ?) \
             ORDER BY s.judged_at, s.document_id"
        ))
        .bind(mailbox.map(|m| m.as_str()))
        .bind(mailbox.map(|m| m.as_str()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sample_from_row).collect()
    }

    /// Number of open samples.
    pub async fn open_sample_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM samples WHERE verdict IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The raised thresholds in force: the newest raise per mailbox.
    pub async fn threshold_raises(&self) -> Result<BTreeMap<MailboxId, ThresholdRaise>> {
        let rows = sqlx::query(
            "SELECT mailbox, threshold, previous, judged, confirmed, reason, at FROM threshold_raises r \
             WHERE id = (SELECT MAX(id) FROM threshold_raises r2 WHERE r2.mailbox = r.mailbox) \
             ORDER BY mailbox",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let mailbox: String = r.try_get("mailbox")?;
            let mailbox = MailboxId::parse(&mailbox).ok_or_else(|| corrupt("mailbox", &mailbox))?;
            out.insert(
                mailbox.clone(),
                ThresholdRaise {
                    mailbox,
                    threshold: r.try_get("threshold")?,
                    previous: r.try_get("previous")?,
                    judged: r.try_get("judged")?,
                    confirmed: r.try_get("confirmed")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                },
            );
        }
        Ok(out)
    }

    /// Records a raised threshold with its audit event and (when outgoing mail is on) the
    /// admins' e-mail, in one transaction. False when a raise resting on at least as many
    /// judged samples is recorded already (at most one raise per mailbox per new evidence).
    pub async fn record_threshold_raise(
        &self,
        raise: &ThresholdRaise,
        mail: Option<&NewMail>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last = sqlx::query("SELECT MAX(judged) AS j FROM threshold_raises WHERE mailbox = ?")
            .bind(raise.mailbox.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if last
            .try_get::<Option<i64>, _>("j")?
            .is_some_and(|j| j >= raise.judged)
        {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO threshold_raises (mailbox, threshold, previous, judged, confirmed, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(raise.mailbox.as_str())
        .bind(raise.threshold)
        .bind(raise.previous)
        .bind(raise.judged)
        .bind(raise.confirmed)
        .bind(&raise.reason)
        .bind(&raise.at)
        .execute(&mut *tx)
        .await?;
        let now = now_str();
        let mail_id = match mail {
            Some(m) => Some(insert_mail(&mut tx, m, &now).await?),
            None => None,
        };
        insert_event(
            &mut tx,
            None,
            "stichprobe",
            "threshold_raised",
            &serde_json::json!({
                "mailbox": raise.mailbox, "threshold": raise.threshold, "previous": raise.previous,
                "judged": raise.judged, "confirmed": raise.confirmed, "reason": raise.reason,
                "mail": mail_id,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
