//! Outbox bookkeeping of the circuit breaker: deferring documents of a paused target without
//! counting an attempt, and releasing them when the target answers again.

use super::db::query;
use super::{Result, Store, fmt_time, insert_event, now_str};
use crate::domain::{DocState, DocumentId, MailboxId};
use chrono::{DateTime, Utc};

impl Store {
    /// A queued document waits for its paused target until `until`; its attempts stay as they
    /// are (audit event `delivery_deferred`).
    pub async fn defer_delivery(
        &self,
        id: &DocumentId,
        target: &str,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<()> {
        self.transition(
            id,
            &[DocState::Queued],
            DocState::Queued,
            "outbox",
            "delivery_deferred",
            serde_json::json!({"target": target, "until": fmt_time(until), "reason": reason}),
            |q| q.push_str(", next_attempt_at = ?, reason = ?"),
            vec![fmt_time(until), reason.to_string()],
        )
        .await
    }

    /// The target answers again: queued documents of its mailboxes that wait for a later
    /// attempt become due now (one audit event `target_resumed`). Returns how many.
    pub async fn resume_target(&self, target: &str, mailboxes: &[MailboxId]) -> Result<u64> {
        if mailboxes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let marks = vec!["?"; mailboxes.len()].join(", ");
        let sql = format!(
            "UPDATE documents SET next_attempt_at = NULL, updated_at = ? WHERE state = ? \
             AND next_attempt_at > ? AND mailbox IN ({marks})"
        );
        let now = now_str();
        let mut q = query(&sql)
            .bind(&now)
            .bind(DocState::Queued.as_str())
            .bind(&now);
        for m in mailboxes {
            q = q.bind(m.as_str());
        }
        let n = q.execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            insert_event(
                &mut tx,
                None,
                "outbox",
                "target_resumed",
                &serde_json::json!({"target": target, "documents": n}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
