//! Mayan EDMS 4.x target: one document per poststelle document, filed into the mailbox's
//! cabinet, through the REST API v4 (request shapes as served by Mayan EDMS 4.12,
//! `/api/v4/swagger/`).
//!
//! A delivery runs these idempotent steps, each of which first looks at what Mayan already has:
//!
//! 1. find the document whose label is our document id (search API, then the newest documents
//!    straight from the database, since the search index is updated in the background); create
//!    it with the configured document type when there is none (`POST /api/v4/documents/`);
//! 2. when it has no file yet, upload ours (`POST /api/v4/documents/{id}/files/`, multipart
//!    `file_new` + `action_name`), then wait until Mayan's workers have stored it: the document
//!    counts as delivered only once Mayan shows its file;
//! 3. add it to the mailbox's cabinet (`POST /api/v4/cabinets/{id}/documents/add/`) and remove
//!    it from the cabinets of other mailboxes (a forward is a move); a document with a clerk
//!    also goes into the clerk's cabinet, a cabinet inside the mailbox's (`POST
//!    /api/v4/cabinets/` with `parent`, labelled with the clerk's name or `clerk_cabinets`),
//!    and out of other clerks' cabinets inside mailbox cabinets.
//!
//! A retried delivery therefore never creates a second document. One gap remains: when an
//! upload was accepted but Mayan's workers did not process it within `file_wait`, the retry
//! uploads again after waiting once more, which can leave a second file (not a second
//! document) once the workers catch up.

mod settings;
pub use settings::{MayanAuth, MayanRef, MayanSettings, RawMayan};

use super::{
    BuildError, CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt, http,
};
use crate::domain::MailboxId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Pages read at most when listing (document types, cabinets): 100 pages of 100.
const MAX_PAGES: u32 = 100;
/// Newest documents scanned when the search index does not know a document yet.
const RECENT_DOCUMENTS: u32 = 100;
/// Interval between looks at a document's files while Mayan processes an upload.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Mayan EDMS 4.x target.
#[derive(Debug)]
pub struct MayanTarget {
    name: String,
    settings: MayanSettings,
    api: String,
    http: reqwest::Client,
    resolved: tokio::sync::Mutex<Resolved>,
}

