//! SQL of the IMAP intake: one row per message seen on a server (`imap_messages`), and the
//! UIDVALIDITY last seen per folder (`imap_folders`). Every transition writes an audit event.

use super::db::query;
use super::{Result, Store, insert_event, now_str};
use crate::domain::DocumentId;
use sqlx::Row;

/// Where a message lives on a server: account, folder, UIDVALIDITY and UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImapKey {
    /// Configured account name.
    pub account: String,
    /// Folder (mailbox) name.
    pub folder: String,
    /// The folder's UIDVALIDITY.
    pub uidvalidity: u32,
    /// The message's UID.
    pub uid: u32,
}

/// What the intake has done with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapState {
    /// Being fetched and committed (or failed and waiting for a retry).
    InFlight,
    /// Committed to the store; not yet marked on the server.
    Committed,
    /// Moved to the processed folder (or flagged).
    Marked,
    /// Refused or failed too often; moved (or to be moved) to the quarantine folder.
    Quarantined,
}

impl ImapState {
    fn as_str(self) -> &'static str {
        match self {
            ImapState::InFlight => "in_flight",
            ImapState::Committed => "committed",
            ImapState::Marked => "marked",
            ImapState::Quarantined => "quarantined",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            ImapState::InFlight,
            ImapState::Committed,
            ImapState::Marked,
            ImapState::Quarantined,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A row of `imap_messages`.
#[derive(Debug, Clone)]
pub struct ImapMessageRow {
    /// State.
    pub state: ImapState,
    /// The document it became, once committed.
    pub document_id: Option<DocumentId>,
    /// Failed attempts so far.
    pub failures: i64,
    /// Earliest time of the next attempt after a failure (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// Last failure or quarantine reason (German).
    pub reason: Option<String>,
}

fn actor(key: &ImapKey) -> String {
    format!("imap:{}", key.account)
}

fn key_json(key: &ImapKey) -> serde_json::Value {
    serde_json::json!({
        "account": key.account, "folder": key.folder,
        "uidvalidity": key.uidvalidity, "uid": key.uid,
    })
}

impl Store {
    /// The UIDVALIDITY last seen for a folder.
    pub async fn imap_folder_uidvalidity(
        &self,
        account: &str,
        folder: &str,
    ) -> Result<Option<u32>> {
        let row = query("SELECT uidvalidity FROM imap_folders WHERE account = ? AND folder = ?")
            .bind(account)
            .bind(folder)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(u32::try_from(r.try_get::<i64, _>("uidvalidity")?).unwrap_or(0)),
            None => None,
        })
    }

