//! The shadow model's log: per routed document and shadow version, the active model's decision
//! and the shadow's, side by side (table `shadow_decisions`), and what became of the document
//! (its state, its mailbox, the latest correction a person made), for
//! [`crate::shadow::compare`].

use super::db::query;
use super::{Result, Store, now_str, parse_state};
use crate::domain::{DocState, DocumentId};
use sqlx::Row;

/// One side of a logged decision: what a model version decided.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SideDecision {
    /// The model version (None: rules alone).
    pub version: Option<String>,
    /// The proposed mailbox (also when a person must confirm it).
    pub mailbox: Option<String>,
    /// Its confidence.
    pub confidence: f64,
    /// Whether it sent the document to review (false: straight through).
    pub review: bool,
}

impl SideDecision {
    /// The side of a router's decision.
    pub fn of(decision: &crate::domain::Decision) -> Self {
        Self {
            version: decision.explanation.model_version.clone(),
            mailbox: decision.mailbox.as_ref().map(|m| m.as_str().to_string()),
            confidence: decision.confidence,
            review: decision.needs_review,
        }
    }
}

/// A logged document: both decisions and what became of the document since.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowRecord {
    /// The document.
    pub document_id: String,
    /// The shadow version.
    pub shadow_version: String,
    /// The active model's decision, which routed the document.
    pub active: SideDecision,
    /// The shadow's decision, which did not.
    pub shadow: SideDecision,
    /// The document's state now.
    pub state: DocState,
    /// The document's mailbox now.
    pub mailbox: Option<String>,
    /// The mailbox of the latest correction by a person, if any.
    pub corrected_to: Option<String>,
    /// When the decisions were logged.
    pub at: String,
}

impl Store {
    /// Logs both decisions for a document (one row per document and shadow version; routing
    /// the document again replaces its row).
    pub async fn record_shadow(
        &self,
        id: &DocumentId,
        shadow_version: &str,
        active: &SideDecision,
        shadow: &SideDecision,
    ) -> Result<()> {
        query(
            "INSERT INTO shadow_decisions (document_id, shadow_version, active_version, active_mailbox, \
             active_confidence, active_review, shadow_mailbox, shadow_confidence, shadow_review, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (document_id, shadow_version) DO UPDATE SET \
             active_version = excluded.active_version, active_mailbox = excluded.active_mailbox, \
             active_confidence = excluded.active_confidence, active_review = excluded.active_review, \
             shadow_mailbox = excluded.shadow_mailbox, shadow_confidence = excluded.shadow_confidence, \
             shadow_review = excluded.shadow_review, at = excluded.at",
        )
        .bind(id.as_str())
        .bind(shadow_version)
        .bind(&active.version)
        .bind(&active.mailbox)
        .bind(active.confidence)
        .bind(i64::from(active.review))
        .bind(&shadow.mailbox)
        .bind(shadow.confidence)
        .bind(i64::from(shadow.review))
        .bind(now_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The shadow version logged most recently, if any.
    pub async fn latest_shadow_version(&self) -> Result<Option<String>> {
        let row = query(
            "SELECT shadow_version FROM shadow_decisions ORDER BY at DESC, shadow_version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("shadow_version")?),
            None => None,
        })
    }

    /// Every logged document of a shadow version with what became of it, oldest first.
    pub async fn shadow_records(&self, shadow_version: &str) -> Result<Vec<ShadowRecord>> {
        let rows = query(
            "SELECT s.document_id, s.shadow_version, s.active_version, s.active_mailbox, \
             s.active_confidence, s.active_review, s.shadow_mailbox, s.shadow_confidence, \
             s.shadow_review, s.at, d.state, d.mailbox, \
             (SELECT c.to_mailbox FROM corrections c WHERE c.document_id = s.document_id \
              ORDER BY c.id DESC LIMIT 1) AS corrected_to \
             FROM shadow_decisions s JOIN documents d ON d.id = s.document_id \
             WHERE s.shadow_version = ? ORDER BY s.at, s.document_id",
        )
        .bind(shadow_version)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ShadowRecord {
                    document_id: r.try_get("document_id")?,
                    shadow_version: r.try_get("shadow_version")?,
                    active: SideDecision {
                        version: r.try_get("active_version")?,
                        mailbox: r.try_get("active_mailbox")?,
                        confidence: r.try_get("active_confidence")?,
                        review: r.try_get::<i64, _>("active_review")? != 0,
                    },
                    shadow: SideDecision {
                        version: Some(r.try_get("shadow_version")?),
                        mailbox: r.try_get("shadow_mailbox")?,
                        confidence: r.try_get("shadow_confidence")?,
                        review: r.try_get::<i64, _>("shadow_review")? != 0,
                    },
                    state: parse_state(&r.try_get::<String, _>("state")?)?,
                    mailbox: r.try_get("mailbox")?,
                    corrected_to: r.try_get("corrected_to")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}