/// Ids looked up by label, kept for the life of the process.
#[derive(Debug, Default)]
struct Resolved {
    document_type: Option<u64>,
    cabinets: HashMap<MailboxId, u64>,
    /// (parent cabinet, label) -> the clerk's cabinet.
    clerk_cabinets: HashMap<(u64, String), u64>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default)]
    next: Option<String>,
    results: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Labelled {
    id: u64,
    label: String,
    #[serde(default)]
    parent_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct FileInfo {
    #[serde(default)]
    checksum: Option<String>,
}

impl MayanTarget {
    /// A target for the Mayan server in `settings`; fails when its HTTP client cannot be
    /// built.
    pub fn new(name: &str, settings: MayanSettings) -> Result<Self, BuildError> {
        let http = http::client(settings.timeout).map_err(|e| BuildError::new(name, e))?;
        Ok(Self {
            name: name.to_string(),
            api: format!("{}/api/v4", settings.url.trim_end_matches('/')),
            settings,
            http,
            resolved: tokio::sync::Mutex::new(Resolved::default()),
        })
    }

    /// Health check: the signed-in user (`GET /api/v4/users/current/`), then the configured
    /// document type (an unknown one is reported now rather than at the first delivery).
    async fn check_async(&self) -> Result<(), DeliveryError> {
        let _: serde_json::Value = self.get_json("/users/current/").await?;
        self.document_type_id().await.map(drop)
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.auth {
            MayanAuth::Basic { user, password } => rb.basic_auth(user, Some(password.expose())),
            MayanAuth::Token(t) => rb.header("Authorization", format!("Token {}", t.expose())),
        }
    }

    /// Sends a request; non-2xx answers become errors.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, DeliveryError> {
        let url = format!("{}{path}", self.api);
        let what = format!("Mayan EDMS {method} {path}");
        let rb = build(self.authed(self.http.request(method, &url)));
        http::check(&what, http::send(&what, rb).await?).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, DeliveryError> {
        let resp = self.send(reqwest::Method::GET, path, |rb| rb).await?;
        decode(path, resp).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, DeliveryError> {
        let resp = self
            .send(reqwest::Method::POST, path, |rb| rb.json(&body))
            .await?;
        decode(path, resp).await
    }

    /// A POST whose answer carries no body worth reading (cabinet add/remove answer 200, empty).
    async fn post_empty(&self, path: &str, body: serde_json::Value) -> Result<(), DeliveryError> {
        self.send(reqwest::Method::POST, path, |rb| rb.json(&body))
            .await
            .map(drop)
    }

    /// Every entry of a paged list (bounded).
    async fn list_all(&self, path: &str) -> Result<Vec<Labelled>, DeliveryError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let sep = if path.contains('?') { '&' } else { '?' };
            let p: Page<Labelled> = self
                .get_json(&format!("{path}{sep}page={page}&page_size=100"))
                .await?;
            all.extend(p.results);
            if p.next.is_none() {
                break;
            }
        }
        Ok(all)
    }

    async fn document_type_id(&self) -> Result<u64, DeliveryError> {
        let label = match &self.settings.document_type {
            MayanRef::Id(id) => return Ok(*id),
            MayanRef::Label(l) => l,
        };
        let mut resolved = self.resolved.lock().await;
        if let Some(id) = resolved.document_type {
            return Ok(id);
        }
        let id = self
            .list_all("/document_types/")
            .await?
            .into_iter()
            .find(|t| &t.label == label)
            .map(|t| t.id)
            .ok_or_else(|| {
                DeliveryError::Permanent(format!(
                    "Mayan EDMS kennt keinen Dokumenttyp \"{label}\"."
                ))
            })?;
        resolved.document_type = Some(id);
        Ok(id)
    }

    fn cabinet_ref(&self, mailbox: &MailboxId, mailbox_name: &str) -> MayanRef {
        self.settings
            .cabinets
            .get(mailbox)
            .cloned()
            .unwrap_or_else(|| MayanRef::Label(mailbox_name.to_string()))
    }

    async fn cabinet_id(
        &self,
        mailbox: &MailboxId,
        mailbox_name: &str,
    ) -> Result<u64, DeliveryError> {
        let label = match self.cabinet_ref(mailbox, mailbox_name) {
            MayanRef::Id(id) => return Ok(id),
            MayanRef::Label(l) => l,
        };
        // Held across the lookup and the creation: one cabinet per label, also under load.
        let mut resolved = self.resolved.lock().await;
        if let Some(id) = resolved.cabinets.get(mailbox) {
            return Ok(*id);
        }
        let existing = self
            .list_all("/cabinets/")
            .await?
            .into_iter()
            .find(|c| c.parent_id.is_none() && c.label == label);
        let id = match existing {
            Some(c) => c.id,
            None if self.settings.create_cabinets => {
                let c: Labelled = self
                    .post_json("/cabinets/", json!({ "label": label, "parent": null }))
                    .await?;
                tracing::info!(
                    target = self.name,
                    cabinet = c.id,
                    label,
                    "Mayan cabinet created"
                );
                c.id
            }
            None => {
                return Err(DeliveryError::Permanent(format!(
                    "Mayan EDMS hat kein Fach (Cabinet) \"{label}\" für Postfach {mailbox}."
                )));
            }
        };
        resolved.cabinets.insert(mailbox.clone(), id);
        Ok(id)
    }

    /// The cabinet of the item's clerk inside the mailbox's cabinet `parent` (looked up by
    /// label among its children, created when missing and allowed), or the id
    /// `clerk_cabinets` names; `None` without a clerk.
    async fn clerk_cabinet_id(
        &self,
        parent: u64,
        item: &DeliveryItem,
    ) -> Result<Option<u64>, DeliveryError> {
        let Some(clerk) = &item.clerk else {
            return Ok(None);
        };
        let label = match self.settings.clerk_cabinets.get(&clerk.id) {
            Some(MayanRef::Id(id)) => return Ok(Some(*id)),
            Some(MayanRef::Label(l)) => l.clone(),
            None => clerk.name.clone(),
        };
        let mut resolved = self.resolved.lock().await;
        let key = (parent, label.clone());
        if let Some(id) = resolved.clerk_cabinets.get(&key) {
            return Ok(Some(*id));
        }
        let existing = self
            .list_all("/cabinets/")
            .await?
            .into_iter()
            .find(|c| c.parent_id == Some(parent) && c.label == label);
        let id = match existing {
            Some(c) => c.id,
            None if self.settings.create_cabinets => {
                let c: Labelled = self
                    .post_json("/cabinets/", json!({ "label": label, "parent": parent }))
                    .await?;
                tracing::info!(target = self.name, cabinet = c.id, parent, label, "Mayan clerk cabinet created");
                c.id
            }
            None => {
                return Err(DeliveryError::Permanent(format!(
                    "Mayan EDMS hat kein Fach (Cabinet) \"{label}\" im Fach des Postfachs {} \
                     für die Sachbearbeitung {}.",
                    item.mailbox, clerk.name
                )));
            }
        };
        resolved.clerk_cabinets.insert(key, id);
        Ok(Some(id))
    }

    /// The Mayan document labelled with our id, if any (lowest id when several).
    async fn find_document(&self, label: &str) -> Result<Option<u64>, DeliveryError> {
        let hits: Page<Labelled> = self
            .get_json(&format!(
                "/search/advanced/documents.documentsearchresult/?label={}&_match_all=on&page_size=100",
                encode(label)
            ))
            .await?;
        if let Some(id) = hits
            .results
            .iter()
            .filter(|d| d.label == label)
            .map(|d| d.id)
            .min()
        {
            return Ok(Some(id));
        }
        // The search index follows in the background: look at the newest documents too.
        let recent: Page<Labelled> = self
            .get_json(&format!(
                "/documents/?_ordering=-id&page_size={RECENT_DOCUMENTS}"
            ))
            .await?;
        Ok(recent
            .results
            .iter()
            .filter(|d| d.label == label)
            .map(|d| d.id)
            .min())
    }

    async fn files(&self, document: u64) -> Result<Vec<FileInfo>, DeliveryError> {
        let p: Page<FileInfo> = self
            .get_json(&format!("/documents/{document}/files/"))
            .await?;
        Ok(p.results)
    }

    /// Waits until the document has a file, up to `file_wait`.
    async fn wait_for_file(&self, document: u64) -> Result<Option<FileInfo>, DeliveryError> {
        let deadline = Instant::now() + self.settings.file_wait;
        loop {
            if let Some(f) = self.files(document).await?.into_iter().next() {
                return Ok(Some(f));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn upload(&self, document: u64, item: &DeliveryItem) -> Result<(), DeliveryError> {
        let path = format!("/documents/{document}/files/");
        let part = reqwest::multipart::Part::bytes(item.bytes.clone())
            .file_name(item.original_name.clone())
            .mime_str(&item.media_type)
            .map_err(|e| DeliveryError::Permanent(format!("MIME-Typ {}: {e}", item.media_type)))?;
        let form = reqwest::multipart::Form::new()
            .text("action_name", "replace")
            .text("filename", item.original_name.clone())
            .text("comment", format!("poststelle {}", item.document_id))
            .part("file_new", part);
        self.send(reqwest::Method::POST, &path, |rb| rb.multipart(form))
            .await?;
        Ok(())
    }

    async fn deliver_async(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        let label = item.document_id.as_str().to_string();
        let document_type = self.document_type_id().await?;
        let cabinet = self.cabinet_id(&item.mailbox, &item.mailbox_name).await?;
        let clerk_cabinet = self.clerk_cabinet_id(cabinet, item).await?;

        let (document, existed) = match self.find_document(&label).await? {
            Some(id) => (id, true),
            None => {
                let created: Labelled = self
                    .post_json(
                        "/documents/",
                        json!({
                            "document_type_id": document_type,
                            "label": label,
                            "description": description(item),
                            "language": "deu",
                        }),
                    )
                    .await?;
                crate::faults::pause_point(crate::faults::points::MAYAN_AFTER_CREATE).await;
                (created.id, false)
            }
        };

        // The file: uploaded once, and the delivery waits until Mayan has stored it.
        let mut file_present = false;
        if existed {
            // A retry may find an upload that Mayan's workers are still processing.
            let files = self.files(document).await?;
            file_present = !files.is_empty() || self.wait_for_file(document).await?.is_some();
        }
        if !file_present {
            self.upload(document, item).await?;
            let Some(file) = self.wait_for_file(document).await? else {
                return Err(DeliveryError::Retriable(format!(
                    "Mayan EDMS hat die Datei von Dokument {document} nach {} s noch nicht verarbeitet",
                    self.settings.file_wait.as_secs()
                )));
            };
            let ours = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&item.bytes));
            if file.checksum.as_deref().is_some_and(|c| c != ours) {
                tracing::warn!(document = %item.document_id, mayan = document, "Mayan file checksum differs from ours");
            }
        }

        // The cabinet: in the mailbox's cabinet, out of every other mailbox's.
        let in_cabinets: Page<Labelled> = self
            .get_json(&format!("/documents/{document}/cabinets/"))
            .await?;
        let mut filed = false;
        let mut with_clerk = clerk_cabinet.is_none();
        for c in &in_cabinets.results {
            if c.id == cabinet {
                filed = true;
            } else if Some(c.id) == clerk_cabinet {
                with_clerk = true;
            } else if self.is_mailbox_cabinet(c).await || self.is_clerk_cabinet(c).await {
                self.post_empty(
                    &format!("/cabinets/{}/documents/remove/", c.id),
                    json!({ "document": document }),
                )
                .await?;
                tracing::info!(document = %item.document_id, from = c.label, "removed from other mailbox's cabinet");
            }
        }
        if !filed {
            self.post_empty(
                &format!("/cabinets/{cabinet}/documents/add/"),
                json!({ "document": document }),
            )
            .await?;
        }
        if let (false, Some(c)) = (with_clerk, clerk_cabinet) {
            self.post_empty(
                &format!("/cabinets/{c}/documents/add/"),
                json!({ "document": document }),
            )
            .await?;
        }
        Ok(Receipt {
            reference: format!("{}/documents/{document}/", self.api),
            already_present: existed && file_present && filed && with_clerk,
        })
    }

    /// Whether a cabinet is a clerk's: inside a mailbox's cabinet, or named by
    /// `clerk_cabinets`.
    async fn is_clerk_cabinet(&self, c: &Labelled) -> bool {
        if self
            .settings
            .clerk_cabinets
            .values()
            .any(|r| *r == MayanRef::Id(c.id))
        {
            return true;
        }
        let Some(parent) = c.parent_id else {
            return false;
        };
        let resolved = self.resolved.lock().await;
        resolved.cabinets.values().any(|id| *id == parent)
            || self
                .settings
                .cabinets
                .values()
                .any(|r| *r == MayanRef::Id(parent))
    }

    /// Whether a cabinet belongs to one of the mailboxes this target files into.
    async fn is_mailbox_cabinet(&self, c: &Labelled) -> bool {
        let resolved = self.resolved.lock().await;
        self.settings.cabinets.iter().any(|(mailbox, r)| match r {
            MayanRef::Id(id) => *id == c.id,
            MayanRef::Label(l) => {
                resolved.cabinets.get(mailbox) == Some(&c.id)
                    || (c.parent_id.is_none() && *l == c.label)
            }
        })
    }
}

impl Delivery for MayanTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, item: &'a DeliveryItem) -> DeliveryFuture<'a> {
        Box::pin(self.deliver_async(item))
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(self.check_async())
    }
}

