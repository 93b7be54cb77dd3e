//! Paperless-ngx over its REST API (Paperless-ngx documentation, "REST API", sections
//! "POST /api/documents/post_document/" and "Tasks", 2.x).
//!
//! Upload: multipart `document` + `title`, `created`, `tags` (repeated), `document_type`,
//! `correspondent`, `custom_fields` (JSON object id -> value); the answer is the consumer task's
//! UUID as a JSON string. The task is polled at `GET /api/tasks/?task_id=<uuid>` until
//! `SUCCESS` (`related_document`) or `FAILURE`. Paperless refuses a file it already holds
//! (same checksum) with a `FAILURE` whose result says `"duplicate ... (#<id>)"`: for a retried
//! delivery that means the document is there. When `document_id_field` names a custom field,
//! our document id is stored in it and looked up before uploading.
//!
//! The upload cannot name an owner: a document whose clerk `clerk_owners` maps to a user gets
//! that owner by `PATCH /api/documents/{id}/` (`{"owner": <user id>}`) once it is consumed,
//! and again when a later delivery finds it with another owner.

mod settings;
pub use settings::{PaperlessSettings, RawPaperless};

use super::http;
use super::{
    BuildError, CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt,
    fields,
};
use serde::Deserialize;

/// Paperless-ngx target.
#[derive(Debug)]
pub struct PaperlessTarget {
    name: String,
    s: PaperlessSettings,
    client: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct Task {
    status: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    related_document: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    results: Vec<Doc>,
}

#[derive(Debug, Deserialize)]
struct Doc {
    id: u64,
}

#[derive(Debug, Deserialize)]
struct DocDetail {
    #[serde(default)]
    tags: Vec<u64>,
    #[serde(default)]
    document_type: Option<u64>,
    #[serde(default)]
    owner: Option<u64>,
}

impl PaperlessTarget {
    /// A target with these settings; fails when its HTTP client cannot be built.
    pub fn new(name: &str, s: PaperlessSettings) -> Result<Self, BuildError> {
        let client = http::client(s.timeout).map_err(|e| BuildError::new(name, e))?;
        Ok(Self {
            name: name.to_string(),
            s,
            client,
        })
    }

    /// Health check: one page of one document id (`GET /api/documents/?page_size=1`): the
    /// server answers and the token may read documents.
    async fn check_async(&self) -> Result<(), DeliveryError> {
        let url = format!("{}/api/documents/", self.s.base_url);
        let req = self
            .auth(self.client.get(url))
            .query(&[("page_size", "1"), ("fields", "id")]);
        let resp = http::send_ok("Paperless: Dokumentliste", req).await?;
        let _: Page = http::json("Paperless: Dokumentliste", resp).await?;
        Ok(())
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        r.header("Authorization", format!("Token {}", self.s.token.expose()))
            .header("Accept", "application/json; version=5")
    }

    fn reference(&self, id: u64) -> String {
        format!("{}/api/documents/{id}/", self.s.base_url)
    }

    /// Our document id in the custom field, when configured.
    async fn find_existing(&self, item: &DeliveryItem) -> Result<Option<u64>, DeliveryError> {
        let Some(field) = self.s.document_id_field else {
            return Ok(None);
        };
        let query = serde_json::json!([field, "exact", item.document_id.as_str()]).to_string();
        let url = format!("{}/api/documents/", self.s.base_url);
        let req = self
            .auth(self.client.get(url))
            .query(&[("custom_field_query", query.as_str()), ("fields", "id")]);
        let resp = http::send_ok("Paperless: Suche", req).await?;
        let page: Page = http::json("Paperless: Suche", resp).await?;
        Ok(page.results.first().map(|d| d.id))
    }

    fn form(&self, item: &DeliveryItem) -> Result<reqwest::multipart::Form, DeliveryError> {
        let part = reqwest::multipart::Part::bytes(item.bytes.clone())
            .file_name(fields::render("{file_name}", item))
            .mime_str(&item.media_type)
            .map_err(|e| DeliveryError::Permanent(format!("media type: {e}")))?;
        let mut title = fields::render(&self.s.title, item);
        if title.trim().is_empty() {
            title = item.original_name.clone();
        }
        let mut form = reqwest::multipart::Form::new()
            .part("document", part)
            .text("title", title);
        if let Some(date) = fields::values(item, "letter_date").first() {
            form = form.text("created", date.clone());
        }
        let mb = item.mailbox.as_str();
        for t in self.tags_for(mb) {
            form = form.text("tags", t.to_string());
        }
        if let Some(dt) = self
            .s
            .mailbox_document_types
            .get(mb)
            .or(self.s.document_type.as_ref())
        {
            form = form.text("document_type", dt.to_string());
        }
        if let Some(c) = self.s.correspondent {
            form = form.text("correspondent", c.to_string());
        }
        let mut cf = serde_json::Map::new();
        if let Some(f) = self.s.document_id_field {
            cf.insert(f.to_string(), item.document_id.as_str().into());
        }
        for (name, id) in &self.s.custom_fields {
            let v = fields::values(item, name).join(", ");
            if !v.is_empty() {
                cf.insert(id.to_string(), v.into());
            }
        }
        if !cf.is_empty() {
            form = form.text("custom_fields", serde_json::Value::Object(cf).to_string());
        }
        Ok(form)
    }

