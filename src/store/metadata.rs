//! Metadata and delivery renditions of documents.

use super::db::{Tx, query};
use super::{Result, Store, StoreError, insert_event, now_str};
use crate::domain::{DocumentId, DocumentMetadata, SenderKey};
use sqlx::Row;

/// The bytes delivered for a document when they are not the original: a blob and its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// SHA-256 of the blob.
    pub sha256: String,
    /// Its MIME type.
    pub media_type: String,
}

impl Store {
    /// Stores the metadata read from a document and its sender keys (replacing earlier ones)
    /// with an event.
    pub async fn set_metadata(
        &self,
        id: &DocumentId,
        meta: &DocumentMetadata,
        sender_keys: &[SenderKey],
    ) -> Result<()> {
        let json = serde_json::to_string(meta)?;
        let mut tx = self.begin_write().await?;
        let done = query("UPDATE documents SET metadata = ?, updated_at = ? WHERE id = ?")
            .bind(&json)
            .bind(now_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        super::sender::replace_keys(&mut tx, id, sender_keys).await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            "system",
            "metadata_extracted",
            &serde_json::json!({
                "sender": meta.sender_name, "letter_date": meta.letter_date,
                "file_references": meta.file_references, "invoice": meta.invoice.is_some(),
                "sender_keys": sender_keys.len(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored metadata of a document, if any was extracted.
    pub async fn metadata(&self, id: &DocumentId) -> Result<Option<DocumentMetadata>> {
        let row = query("SELECT metadata FROM documents WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let json: Option<String> = row.try_get("metadata")?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Links the rendition to deliver (a blob already stored). Only the first link counts: a
    /// document keeps the bytes it was first given, so every delivery attempt sends the same.
    /// Returns the rendition in force.
    pub async fn set_rendition(
        &self,
        id: &DocumentId,
        rendition: &Rendition,
        detail: serde_json::Value,
    ) -> Result<Rendition> {
        let mut tx = self.begin_write().await?;
        if let Some(existing) = rendition_of(&mut tx, id).await? {
            return Ok(existing);
        }
        query(
            "UPDATE documents SET rendition_sha256 = ?, rendition_media_type = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&rendition.sha256)
        .bind(&rendition.media_type)
        .bind(now_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            Some(id.as_str()),
            "system",
            "rendition_linked",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(rendition.clone())
    }

    /// The linked rendition, if any.
    pub async fn rendition(&self, id: &DocumentId) -> Result<Option<Rendition>> {
        let mut tx = self.pool.begin().await?;
        let r = rendition_of(&mut tx, id).await?;
        tx.commit().await?;
        Ok(r)
    }
}

async fn rendition_of(tx: &mut Tx<'_>, id: &DocumentId) -> Result<Option<Rendition>> {
    let row = query("SELECT rendition_sha256, rendition_media_type FROM documents WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let sha: Option<String> = row.try_get("rendition_sha256")?;
    let mt: Option<String> = row.try_get("rendition_media_type")?;
    Ok(match (sha, mt) {
        (Some(sha256), Some(media_type)) => Some(Rendition { sha256, media_type }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use crate::store::{Inserted, NewDocument};

    #[tokio::test]
    async fn metadata_and_first_rendition_stick() {
        let (_db, s) = crate::store::db::TestDb::store().await;
        let Inserted::New(id) = s
            .insert_received(
                &NewDocument {
                    sha256: "aa".into(),
                    source: "t".into(),
                    original_name: "a.png".into(),
                    media_type: "image/png".into(),
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
        assert_eq!(s.metadata(&id).await.expect("meta"), None);
        let meta = crate::domain::DocumentMetadata {
            sender_name: Some("Erika".into()),
            ..Default::default()
        };
        s.set_metadata(&id, &meta, &[]).await.expect("set");
        assert_eq!(s.metadata(&id).await.expect("meta"), Some(meta));
        let first = super::Rendition {
            sha256: "bb".into(),
            media_type: "application/pdf".into(),
        };
        let second = super::Rendition {
            sha256: "cc".into(),
            media_type: "application/pdf".into(),
        };
        assert_eq!(
            s.set_rendition(&id, &first, serde_json::json!({}))
                .await
                .expect("link"),
            first
        );
        assert_eq!(
            s.set_rendition(&id, &second, serde_json::json!({}))
                .await
                .expect("again"),
            first,
            "a retry keeps the first rendition"
        );
        assert_eq!(s.rendition(&id).await.expect("get"), Some(first));
    }
}