    /// Records the folder's current UIDVALIDITY (with an event when it changed).
    pub async fn set_imap_folder_uidvalidity(
        &self,
        account: &str,
        folder: &str,
        previous: Option<u32>,
        uidvalidity: u32,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO imap_folders (account, folder, uidvalidity, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
        )
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(now_str())
        .execute(&mut *tx)
        .await?;
        if let Some(prev) = previous {
            insert_event(
                &mut tx,
                None,
                &format!("imap:{account}"),
                "imap_uidvalidity_changed",
                &serde_json::json!({"folder": folder, "from": prev, "to": uidvalidity}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The row of a message, if the intake has seen it.
    pub async fn imap_message(&self, key: &ImapKey) -> Result<Option<ImapMessageRow>> {
        let row = query(
            "SELECT state, document_id, failures, next_attempt_at, reason FROM imap_messages \
             WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let state: String = r.try_get("state")?;
        Ok(Some(ImapMessageRow {
            state: ImapState::parse(&state)
                .ok_or_else(|| super::StoreError::Corrupt(format!("imap state {state}")))?,
            document_id: r
                .try_get::<Option<String>, _>("document_id")?
                .map(DocumentId::from_store),
            failures: r.try_get("failures")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            reason: r.try_get("reason")?,
        }))
    }

    /// Claims a message for processing: creates its row as `in_flight` unless one exists.
    pub async fn imap_claim(&self, key: &ImapKey) -> Result<()> {
        let now = now_str();
        query(
            "INSERT INTO imap_messages (account, folder, uidvalidity, uid, state, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .bind(ImapState::InFlight.as_str())
        .bind(&now)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The document a message with this identity (Message-ID plus hash of the body) already
    /// became in this account, in any folder and under any UIDVALIDITY.
    pub async fn imap_find_identity(
        &self,
        account: &str,
        message_id: Option<&str>,
        body_sha256: &str,
    ) -> Result<Option<DocumentId>> {
        let row = query(
            "SELECT document_id FROM imap_messages WHERE account = ? AND body_sha256 = ? \
             AND message_id IS NOT DISTINCT FROM ? AND document_id IS NOT NULL LIMIT 1",
        )
        .bind(account)
        .bind(body_sha256)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(DocumentId::from_store(r.try_get("document_id")?)),
            None => None,
        })
    }

    /// True when another message of this account carries the same Message-ID with a different
    /// body (logged, and imported as a document of its own: a reused id must not hide mail).
    pub async fn imap_message_id_conflict(
        &self,
        account: &str,
        message_id: &str,
        body_sha256: &str,
    ) -> Result<bool> {
        let row = query(
            "SELECT 1 FROM imap_messages WHERE account = ? AND message_id = ? AND body_sha256 IS DISTINCT FROM ? \
             AND document_id IS NOT NULL LIMIT 1",
        )
        .bind(account)
        .bind(message_id)
        .bind(body_sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The message is committed as `document` (new or recognised as a duplicate).
    pub async fn imap_committed(
        &self,
        key: &ImapKey,
        document: &DocumentId,
        message_id: Option<&str>,
        body_sha256: &str,
        duplicate: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        query(
            "UPDATE imap_messages SET state = ?, document_id = ?, message_id = ?, body_sha256 = ?, \
             reason = NULL, next_attempt_at = NULL, updated_at = ? \
             WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(ImapState::Committed.as_str())
        .bind(document.as_str())
        .bind(message_id)
        .bind(body_sha256)
        .bind(now_str())
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .execute(&mut *tx)
        .await?;
        let mut detail = key_json(key);
        detail["message_id"] = serde_json::json!(message_id);
        detail["duplicate_of"] = serde_json::json!(duplicate);
        insert_event(
            &mut tx,
            Some(document.as_str()),
            &actor(key),
            if duplicate.is_some() {
                "imap_duplicate"
            } else {
                "imap_committed"
            },
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The message is marked on the server (`how`: moved, copied, flagged).
    pub async fn imap_marked(&self, key: &ImapKey, state: ImapState, how: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let doc: Option<String> = query(
            "SELECT document_id FROM imap_messages WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("document_id"))
        .transpose()?
        .flatten();
        query(
            "UPDATE imap_messages SET state = ?, updated_at = ? \
             WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(state.as_str())
        .bind(now_str())
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .execute(&mut *tx)
        .await?;
        let mut detail = key_json(key);
        detail["how"] = serde_json::json!(how);
        insert_event(&mut tx, doc.as_deref(), &actor(key), "imap_marked", &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A failed attempt; the next one is not before `next`.
    pub async fn imap_failed(
        &self,
        key: &ImapKey,
        failures: i64,
        next: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        query(
            "UPDATE imap_messages SET failures = ?, next_attempt_at = ?, reason = ?, updated_at = ? \
             WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(failures)
        .bind(super::fmt_time(next))
        .bind(reason)
        .bind(now_str())
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .execute(&mut *tx)
        .await?;
        let mut detail = key_json(key);
        detail["failures"] = serde_json::json!(failures);
        detail["reason"] = serde_json::json!(reason);
        insert_event(&mut tx, None, &actor(key), "imap_failed", &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The message is refused: it goes to the quarantine folder, the store says why.
    pub async fn imap_quarantined(&self, key: &ImapKey, reason: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        query(
            "UPDATE imap_messages SET state = ?, reason = ?, updated_at = ? \
             WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?",
        )
        .bind(ImapState::Quarantined.as_str())
        .bind(reason)
        .bind(now_str())
        .bind(&key.account)
        .bind(&key.folder)
        .bind(i64::from(key.uidvalidity))
        .bind(i64::from(key.uid))
        .execute(&mut *tx)
        .await?;
        let mut detail = key_json(key);
        detail["reason"] = serde_json::json!(reason);
        insert_event(&mut tx, None, &actor(key), "imap_quarantined", &detail).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One `imap_messages` row as shown by [`Store::imap_rows`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImapRowSummary {
    /// Folder.
    pub folder: String,
    /// UIDVALIDITY.
    pub uidvalidity: i64,
    /// UID.
    pub uid: i64,
    /// State name.
    pub state: String,
    /// The document it became.
    pub document_id: Option<String>,
    /// Failures so far.
    pub failures: i64,
    /// Last reason.
    pub reason: Option<String>,
}

impl Store {
    /// All messages the intake has seen in an account, in folder / UIDVALIDITY / UID order.
    pub async fn imap_rows(&self, account: &str) -> Result<Vec<ImapRowSummary>> {
        let rows = query(
            "SELECT folder, uidvalidity, uid, state, document_id, failures, reason FROM imap_messages \
             WHERE account = ? ORDER BY folder, uidvalidity, uid",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ImapRowSummary {
                    folder: r.try_get("folder")?,
                    uidvalidity: r.try_get("uidvalidity")?,
                    uid: r.try_get("uid")?,
                    state: r.try_get("state")?,
                    document_id: r.try_get("document_id")?,
                    failures: r.try_get("failures")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// UIDs of a folder (under one UIDVALIDITY) that are committed but not yet marked.
    pub async fn imap_unmarked_uids(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<Vec<u32>> {
        let rows = query(
            "SELECT uid FROM imap_messages WHERE account = ? AND folder = ? AND uidvalidity = ? AND state = ?",
        )
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(ImapState::Committed.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(u32::try_from(r.try_get::<i64, _>("uid")?).unwrap_or(0)))
            .collect()
    }
}