/// The document's description in Mayan: where it came from and what it is about.
fn description(item: &DeliveryItem) -> String {
    let mut lines = vec![
        format!("Eingang (poststelle {})", item.document_id),
        format!("Originaldatei: {}", item.original_name),
        format!("Postfach: {} {}", item.mailbox, item.mailbox_name),
    ];
    let m = &item.metadata;
    if let Some(s) = &m.subject {
        lines.push(format!("Betreff: {s}"));
    }
    if let Some(s) = &m.sender_name {
        lines.push(format!("Absender: {s}"));
    }
    if let Some(d) = &m.letter_date {
        lines.push(format!("Datum: {d}"));
    }
    if !m.file_references.is_empty() {
        lines.push(format!("Aktenzeichen: {}", m.file_references.join(", ")));
    }
    lines.join("\n")
}

async fn decode<T: DeserializeOwned>(
    path: &str,
    resp: reqwest::Response,
) -> Result<T, DeliveryError> {
    let bytes = resp.bytes().await.map_err(|e| {
        DeliveryError::Retriable(format!("Mayan EDMS {path}: Antwort abgebrochen: {e}"))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        DeliveryError::Permanent(format!("Mayan EDMS {path}: unerwartete Antwort: {e}"))
    })
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("01890a5d-ac96"), "01890a5d-ac96");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
