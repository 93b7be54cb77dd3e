//! Figures for the Übersicht (`/uebersicht`) and for `/metrics`: counts per day, channel,
//! mailbox and week, the review queue, and the time documents spend in each stage.
//!
//! Plain, portable SQL (SQLite now, PostgreSQL later): SELECT with GROUP BY, CASE, COALESCE and
//! `substr` for the day of an RFC 3339 time stamp. Time stamps are compared as text, which is
//! exact because every column holds UTC with milliseconds ([`super::now_str`]). Windows are given
//! by the caller as the earliest time that counts.

use super::db::query;
use super::{Result, Store, fmt_time};
use crate::domain::{DocState, DocumentId};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::BTreeMap;

/// Documents received on one day through one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// Day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// What the count is about: a source (`hot_folder`, `upload`, `imap:...`) or a mailbox id.
    pub key: String,
    /// How many.
    pub count: i64,
}

/// Decided documents of one day: how many, and how many without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Straight {
    /// Documents queued or delivered.
    pub decided: i64,
    /// Of those, decided by rules, model, recipient address or invoice routing, not a person.
    pub automatic: i64,
}

/// The review queue: its length and the item that has waited longest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewQueue {
    /// Documents waiting in review.
    pub length: i64,
    /// The oldest of them.
    pub oldest: Option<Waiting>,
}

/// A document waiting in the review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Its id.
    pub id: DocumentId,
    /// The name it arrived with.
    pub name: String,
    /// Arrival.
    pub since: String,
}

/// Seconds documents spent in each stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageDurations {
    /// From receipt (or a retry of the stage) to the first extraction.
    pub extract: Vec<f64>,
    /// From extraction (or a re-drive) to the first decision.
    pub classify: Vec<f64>,
    /// From the decision that queued it (machine, person or re-drive) to the first delivery.
    pub deliver: Vec<f64>,
}

/// Event kinds that start or end a stage (see [`stage_durations`]).
const STAGE_KINDS: [&str; 7] = [
    "received",
    "quarantine_retried",
    "redrive",
    "extracted",
    "classified",
    "assigned",
    "delivered",
];

impl Store {
    /// Documents received since `since`, per day and source.
    pub async fn intake_by_day(&self, since: DateTime<Utc>) -> Result<Vec<DayCount>> {
        self.day_counts(
            "SELECT substr(created_at, 1, 10) AS day, source AS key, COUNT(*) AS n FROM documents \
             WHERE created_at >= ? GROUP BY substr(created_at, 1, 10), source ORDER BY day, key",
            since,
        )
        .await
    }

