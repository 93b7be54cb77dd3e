//! Settings of the HTTP delivery targets (d.velop, CMIS browser binding, Paperless-ngx, generic
//! REST): raw `[deliver.targets.NAME]` blocks -> validated [`TargetSettings`](super::TargetSettings)
//! variants. Secrets (API keys, tokens, passwords) come from the environment
//! (`POSTSTELLE__DELIVER__TARGETS__NAME__API_KEY`, ...) or a `*_file` key, never from the file.

use super::Secret;
use crate::deliver::fields;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Keys that hold secrets: refused in the config file itself.
pub(super) const SECRET_KEYS: &[&str] = &["api_key", "token", "password", "secret"];

fn default_timeout() -> u64 {
    30
}

/// `[deliver.targets.NAME] kind = "dvelop"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDvelop {
    base_url: String,
    repository: String,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_key_file: Option<PathBuf>,
    /// `sourceId` of the mapping (default `/dms/r/{repository}/source`).
    #[serde(default)]
    source_id: Option<String>,
    /// `sourceCategory`: the document category key.
    category: String,
    /// Our field -> d.velop property key.
    #[serde(default)]
    properties: BTreeMap<String, String>,
    /// File name template (default `{document_id}.{ext}`).
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    /// Postkorb task per mailbox: mailbox id -> assignees (user or group ids).
    #[serde(default)]
    task_assignees: BTreeMap<String, Vec<String>>,
    /// Task subject template.
    #[serde(default)]
    task_subject: Option<String>,
}

/// `[deliver.targets.NAME] kind = "cmis"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCmis {
    /// The repository's root folder URL in the browser binding, e.g.
    /// `https://host/alfresco/api/-default-/public/cmis/versions/1.1/browser/root`.
    root_url: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    /// Folder path template for mailboxes without an entry in `folders`.
    #[serde(default)]
    folder: Option<String>,
    /// Mailbox id -> folder path.
    #[serde(default)]
    folders: BTreeMap<String, String>,
    /// `cmis:objectTypeId` of created documents.
    #[serde(default)]
    object_type: Option<String>,
    /// `cmis:name` template (default `{document_id}.{ext}`).
    #[serde(default)]
    name: Option<String>,
    /// Our field -> CMIS property id.
    #[serde(default)]
    properties: BTreeMap<String, String>,
    /// Create missing folders (default true).
    #[serde(default)]
    create_folders: Option<bool>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

/// `[deliver.targets.NAME] kind = "paperless"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaperless {
    base_url: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    /// Title template (default `{subject}`, falling back to the file name).
    #[serde(default)]
    title: Option<String>,
    /// Tag ids for every document.
    #[serde(default)]
    tags: Vec<u64>,
    /// Mailbox id -> tag ids (added to `tags`).
    #[serde(default)]
    mailbox_tags: BTreeMap<String, Vec<u64>>,
    #[serde(default)]
    document_type: Option<u64>,
    /// Mailbox id -> document type id.
    #[serde(default)]
    mailbox_document_types: BTreeMap<String, u64>,
    #[serde(default)]
    correspondent: Option<u64>,
    /// Custom field id that stores our document id (for the idempotency look-up).
    #[serde(default)]
    document_id_field: Option<u64>,
    /// Our field -> custom field id.
    #[serde(default)]
    custom_fields: BTreeMap<String, u64>,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    poll_timeout_secs: Option<u64>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

/// `[deliver.targets.NAME] kind = "rest"`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRest {
    #[serde(default)]
    method: Option<String>,
    url: String,
    /// `multipart` (default), `json` or `raw`.
    #[serde(default)]
    body: Option<String>,
    /// Field name -> template.
    #[serde(default)]
    fields: BTreeMap<String, String>,
    /// Multipart: name of the file part (default `file`); JSON: name of the base64 field
    /// (default `content_base64`).
    #[serde(default)]
    file_field: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `none` (default), `bearer`, `basic`, `header`.
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    auth_header: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// GET template answering 200 when the document is already there, 404 when not.
    #[serde(default)]
    exists_url: Option<String>,
    /// Where the reference is: `header:NAME` or a JSON pointer `/id` (default `header:Location`).
    #[serde(default)]
    reference: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