    async fn run(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        if let Some(id) = self.find_existing(item).await? {
            self.reconcile(id, item).await?;
            return Ok(Receipt {
                reference: self.reference(id),
                already_present: true,
            });
        }
        let url = format!("{}/api/documents/post_document/", self.s.base_url);
        let req = self
            .auth(self.client.post(url))
            .multipart(self.form(item)?);
        let resp = http::send_ok("Paperless: Upload", req).await?;
        let task_id: String = http::json("Paperless: Upload", resp).await?;
        self.wait(&task_id, item).await
    }

    /// The owner of the item's clerk, when `clerk_owners` maps it.
    fn owner(&self, item: &DeliveryItem) -> Option<u64> {
        item.clerk
            .as_ref()
            .and_then(|c| self.s.clerk_owners.get(&c.id))
            .copied()
    }

    fn tags_for(&self, mailbox: &str) -> Vec<u64> {
        let mut tags = self.s.tags.clone();
        tags.extend(self.s.mailbox_tags.get(mailbox).into_iter().flatten());
        tags
    }

    /// A document already in Paperless gets the tags and document type of the mailbox it is
    /// delivered to now (a re-assignment moves it): other mailboxes' tags are taken off, tags
    /// set by people stay.
    async fn reconcile(&self, id: u64, item: &DeliveryItem) -> Result<(), DeliveryError> {
        let url = format!("{}/api/documents/{id}/", self.s.base_url);
        let resp =
            http::send_ok("Paperless: Dokument", self.auth(self.client.get(&url))).await?;
        let doc: DocDetail = http::json("Paperless: Dokument", resp).await?;
        let mb = item.mailbox.as_str();
        let foreign: Vec<u64> = self
            .s
            .mailbox_tags
            .iter()
            .filter(|(m, _)| m.as_str() != mb)
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        let mut tags: Vec<u64> = doc
            .tags
            .iter()
            .copied()
            .filter(|t| !foreign.contains(t))
            .collect();
        for t in self.tags_for(mb) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let doc_type = self
            .s
            .mailbox_document_types
            .get(mb)
            .copied()
            .or(self.s.document_type)
            .or(doc.document_type);
        let owner = self.owner(item);
        if tags == doc.tags
            && doc_type == doc.document_type
            && owner.is_none_or(|o| doc.owner == Some(o))
        {
            return Ok(());
        }
        let mut body = serde_json::json!({"tags": tags, "document_type": doc_type});
        if let Some(o) = owner {
            body["owner"] = o.into();
        }
        let req = self.auth(self.client.patch(&url)).json(&body);
        http::send_ok("Paperless: Umlegen", req).await?;
        Ok(())
    }

    async fn wait(&self, task_id: &str, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        let deadline = tokio::time::Instant::now() + self.s.poll_timeout;
        let url = format!("{}/api/tasks/", self.s.base_url);
        loop {
            let req = self
                .auth(self.client.get(&url))
                .query(&[("task_id", task_id)]);
            let resp = http::send_ok("Paperless: Task", req).await?;
            let tasks: Vec<Task> = http::json("Paperless: Task", resp).await?;
            if let Some(t) = tasks.first() {
                match t.status.as_str() {
                    "SUCCESS" => {
                        let id = t
                            .related_document
                            .as_ref()
                            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
                        if let (Some(i), Some(_)) = (id, self.owner(item)) {
                            // The clerk's owner (the upload cannot name one).
                            self.reconcile(i, item).await?;
                        }
                        return Ok(Receipt {
                            reference: id.map(|i| self.reference(i)).unwrap_or_else(|| {
                                format!("{}/api/tasks/?task_id={task_id}", self.s.base_url)
                            }),
                            already_present: false,
                        });
                    }
                    "FAILURE" | "REVOKED" => {
                        let result = t.result.clone().unwrap_or_default();
                        if result.to_lowercase().contains("duplicate") {
                            return self.duplicate(&result, item).await;
                        }
                        return Err(DeliveryError::Permanent(format!(
                            "Paperless hat das Dokument nicht übernommen: {result}"
                        )));
                    }
                    _ => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                // Still consuming: the next attempt finds it (custom field or duplicate check).
                return Err(DeliveryError::Retriable(format!(
                    "Paperless: Task {task_id} nach {:?} nicht fertig",
                    self.s.poll_timeout
                )));
            }
            tokio::time::sleep(self.s.poll_interval).await;
        }
    }

    async fn duplicate(&self, result: &str, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        // "... It is a duplicate of <title> (#<id>)."
        let id = result
            .rsplit("(#")
            .next()
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.trim().parse::<u64>().ok());
        let id = match id {
            Some(i) => Some(i),
            None => self.find_existing(item).await?,
        };
        if let Some(i) = id {
            self.reconcile(i, item).await?;
        }
        Ok(Receipt {
            reference: id
                .map(|i| self.reference(i))
                .unwrap_or_else(|| format!("{}/api/documents/ (Duplikat)", self.s.base_url)),
            already_present: true,
        })
    }
}

impl Delivery for PaperlessTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, item: &'a DeliveryItem) -> DeliveryFuture<'a> {
        Box::pin(self.run(item))
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(self.check_async())
    }
}
