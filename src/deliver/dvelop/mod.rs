//! d.velop documents over the DMS App API and the Identity Provider App (d.velop developer
//! documentation, "DMS App API" and "Identity Provider App API", cloud/on-premises 2024+).
//!
//! 1. `GET /identityprovider/login` with `Authorization: Bearer <API key>` -> `authSessionId`,
//!    used as the bearer token from then on (renewed once on 401).
//! 2. Idempotency: `GET /dms/r/{repo}/srm?sourceid=..&sourceproperties={"<key>":["<our id>"]}`;
//!    a hit means the document is already filed.
//! 3. `POST /dms/r/{repo}/blob/chunk/` (binary, `application/octet-stream`) -> `Location`.
//! 4. `POST /dms/r/{repo}/o2m` (JSON: `filename`, `sourceCategory`, `sourceId`,
//!    `contentLocationUri`, `sourceProperties.properties[{key, values}]`) -> `Location` of the
//!    new document.
//! 5. Optionally a task in the department's Postkorb: `POST /task/tasks` with `subject`,
//!    `assignees`, `correlationKey` (our document id: a second create is refused with 409 and
//!    counts as done) and `dmsReferences`. A document with a clerk whose id `clerk_assignees`
//!    maps gets the clerk's assignees instead of the mailbox's (`clerk_task = "also"`: both);
//!    a task is created once, so a later change of clerk does not move an existing task.

mod settings;
pub use settings::{ClerkTask, DvelopSettings, RawDvelop};

use super::http;
use super::{
    BuildError, CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt,
    fields,
};
use serde::Deserialize;
use tokio::sync::Mutex;

/// d.velop target.
#[derive(Debug)]
pub struct DvelopTarget {
    name: String,
    s: DvelopSettings,
    client: reqwest::Client,
    auth: Mutex<Option<String>>,
}

#[derive(Debug, Deserialize)]
struct Login {
    #[serde(rename = "authSessionId")]
    token: String,
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    #[serde(default)]
    items: Vec<SearchItem>,
}

#[derive(Debug, Deserialize)]
struct SearchItem {
    id: String,
    #[serde(default, rename = "_links")]
    links: Option<serde_json::Value>,
    #[serde(default, rename = "sourceProperties")]
    source_properties: Vec<SearchProperty>,
}

#[derive(Debug, Deserialize)]
struct SearchProperty {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

impl DvelopTarget {
    /// A target with these settings; fails when its HTTP client cannot be built.
    pub fn new(name: &str, s: DvelopSettings) -> Result<Self, BuildError> {
        let client = http::client(s.timeout).map_err(|e| BuildError::new(name, e))?;
        Ok(Self {
            name: name.to_string(),
            s,
            client,
            auth: Mutex::new(None),
        })
    }

    /// Health check: a fresh login with the API key, then the repository
    /// (`GET /dms/r/{repo}`).
    async fn check_async(&self) -> Result<(), DeliveryError> {
        self.auth_token(true).await?;
        let url = self.url(&format!("/dms/r/{}", self.s.repository));
        let resp = self
            .send("d.velop: Repository", |c| {
                c.get(&url).header("Accept", "application/hal+json")
            })
            .await?;
        http::check("d.velop: Repository", resp).await.map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.s.base_url)
    }

    async fn auth_token(&self, renew: bool) -> Result<String, DeliveryError> {
        let mut g = self.auth.lock().await;
        if let (Some(s), false) = (g.as_ref(), renew) {
            return Ok(s.clone());
        }
        let req = self
            .client
            .get(self.url("/identityprovider/login"))
            .bearer_auth(self.s.api_key.expose())
            .header("Accept", "application/json");
        let resp = http::send_ok("d.velop: Anmeldung", req).await?;
        let login: Login = http::json("d.velop: Anmeldung", resp).await?;
        *g = Some(login.token.clone());
        Ok(login.token)
    }

    /// Sends with the login token; on 401 logs in again once.
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, DeliveryError> {
        let mut renew = false;
        loop {
            let token = self.auth_token(renew).await?;
            // Writing requests must name their origin (the DMS app's CSRF check).
            let req = build(&self.client)
                .bearer_auth(&token)
                .header("Origin", &self.s.base_url);
            let resp = http::send(what, req).await?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Ok(resp);
        }
    }

    fn id_key(&self) -> &str {
        self.s
            .properties
            .get("document_id")
            .map(String::as_str)
            .unwrap_or_default()
    }