/// Validated d.velop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DvelopSettings {
    /// Base URL of the tenant, without a trailing slash.
    pub base_url: String,
    /// Repository id.
    pub repository: String,
    /// API key (login).
    pub api_key: Secret,
    /// `sourceId`.
    pub source_id: String,
    /// `sourceCategory`.
    pub category: String,
    /// Our field -> property key; must contain `document_id`.
    pub properties: BTreeMap<String, String>,
    /// File name template.
    pub file_name: String,
    /// Request timeout.
    pub timeout: Duration,
    /// Mailbox id -> task assignees.
    pub task_assignees: BTreeMap<String, Vec<String>>,
    /// Task subject template.
    pub task_subject: String,
}

/// Validated CMIS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CmisSettings {
    /// Root folder URL (browser binding), without a trailing slash.
    pub root_url: String,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Secret,
    /// Folder template.
    pub folder: String,
    /// Mailbox id -> folder path.
    pub folders: BTreeMap<String, String>,
    /// `cmis:objectTypeId`.
    pub object_type: String,
    /// `cmis:name` template.
    pub name: String,
    /// Our field -> property id.
    pub properties: BTreeMap<String, String>,
    /// Create missing folders.
    pub create_folders: bool,
    /// Request timeout.
    pub timeout: Duration,
}

/// Validated Paperless-ngx settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperlessSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// API token.
    pub token: Secret,
    /// Title template.
    pub title: String,
    /// Tags for every document.
    pub tags: Vec<u64>,
    /// Extra tags per mailbox.
    pub mailbox_tags: BTreeMap<String, Vec<u64>>,
    /// Default document type.
    pub document_type: Option<u64>,
    /// Document type per mailbox.
    pub mailbox_document_types: BTreeMap<String, u64>,
    /// Correspondent id.
    pub correspondent: Option<u64>,
    /// Custom field holding our document id.
    pub document_id_field: Option<u64>,
    /// Our field -> custom field id.
    pub custom_fields: BTreeMap<String, u64>,
    /// Task polling interval.
    pub poll_interval: Duration,
    /// How long to wait for the consumer before retrying later.
    pub poll_timeout: Duration,
    /// Request timeout.
    pub timeout: Duration,
}

/// Body kinds of the generic REST target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestBody {
    /// multipart/form-data: fields plus a file part.
    Multipart,
    /// application/json: fields plus the content in base64.
    Json,
    /// The document's bytes as the body, fields ignored.
    Raw,
}

/// Authentication of the generic REST target.
#[derive(Debug, Clone, PartialEq)]
pub enum RestAuth {
    /// None.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
    /// HTTP basic auth.
    Basic(String, Secret),
    /// `<header>: <secret>`.
    Header(String, Secret),
}

/// Validated generic REST settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RestSettings {
    /// HTTP method.
    pub method: String,
    /// URL template.
    pub url: String,
    /// Body kind.
    pub body: RestBody,
    /// Field templates.
    pub fields: BTreeMap<String, String>,
    /// File part / base64 field name.
    pub file_field: String,
    /// Header templates.
    pub headers: BTreeMap<String, String>,
    /// Authentication.
    pub auth: RestAuth,
    /// Existence check URL template.
    pub exists_url: Option<String>,
    /// `header:NAME` or a JSON pointer.
    pub reference: String,
    /// Request timeout.
    pub timeout: Duration,
}

/// Collects problems for one target block.
pub(super) struct Check<'a> {
    pub name: &'a str,
    pub problems: Vec<(String, String, Option<String>)>,
}

