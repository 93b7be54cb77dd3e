//! Retry bookkeeping of the extract and classify stages: a failed attempt that is not the
//! input's fault waits for its backoff in the same state; after the last attempt the document
//! becomes a dead letter that remembers its stage, so a re-drive resumes there.

use super::{Result, Store, fmt_time};
use crate::domain::{DocState, DocumentId};
use chrono::{DateTime, Utc};

impl Store {
    /// A stage attempt failed: the document stays in `stage`, counts the attempt and waits
    /// until `next` (audit event `stage_failed`).
    pub async fn stage_failed(
        &self,
        id: &DocumentId,
        stage: DocState,
        attempts: i64,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.transition(
            id,
            &[stage],
            stage,
            "pipeline",
            "stage_failed",
            serde_json::json!({
                "stage": stage, "attempt": attempts, "error": error,
                "next_attempt_at": fmt_time(next),
            }),
            |q| q.push_str(", attempts = CAST(? AS BIGINT), next_attempt_at = ?, reason = ?"),
            vec![attempts.to_string(), fmt_time(next), error.to_string()],
        )
        .await
    }

    /// A stage gave up: `stage -> dead_letter` with the German reason; a re-drive returns the
    /// document to `stage` (audit event `dead_letter`).
    pub async fn stage_dead_letter(
        &self,
        id: &DocumentId,
        stage: DocState,
        attempts: i64,
        reason: &str,
    ) -> Result<()> {
        self.transition(
            id,
            &[stage],
            DocState::DeadLetter,
            "pipeline",
            "dead_letter",
            serde_json::json!({"stage": stage, "attempts": attempts, "reason": reason}),
            |q| q.push_str(", failed_stage = ?, attempts = CAST(? AS BIGINT), next_attempt_at = NULL, reason = ?"),
            vec![
                stage.as_str().to_string(),
                attempts.to_string(),
                reason.to_string(),
            ],
        )
        .await
    }
}