    /// Runs a query that yields `day`, `key` and `n` for rows since `since`.
    async fn day_counts(&self, sql: &str, since: DateTime<Utc>) -> Result<Vec<DayCount>> {
        let rows = query(sql)
            .bind(fmt_time(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DayCount {
                    day: r.try_get("day")?,
                    key: r.try_get("key")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Decided documents (queued or delivered) received since `since` per day, and how many of
    /// them no person decided; `None` counts all time under the day `""`.
    pub async fn straight_through(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, Straight>> {
        let automatic =
            "CAST(SUM(CASE WHEN COALESCE(decided_by, '') <> 'person' THEN 1 ELSE 0 END) AS BIGINT)";
        let decided = "state IN (?, ?)";
        let q = match since {
            Some(_) => format!(
                "SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS decided, {automatic} AS automatic \
                 FROM documents WHERE {decided} AND created_at >= ? GROUP BY substr(created_at, 1, 10)"
            ),
            None => format!(
                "SELECT '' AS day, COUNT(*) AS decided, {automatic} AS automatic FROM documents WHERE {decided}"
            ),
        };
        let mut query = query(&q)
            .bind(DocState::Queued.as_str())
            .bind(DocState::Delivered.as_str());
        if let Some(t) = since {
            query = query.bind(fmt_time(t));
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let decided: i64 = r.try_get("decided")?;
            // SUM over no rows is NULL.
            let automatic: Option<i64> = r.try_get("automatic")?;
            out.insert(
                r.try_get("day")?,
                Straight {
                    decided,
                    automatic: automatic.unwrap_or(0),
                },
            );
        }
        Ok(out)
    }

    /// The review queue's length and its oldest document.
    pub async fn review_queue(&self) -> Result<ReviewQueue> {
        let length: i64 = query("SELECT COUNT(*) AS n FROM documents WHERE state = ?")
            .bind(DocState::Review.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let oldest = query(
            "SELECT id, original_name, created_at FROM documents WHERE state = ? \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(DocState::Review.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| -> Result<Waiting> {
            Ok(Waiting {
                id: DocumentId::from_store(r.try_get("id")?),
                name: r.try_get("original_name")?,
                since: r.try_get("created_at")?,
            })
        })
        .transpose()?;
        Ok(ReviewQueue { length, oldest })
    }

    /// Documents received since `since` that were routed to a mailbox (queued, delivered or a
    /// dead letter there), per mailbox, most first.
    pub async fn volumes_by_mailbox(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let rows = query(
            "SELECT mailbox, COUNT(*) AS n FROM documents WHERE created_at >= ? AND mailbox IS NOT NULL \
             AND state IN (?, ?, ?) GROUP BY mailbox ORDER BY n DESC, mailbox",
        )
        .bind(fmt_time(since))
        .bind(DocState::Queued.as_str())
        .bind(DocState::Delivered.as_str())
        .bind(DocState::DeadLetter.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("mailbox")?, r.try_get("n")?)))
            .collect()
    }

    /// People's corrections (review decisions and re-assignments) since `since`, per day and
    /// the mailbox they chose.
    pub async fn corrections_by_day(&self, since: DateTime<Utc>) -> Result<Vec<DayCount>> {
        self.day_counts(
            "SELECT substr(at, 1, 10) AS day, to_mailbox AS key, COUNT(*) AS n FROM corrections \
             WHERE at >= ? GROUP BY substr(at, 1, 10), to_mailbox ORDER BY day, key",
            since,
        )
        .await
    }

    /// Quarantine entries (unreadable documents and inputs) since `since`.
    pub async fn quarantined_since(&self, since: DateTime<Utc>) -> Result<i64> {
        Ok(query("SELECT COUNT(*) AS n FROM quarantine WHERE at >= ?")
            .bind(fmt_time(since))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Documents in one state now.
    pub async fn count_in_state(&self, state: DocState) -> Result<i64> {
        Ok(query("SELECT COUNT(*) AS n FROM documents WHERE state = ?")
            .bind(state.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Failed delivery attempts ever (events `delivery_failed`, and the outbox's `dead_letter`
    /// for the attempt it gave up on), per the document's mailbox now (`None`: no mailbox).
    pub async fn delivery_failures(&self) -> Result<Vec<(Option<String>, i64)>> {
        let rows = query(
            "SELECT d.mailbox AS mailbox, COUNT(*) AS n FROM events e JOIN documents d ON d.id = e.document_id \
             WHERE e.kind = ? OR (e.kind = ? AND e.actor = ?) GROUP BY d.mailbox",
        )
        .bind("delivery_failed")
        .bind("dead_letter")
        .bind("outbox")
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("mailbox")?, r.try_get("n")?)))
            .collect()
    }

    /// Time spent per stage by the newest `limit` documents received since `since` (only
    /// stages they have finished).
    pub async fn stage_durations(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<StageDurations> {
        let marks = vec!["?"; STAGE_KINDS.len()].join(", ");
        let sql = format!(
            "SELECT e.document_id, e.kind, e.at FROM events e WHERE e.kind IN ({marks}) \
             AND e.document_id IN (SELECT d.id FROM documents d WHERE d.created_at >= ? \
             ORDER BY d.created_at DESC LIMIT ?) ORDER BY e.document_id, e.id"
        );
        let mut q = query(&sql);
        for k in STAGE_KINDS {
            q = q.bind(k);
        }
        let rows = q
            .bind(fmt_time(since))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let events = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("document_id")?,
                    r.try_get("kind")?,
                    r.try_get("at")?,
                ))
            })
            .collect::<Result<Vec<(String, String, String)>>>()?;
        Ok(stage_durations(&events))
    }
}

/// Stage times from events `(document, kind, at)` ordered by document, then sequence. Each
/// stage ends at its first end event and starts at the latest start event before that:
/// - extract: `received`, `quarantine_retried` or `redrive`, to `extracted`;
/// - classify: `extracted` or `redrive`, to `classified`;
/// - deliver: `classified`, `assigned` (a person's decision) or `redrive`, to `delivered`.
pub fn stage_durations(events: &[(String, String, String)]) -> StageDurations {
    type Stage = (&'static [&'static str], &'static str);
    const STAGES: [Stage; 3] = [
        (&["received", "quarantine_retried", "redrive"], "extracted"),
        (&["extracted", "redrive"], "classified"),
        (&["classified", "assigned", "redrive"], "delivered"),
    ];
    let mut out = StageDurations::default();
    for doc in events.chunk_by(|a, b| a.0 == b.0) {
        let timed: Vec<(&str, DateTime<Utc>)> = doc
            .iter()
            .filter_map(|(_, kind, at)| {
                let t = DateTime::parse_from_rfc3339(at).ok()?;
                Some((kind.as_str(), t.with_timezone(&Utc)))
            })
            .collect();
        for (i, (starts, end)) in STAGES.iter().enumerate() {
            let Some(e) = timed.iter().position(|(k, _)| k == end) else {
                continue;
            };
            let Some(start) = timed[..e].iter().rev().find(|(k, _)| starts.contains(k)) else {
                continue;
            };
            let secs = (timed[e].1 - start.1).num_milliseconds() as f64 / 1000.0;
            if secs < 0.0 {
                continue;
            }
            match i {
                0 => out.extract.push(secs),
                1 => out.classify.push(secs),
                _ => out.deliver.push(secs),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DecidedBy, Decision, Explanation, MailboxId};
    use crate::store::{Inserted, NewDocument};

    fn ev(doc: &str, kind: &str, at: &str) -> (String, String, String) {
        (doc.into(), kind.into(), format!("2026-03-02T10:{at}Z"))
    }

    #[test]
    fn stages_run_from_their_latest_start_to_their_first_end() {
        let events = [
            ev("a", "received", "00:00.000"),
            ev("a", "extracted", "00:02.500"),
            ev("a", "classified", "00:03.000"),
            ev("a", "assigned", "05:00.000"),
            ev("a", "delivered", "05:01.000"),
            ev("a", "delivered", "09:00.000"),
            ev("b", "received", "00:00.000"),
            ev("b", "extracted", "00:01.000"),
        ];
        let d = stage_durations(&events);
        assert_eq!(d.extract, [2.5, 1.0]);
        assert_eq!(d.classify, [0.5]);
        assert_eq!(d.deliver, [1.0], "the person's decision starts delivery");
    }

    #[test]
    fn unfinished_stages_and_bad_times_count_nothing() {
        let mut events = vec![ev("a", "received", "00:00.000")];
        events.push(("a".into(), "extracted".into(), "gestern".into()));
        assert_eq!(stage_durations(&events), StageDurations::default());
        assert_eq!(stage_durations(&[]), StageDurations::default());
    }

    async fn store() -> (crate::store::db::TestDb, Store) {
        crate::store::db::TestDb::store().await
    }

    async fn doc(s: &Store, sha: &str, source: &str) -> DocumentId {
        let new = NewDocument {
            sha256: sha.into(),
            source: source.into(),
            original_name: format!("{sha}.pdf"),
            media_type: "application/pdf".into(),
            size_bytes: 3,
            arrived_at: None,
        };
        match s.insert_received(&new, "t").await.expect("insert") {
            Inserted::New(id) => id,
            Inserted::Duplicate(_) | Inserted::Retried(_) => panic!("new"),
        }
    }

    fn decision(mailbox: &str, review: bool) -> Decision {
        Decision {
            mailbox: MailboxId::parse(mailbox),
            confidence: 0.9,
            decided_by: DecidedBy::Rule,
            needs_review: review,
            explanation: Explanation::default(),
        }
    }

    #[tokio::test]
    async fn figures_follow_the_documents() {
        let (_d, s) = store().await;
        let week_ago = Utc::now() - chrono::Duration::days(7);
        let a = doc(&s, "aa", "hot_folder").await;
        let b = doc(&s, "bb", "imap:rathaus").await;
        let c = doc(&s, "cc", "hot_folder").await;
        for id in [&a, &b, &c] {
            s.set_extracted(id, "t", "{}", serde_json::json!({}))
                .await
                .expect("extracted");
        }
        s.set_decision(&a, &decision("63", false)).await.expect("a");
        s.set_decision(&b, &decision("32", true)).await.expect("b");
        s.set_decision(&c, &decision("63", true)).await.expect("c");
        s.assign(&c, &MailboxId::parse("20").expect("id"), "p", "review")
            .await
            .expect("assign");

        let intake = s.intake_by_day(week_ago).await.expect("intake");
        let per_source: BTreeMap<&str, i64> =
            intake.iter().map(|d| (d.key.as_str(), d.count)).collect();
        assert_eq!(per_source["hot_folder"], 2);
        assert_eq!(per_source["imap:rathaus"], 1);
        assert_eq!(intake[0].day, Utc::now().format("%Y-%m-%d").to_string());

        let all = s.straight_through(None).await.expect("all")[""];
        assert_eq!(
            all,
            Straight {
                decided: 2,
                automatic: 1
            }
        );
        let days = s.straight_through(Some(week_ago)).await.expect("days");
        assert_eq!(days.values().copied().map(|x| x.decided).sum::<i64>(), 2);
        let none = s
            .straight_through(Some(Utc::now() + chrono::Duration::days(1)))
            .await
            .expect("none");
        assert!(none.is_empty());

        let q = s.review_queue().await.expect("queue");
        assert_eq!(q.length, 1);
        assert_eq!(q.oldest.expect("oldest").id, b);

        let vol = s.volumes_by_mailbox(week_ago).await.expect("volumes");
        assert_eq!(vol, [("20".to_string(), 1), ("63".to_string(), 1)]);
        let corr = s.corrections_by_day(week_ago).await.expect("corrections");
        assert_eq!(corr.len(), 1);
        assert_eq!((corr[0].key.as_str(), corr[0].count), ("20", 1));

        assert_eq!(s.quarantined_since(week_ago).await.expect("q"), 0);
        assert_eq!(s.count_in_state(DocState::Review).await.expect("n"), 1);
        assert!(s.delivery_failures().await.expect("failures").is_empty());
        s.schedule_retry(&a, 1, Utc::now(), "kaputt")
            .await
            .expect("retry");
        s.dead_letter(&a, 2, "aufgegeben").await.expect("dead");
        assert_eq!(
            s.delivery_failures().await.expect("failures"),
            [(Some("63".to_string()), 2)]
        );

        let d = s.stage_durations(week_ago, 10).await.expect("stages");
        assert_eq!(d.extract.len(), 3);
        assert_eq!(d.classify.len(), 3);
        assert!(d.deliver.is_empty());
        let one = s.stage_durations(week_ago, 1).await.expect("stages");
        assert_eq!(one.extract.len(), 1, "at most `limit` documents");
    }
}