    async fn find_existing(&self, item: &DeliveryItem) -> Result<Option<String>, DeliveryError> {
        let mut props = serde_json::Map::new();
        props.insert(
            self.id_key().to_string(),
            serde_json::json!([item.document_id.as_str()]),
        );
        let props = serde_json::Value::Object(props).to_string();
        let categories = serde_json::json!([self.s.category]).to_string();
        let url = self.url(&format!("/dms/r/{}/srm", self.s.repository));
        let resp = self
            .send("d.velop: Suche", |c| {
                c.get(&url)
                    .header("Accept", "application/hal+json")
                    .query(&[
                        ("sourceid", self.s.source_id.as_str()),
                        ("sourcecategories", categories.as_str()),
                        ("sourceproperties", props.as_str()),
                    ])
            })
            .await?;
        let resp = http::check("d.velop: Suche", resp).await?;
        let found: SearchResult = http::json("d.velop: Suche", resp).await?;
        if let (Some(i), Some(key)) = (found.items.first(), self.s.properties.get("mailbox")) {
            // A document re-assigned after it was filed: the DMS holds it in the old mailbox.
            let filed = i
                .source_properties
                .iter()
                .find(|p| &p.key == key)
                .and_then(|p| p.value.clone());
            if let Some(old) = filed.filter(|m| m != item.mailbox.as_str()) {
                return Err(DeliveryError::Permanent(format!(
                    "Das Dokument liegt in d.velop bereits im Postfach {old} (Objekt {}); \
                     bitte dort in das Postfach {} umlegen.",
                    i.id, item.mailbox
                )));
            }
        }
        Ok(found.items.first().map(|i| {
            i.links
                .as_ref()
                .and_then(|l| l.pointer("/self/href"))
                .and_then(|h| h.as_str())
                .map(|h| http::absolute(&self.s.base_url, h))
                .unwrap_or_else(|| self.url(&format!("/dms/r/{}/o2/{}", self.s.repository, i.id)))
        }))
    }

    fn properties(&self, item: &DeliveryItem) -> Vec<serde_json::Value> {
        self.s
            .properties
            .iter()
            .filter_map(|(field, key)| {
                let values = fields::values(item, field);
                (!values.is_empty()).then(|| serde_json::json!({"key": key, "values": values}))
            })
            .collect()
    }

    async fn create(&self, item: &DeliveryItem) -> Result<String, DeliveryError> {
        let chunk_url = self.url(&format!("/dms/r/{}/blob/chunk/", self.s.repository));
        let resp = self
            .send("d.velop: Upload", |c| {
                c.post(&chunk_url)
                    .header("Content-Type", "application/octet-stream")
                    .body(item.bytes.clone())
            })
            .await?;
        let resp = http::check("d.velop: Upload", resp).await?;
        let content = http::header(&resp, "Location").ok_or_else(|| {
            DeliveryError::Retriable("d.velop: Upload ohne Location-Header".into())
        })?;
        let body = serde_json::json!({
            "filename": fields::render(&self.s.file_name, item),
            "sourceCategory": self.s.category,
            "sourceId": self.s.source_id,
            "contentLocationUri": content,
            "sourceProperties": { "properties": self.properties(item) },
        });
        let o2m = self.url(&format!("/dms/r/{}/o2m", self.s.repository));
        let resp = self
            .send("d.velop: Ablage", |c| {
                c.post(&o2m)
                    .header("Content-Type", "application/hal+json")
                    .header("Accept", "application/hal+json")
                    .json(&body)
            })
            .await?;
        let resp = http::check("d.velop: Ablage", resp).await?;
        let loc = http::header(&resp, "Location").ok_or_else(|| {
            DeliveryError::Retriable("d.velop: Ablage ohne Location-Header".into())
        })?;
        Ok(http::absolute(&self.s.base_url, &loc))
    }

    /// The task's assignees: the clerk's when `clerk_assignees` names them (with the
    /// mailbox's too for `clerk_task = "also"`), else the mailbox's.
    fn assignees(&self, item: &DeliveryItem) -> Vec<String> {
        let mailbox = self.s.task_assignees.get(item.mailbox.as_str());
        let clerk = item
            .clerk
            .as_ref()
            .and_then(|c| self.s.clerk_assignees.get(&c.id));
        let mut out: Vec<String> = match (clerk, self.s.clerk_task) {
            (Some(c), ClerkTask::Instead) => c.clone(),
            (Some(c), ClerkTask::Also) => c.iter().chain(mailbox.into_iter().flatten()).cloned().collect(),
            (None, _) => mailbox.cloned().unwrap_or_default(),
        };
        let mut seen = std::collections::HashSet::new();
        out.retain(|a| seen.insert(a.clone()));
        out
    }

    async fn task(&self, item: &DeliveryItem, doc_url: &str) -> Result<(), DeliveryError> {
        let assignees = self.assignees(item);
        if assignees.is_empty() {
            return Ok(());
        }
        let object_id = doc_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        let body = serde_json::json!({
            "subject": fields::render(&self.s.task_subject, item),
            "assignees": assignees,
            "correlationKey": item.document_id.as_str(),
            "dmsReferences": [{ "repoId": self.s.repository, "objectId": object_id }],
            "_links": { "attachment": { "href": doc_url } },
        });
        let url = self.url("/task/tasks");
        let resp = self
            .send("d.velop: Aufgabe", |c| {
                c.post(&url)
                    .header("Content-Type", "application/json")
                    .json(&body)
            })
            .await?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Ok(()); // a task with this correlation key exists
        }
        http::check("d.velop: Aufgabe", resp).await.map(|_| ())
    }

    async fn run(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        let (reference, already_present) = match self.find_existing(item).await? {
            Some(r) => (r, true),
            None => (self.create(item).await?, false),
        };
        // Also on a retried delivery: the task may be what failed last time.
        self.task(item, &reference).await?;
        Ok(Receipt {
            reference,
            already_present,
        })
    }
}

impl Delivery for DvelopTarget {
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
