//! Sender memory's storage: the sender keys of each document and the history they lead to.

use super::db::{Tx, query};
use super::{Result, Store};
use crate::domain::{DocumentId, KeyHistory, MailboxId, SenderHistory, SenderKey};
use sqlx::Row;

impl Store {
    /// The history of a document's sender keys: for each key, the final mailboxes of the most
    /// recent `depth` other documents with that key that count: delivered, or decided by a
    /// person (a review decision or a correction; the documents table holds the mailbox after
    /// corrections). Documents waiting in review (also those a department sent back) and
    /// machine decisions not yet delivered do not count. Keys without such documents are left
    /// out.
    pub async fn sender_history(
        &self,
        id: &DocumentId,
        keys: &[SenderKey],
        depth: u32,
    ) -> Result<SenderHistory> {
        let mut out = SenderHistory::default();
        for key in keys {
            let rows = query(
                "SELECT d.mailbox, d.decided_by FROM sender_keys k JOIN documents d ON d.id = k.document_id \
                 WHERE k.kind = ? AND k.value = ? AND k.document_id <> ? AND d.mailbox IS NOT NULL \
                 AND d.state <> 'review' AND (d.state = 'delivered' OR d.decided_by = 'person') \
                 ORDER BY d.id DESC LIMIT ?",
            )
            .bind(key.kind.as_str())
            .bind(&key.value)
            .bind(id.as_str())
            .bind(i64::from(depth))
            .fetch_all(&self.pool)
            .await?;
            let mut h = KeyHistory::default();
            for row in rows {
                let mailbox: String = row.try_get("mailbox")?;
                let Some(mailbox) = MailboxId::parse(&mailbox) else {
                    continue;
                };
                let by: Option<String> = row.try_get("decided_by")?;
                let e = h.mailboxes.entry(mailbox).or_default();
                if by.as_deref() == Some("person") {
                    e.by_person += 1;
                } else {
                    e.by_machine += 1;
                }
            }
            if h.total() > 0 {
                out.keys.push((key.clone(), h));
            }
        }
        Ok(out)
    }

    /// The stored sender keys of a document (kind and normalised value).
    pub async fn sender_keys(&self, id: &DocumentId) -> Result<Vec<(String, String)>> {
        let rows =
            query("SELECT kind, value FROM sender_keys WHERE document_id = ? ORDER BY kind, value")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("value")?)))
            .collect()
    }
}

/// Replaces a document's sender keys inside the caller's transaction.
pub(super) async fn replace_keys(
    tx: &mut Tx<'_>,
    id: &DocumentId,
    keys: &[SenderKey],
) -> Result<()> {
    query("DELETE FROM sender_keys WHERE document_id = ?")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    for k in keys {
        query(
            "INSERT INTO sender_keys (document_id, kind, value) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str())
        .bind(k.kind.as_str())
        .bind(&k.value)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::domain::{DecidedBy, Decision, DocumentId, MailboxId, SenderKey, SenderKeyKind};
    use crate::store::db::query;
    use crate::store::{Inserted, NewDocument, Store};

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("valid id")
    }

    fn iban() -> SenderKey {
        SenderKey {
            kind: SenderKeyKind::Iban,
            value: "DE89370400440532013000".into(),
            shown: "DE89370400440532013000".into(),
        }
    }

    /// A document with the IBAN key, decided by the machine for `mailbox` (to review or not).
    async fn decided(s: &Store, sha: &str, mailbox: &str, review: bool) -> DocumentId {
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
        s.set_metadata(&doc, &Default::default(), &[iban()])
            .await
            .expect("metadata");
        let d = Decision {
            mailbox: Some(id(mailbox)),
            confidence: 0.9,
            decided_by: DecidedBy::Model,
            needs_review: review,
            explanation: Default::default(),
        };
        s.set_decision(&doc, &d).await.expect("decision");
        doc
    }

    #[tokio::test]
    async fn history_counts_delivered_and_corrected_documents_by_their_final_mailbox() {
        let (_db, s) = crate::store::db::TestDb::store().await;
        // Delivered as the machine decided.
        let a = decided(&s, "a", "20", false).await;
        let version = s.get(&a).await.expect("doc").version;
        s.mark_delivered(&a, "dms", "r", &id("20"), version)
            .await
            .expect("delivered");
        // Delivered to 11, then corrected by a person to 20: counts for 20 only.
        let b = decided(&s, "b", "11", false).await;
        let version = s.get(&b).await.expect("doc").version;
        s.mark_delivered(&b, "dms", "r", &id("11"), version)
            .await
            .expect("delivered");
        s.assign(&b, &id("20"), "p.post", "correction")
            .await
            .expect("assign");
        // Waiting in review, and queued but not delivered: neither counts.
        decided(&s, "c", "32", true).await;
        decided(&s, "d", "32", false).await;
        let now = decided(&s, "e", "50", true).await;
        let h = s
            .sender_history(&now, &[iban()], 20)
            .await
            .expect("history");
        assert_eq!(h.keys.len(), 1, "{h:?}");
        let (key, kh) = &h.keys[0];
        assert_eq!(key, &iban());
        assert_eq!(kh.mailboxes.len(), 1, "{kh:?}");
        let e = kh.mailboxes[&id("20")];
        assert_eq!((e.by_person, e.by_machine), (1, 1));
        // The depth limits the history to the most recent documents.
        let h = s.sender_history(&now, &[iban()], 1).await.expect("history");
        assert_eq!(h.keys[0].1.total(), 1);
        // A key nobody else has gives no history.
        let other = SenderKey {
            value: "GB82WEST12345698765432".into(),
            ..iban()
        };
        assert!(
            s.sender_history(&now, &[other], 20)
                .await
                .expect("h")
                .keys
                .is_empty()
        );
        // Keys go with their document.
        assert_eq!(s.sender_keys(&a).await.expect("keys").len(), 1);
        query("DELETE FROM corrections WHERE document_id = ?")
            .bind(a.as_str())
            .execute(&s.pool)
            .await
            .expect("corrections");
        query("DELETE FROM documents WHERE id = ?")
            .bind(a.as_str())
            .execute(&s.pool)
            .await
            .expect("delete");
        assert!(s.sender_keys(&a).await.expect("keys").is_empty());
        let h = s
            .sender_history(&now, &[iban()], 20)
            .await
            .expect("history");
        assert_eq!(
            h.keys[0].1.total(),
            1,
            "only the corrected one is left: {h:?}"
        );
    }
}