impl Check<'_> {
    fn push(&mut self, needle: &str, msg: String, hint: Option<String>) {
        self.problems.push((
            needle.to_string(),
            format!("deliver.targets.{}: {msg}", self.name),
            hint,
        ));
    }

    fn secret(&mut self, value: &Option<String>, file: &Option<PathBuf>, key: &str) -> Secret {
        if let Some(f) = file {
            match std::fs::read_to_string(f) {
                Ok(s) => return Secret::new(s.trim()),
                Err(e) => self.push(
                    &format!("{key}_file"),
                    format!("{key}_file {}: {e}", f.display()),
                    None,
                ),
            }
        }
        match value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => Secret::new(v),
            None => Secret::default(),
        }
    }

    fn url(&mut self, key: &str, url: &str) -> String {
        let u = url.trim_end_matches('/').to_string();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            self.push(
                key,
                format!("{key} \"{url}\" is not an http(s) URL"),
                Some("e.g. https://dms.example.org".into()),
            );
        }
        u
    }

    fn template(&mut self, key: &str, t: &str) {
        if let Err(bad) = fields::check_template(t) {
            self.push(
                key,
                format!("{key}: unknown placeholder {{{bad}}}"),
                Some(format!("known: {}", fields::NAMES.join(", "))),
            );
        }
    }

    fn field_names<'k>(&mut self, key: &str, names: impl Iterator<Item = &'k String>) {
        for n in names {
            if !fields::NAMES.contains(&n.as_str()) {
                let known: Vec<&str> = fields::NAMES.to_vec();
                let hint = super::suggest(n, &known)
                    .unwrap_or_else(|| format!("known: {}", fields::NAMES.join(", ")));
                self.push(key, format!("{key}: unknown field \"{n}\""), Some(hint));
            }
        }
    }

    fn timeout(secs: u64) -> Duration {
        Duration::from_secs(secs.max(1))
    }

    pub(super) fn dvelop(&mut self, r: &RawDvelop) -> DvelopSettings {
        let api_key = self.secret(&r.api_key, &r.api_key_file, "api_key");
        if api_key.is_empty() && r.api_key_file.is_none() {
            self.push(
                "kind = \"dvelop\"",
                "no API key".into(),
                Some(format!(
                    "set POSTSTELLE__DELIVER__TARGETS__{}__API_KEY or api_key_file",
                    self.name.to_ascii_uppercase()
                )),
            );
        }
        self.field_names("properties", r.properties.keys());
        if !r.properties.contains_key("document_id") {
            self.push(
                "properties",
                "properties must map document_id (the idempotency key) to a property key".into(),
                Some("e.g. properties = { document_id = \"12\", subject = \"2\" }".into()),
            );
        }
        let file_name = r
            .file_name
            .clone()
            .unwrap_or_else(|| "{document_id}.{ext}".into());
        self.template("file_name", &file_name);
        let task_subject = r
            .task_subject
            .clone()
            .unwrap_or_else(|| "Posteingang {mailbox_name}: {title}".into());
        self.template("task_subject", &task_subject);
        DvelopSettings {
            base_url: self.url("base_url", &r.base_url),
            repository: r.repository.clone(),
            api_key,
            source_id: r
                .source_id
                .clone()
                .unwrap_or_else(|| format!("/dms/r/{}/source", r.repository)),
            category: r.category.clone(),
            properties: r.properties.clone(),
            file_name,
            timeout: Self::timeout(r.timeout_secs),
            task_assignees: r.task_assignees.clone(),
            task_subject,
        }
    }

    pub(super) fn cmis(&mut self, r: &RawCmis) -> CmisSettings {
        let password = self.secret(&r.password, &r.password_file, "password");
        self.field_names("properties", r.properties.keys());
        let folder = r
            .folder
            .clone()
            .unwrap_or_else(|| "/Poststelle/{mailbox}".into());
        self.template("folder", &folder);
        for f in r.folders.values() {
            self.template("folders", f);
        }
        let name = r
            .name
            .clone()
            .unwrap_or_else(|| "{document_id}.{ext}".into());
        self.template("name", &name);
        if !name.contains("{document_id}") {
            self.push(
                "name",
                "name must contain {document_id} (the idempotency key)".into(),
                None,
            );
        }
        CmisSettings {
            root_url: self.url("root_url", &r.root_url),
            username: r.username.clone(),
            password,
            folder,
            folders: r.folders.clone(),
            object_type: r
                .object_type
                .clone()
                .unwrap_or_else(|| "cmis:document".into()),
            name,
            properties: r.properties.clone(),
            create_folders: r.create_folders.unwrap_or(true),
            timeout: Self::timeout(r.timeout_secs),
        }
    }

    pub(super) fn paperless(&mut self, r: &RawPaperless) -> PaperlessSettings {
        let token = self.secret(&r.token, &r.token_file, "token");
        if token.is_empty() && r.token_file.is_none() {
            self.push(
                "kind = \"paperless\"",
                "no API token".into(),
                Some(format!(
                    "set POSTSTELLE__DELIVER__TARGETS__{}__TOKEN or token_file",
                    self.name.to_ascii_uppercase()
                )),
            );
        }
        self.field_names("custom_fields", r.custom_fields.keys());
        let title = r.title.clone().unwrap_or_else(|| "{title}".into());
        self.template("title", &title);
        PaperlessSettings {
            base_url: self.url("base_url", &r.base_url),
            token,
            title,
            tags: r.tags.clone(),
            mailbox_tags: r.mailbox_tags.clone(),
            document_type: r.document_type,
            mailbox_document_types: r.mailbox_document_types.clone(),
            correspondent: r.correspondent,
            document_id_field: r.document_id_field,
            custom_fields: r.custom_fields.clone(),
            poll_interval: Duration::from_millis(r.poll_interval_ms.unwrap_or(1000).max(10)),
            poll_timeout: Duration::from_secs(r.poll_timeout_secs.unwrap_or(300).max(1)),
            timeout: Self::timeout(r.timeout_secs),
        }
    }

    pub(super) fn rest(&mut self, r: &RawRest) -> RestSettings {
        let method = r
            .method
            .clone()
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase();
        if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            self.push(
                "method",
                format!("method \"{method}\" is not POST, PUT or PATCH"),
                None,
            );
        }
        self.url("url", &r.url);
        self.template("url", &r.url);
        if let Some(u) = &r.exists_url {
            self.template("exists_url", u);
        }
        for t in r.fields.values().chain(r.headers.values()) {
            self.template("fields", t);
        }
        let body = match r.body.as_deref().unwrap_or("multipart") {
            "multipart" => RestBody::Multipart,
            "json" => RestBody::Json,
            "raw" => RestBody::Raw,
            other => {
                self.push(
                    "body",
                    format!("body \"{other}\" is unknown"),
                    Some("multipart, json or raw".into()),
                );
                RestBody::Multipart
            }
        };
        let secret = self.secret(&r.secret, &r.secret_file, "secret");
        let auth = match r.auth.as_deref().unwrap_or("none") {
            "none" => RestAuth::None,
            "bearer" => RestAuth::Bearer(secret),
            "basic" => RestAuth::Basic(r.username.clone().unwrap_or_default(), secret),
            "header" => match &r.auth_header {
                Some(h) => RestAuth::Header(h.clone(), secret),
                None => {
                    self.push("auth", "auth = \"header\" needs auth_header".into(), None);
                    RestAuth::None
                }
            },
            other => {
                self.push(
                    "auth",
                    format!("auth \"{other}\" is unknown"),
                    Some("none, bearer, basic or header".into()),
                );
                RestAuth::None
            }
        };
        let reference = r
            .reference
            .clone()
            .unwrap_or_else(|| "header:Location".into());
        if !(reference.starts_with("header:") || reference.starts_with('/')) {
            self.push(
                "reference",
                "reference must be header:NAME or a JSON pointer like /id".into(),
                None,
            );
        }
        RestSettings {
            method,
            url: r.url.clone(),
            body,
            fields: r.fields.clone(),
            file_field: r.file_field.clone().unwrap_or_else(|| match body {
                RestBody::Json => "content_base64".into(),
                _ => "file".into(),
            }),
            headers: r.headers.clone(),
            auth,
            exists_url: r.exists_url.clone(),
            reference,
            timeout: Self::timeout(r.timeout_secs),
        }
    }
}
