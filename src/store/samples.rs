//! SQL of the Stichprobe: sampled documents and their verdicts, and the review thresholds that
//! the measured precision raised.

use super::db::{Tx, query};
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

fn sample_from_row(r: &sqlx::any::AnyRow) -> Result<SampleRow> {
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
    tx: &mut Tx<'_>,
    id: &DocumentId,
    mailbox: &MailboxId,
    confidence: f64,
    decided_by: &str,
) -> Result<()> {
    // A document decided again (a re-drive of its classification) keeps its first sample.
    query(
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

/// A correction of a sampled document judges its open sample: a department that forwards it
/// (or the Poststelle that assigns it anew) says the machine's mailbox was wrong, and so does a
/// department that sends it back (`correct` is then unknown until the Poststelle assigns it).
/// Without this, the measured precision would count only what the Poststelle happened to look
/// at. Assigning it to the mailbox the machine chose is no verdict. Called inside the
/// correction's transaction; returns the sample's mailbox when it was judged.
pub(super) async fn judge_by_correction(
    tx: &mut Tx<'_>,
    id: &DocumentId,
    correct: Option<&MailboxId>,
    actor: &str,
    origin: &str,
) -> Result<Option<MailboxId>> {
    let Some(row) = query("SELECT mailbox FROM samples WHERE document_id = ? AND verdict IS NULL")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let machine: String = row.try_get("mailbox")?;
    if correct.is_some_and(|c| c.as_str() == machine) {
        return Ok(None);
    }
    query(
        "UPDATE samples SET verdict = ?, correct_mailbox = ?, actor = ?, judged_at = ? \
         WHERE document_id = ? AND verdict IS NULL",
    )
    .bind(Verdict::Overturned.as_str())
    .bind(correct.map(|c| c.as_str()))
    .bind(actor)
    .bind(now_str())
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    insert_event(
        tx,
        Some(id.as_str()),
        actor,
        "sample_judged",
        &serde_json::json!({"verdict": Verdict::Overturned, "machine": machine, "correct": correct, "by": origin}),
    )
    .await?;
    MailboxId::parse(&machine)
        .map(Some)
        .ok_or_else(|| corrupt("mailbox", &machine))
}

impl Store {
    /// Open samples, oldest first.
    pub async fn open_samples(&self, limit: i64) -> Result<Vec<SampleRow>> {
        let rows = query(&format!(
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
        let row = query(&format!(
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
        let mut tx = self.begin_write().await?;
        let row = query("SELECT mailbox, verdict FROM samples WHERE document_id = ?")
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
        query(
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
        let rows = query(&format!(
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
        let row = query("SELECT COUNT(*) AS n FROM samples WHERE verdict IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The raised thresholds in force: the newest raise per mailbox.
    pub async fn threshold_raises(&self) -> Result<BTreeMap<MailboxId, ThresholdRaise>> {
        let rows = query(
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
        let mut tx = self.begin_write().await?;
        let last = query("SELECT MAX(judged) AS j FROM threshold_raises WHERE mailbox = ?")
            .bind(raise.mailbox.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if last
            .try_get::<Option<i64>, _>("j")?
            .is_some_and(|j| j >= raise.judged)
        {
            return Ok(false);
        }
        query(
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

#[cfg(test)]
mod tests {
    use super::Verdict;
    use crate::domain::{DecidedBy, Decision, DocumentId, MailboxId};
    use crate::store::{Inserted, NewDocument, Store};

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("valid id")
    }

    /// A document routed straight through to `mailbox` and sampled.
    async fn sampled(s: &Store, sha: &str, mailbox: &str) -> DocumentId {
        let Inserted::New(doc) = s
            .insert_received(
                &NewDocument {
                    sha256: sha.into(),
                    source: "t".into(),
                    original_name: "a.txt".into(),
                    media_type: "text/plain".into(),
                    size_bytes: 1,
                    arrived_at: None,
                },
                "t",
            )
            .await
            .expect("insert")
        else {
            panic!("new")
        };
        s.set_extracted(&doc, "x", "{}", serde_json::json!({}))
            .await
            .expect("extracted");
        let d = Decision {
            mailbox: Some(id(mailbox)),
            confidence: 0.97,
            decided_by: DecidedBy::Model,
            needs_review: false,
            explanation: Default::default(),
        };
        s.set_decision_sampled(&doc, &d, true)
            .await
            .expect("decision");
        let version = s.get(&doc).await.expect("doc").version;
        s.mark_delivered(&doc, "dms", "r", &id(mailbox), version)
            .await
            .expect("delivered");
        doc
    }

    #[tokio::test]
    async fn a_forward_or_a_send_back_judges_the_open_sample_and_a_person_cannot_judge_it_again() {
        let (_db, s) = crate::store::db::TestDb::store().await;
        let forwarded = sampled(&s, "a", "63").await;
        let returned = sampled(&s, "b", "63").await;
        let kept = sampled(&s, "c", "63").await;
        assert_eq!(s.open_samples(10).await.expect("open").len(), 3);

        // The department forwards one to 61: the machine was wrong, and 61 is right.
        s.assign(&forwarded, &id("61"), "b.bau", "forward")
            .await
            .expect("forward");
        let f = s.sample(&forwarded).await.expect("read").expect("sample");
        assert_eq!(f.verdict, Some(Verdict::Overturned));
        assert_eq!(f.correct_mailbox, Some(id("61")));
        assert_eq!(f.actor.as_deref(), Some("b.bau"));

        // It sends one back: wrong, the right mailbox not yet known.
        s.send_back(&returned, &id("63"), "nicht unser Vorgang", "b.bau")
            .await
            .expect("send back");
        let r = s.sample(&returned).await.expect("read").expect("sample");
        assert_eq!(r.verdict, Some(Verdict::Overturned));
        assert_eq!(r.correct_mailbox, None);
        // The Poststelle's assignment afterwards is a correction, not a second verdict.
        s.assign(&returned, &id("66"), "p.post", "review")
            .await
            .expect("assign");
        let r = s.sample(&returned).await.expect("read").expect("sample");
        assert_eq!(r.correct_mailbox, None);
        assert_eq!(r.actor.as_deref(), Some("b.bau"));

        // Assigned again to the machine's own mailbox: no verdict, still open.
        s.assign(&kept, &id("63"), "p.post", "correction")
            .await
            .expect("assign");
        let open = s.open_samples(10).await.expect("open");
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].document_id, kept);

        // A judged sample is not judged again by a person.
        assert!(
            s.judge_sample(&forwarded, Verdict::Confirmed, None, "p.post")
                .await
                .is_err()
        );
        let events = s.events(&forwarded).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "sample_judged" && e.detail["by"] == "forward"),
            "{events:?}"
        );
    }
}
