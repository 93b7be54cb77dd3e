//! `kind = "rest"`: any DMS with an HTTP upload, described by templates. `secret` comes from
//! the environment or `secret_file` (the one secret rule, see [`crate::config::secret`]).

use super::RestTarget;
use crate::config::secret::Secret;
use crate::deliver::{BuildError, ConnectorSettings, Delivery, TargetCheck};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn default_timeout() -> u64 {
    30
}

/// `[deliver.targets.NAME] kind = "rest"` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRest {
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
    /// Only from the environment (refused in the file).
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
    /// URL of the health check (GET with the target's authentication, 2xx = healthy).
    #[serde(default)]
    health_url: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
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
    /// Health check URL; without it the check asks the base (scheme, host and port) of `url`.
    pub health_url: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

impl ConnectorSettings for RestSettings {
    const KIND: &'static str = "rest";
    type Raw = RawRest;

    fn validate(r: RawRest, check: &mut TargetCheck<'_>) -> Self {
        let method = r.method.unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
        if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            check.push(
                "method",
                format!("method \"{method}\" is not POST, PUT or PATCH"),
                None,
            );
        }
        check.url("url", &r.url);
        check.template("url", &r.url);
        if let Some(u) = &r.exists_url {
            check.template("exists_url", u);
        }
        if let Some(u) = &r.health_url {
            check.url("health_url", u);
            if u.contains('{') {
                check.push(
                    "health_url",
                    "health_url is a plain URL, not a template",
                    Some("e.g. https://dms.example.org/api/health".into()),
                );
            }
        }
        for t in r.fields.values().chain(r.headers.values()) {
            check.template("fields", t);
        }
        let body = match r.body.as_deref().unwrap_or("multipart") {
            "multipart" => RestBody::Multipart,
            "json" => RestBody::Json,
            "raw" => RestBody::Raw,
            other => {
                check.push(
                    "body",
                    format!("body \"{other}\" is unknown"),
                    Some("multipart, json or raw".into()),
                );
                RestBody::Multipart
            }
        };
        let secret = check
            .secret("secret", r.secret.as_deref(), r.secret_file.as_deref())
            .unwrap_or_default();
        let auth = match r.auth.as_deref().unwrap_or("none") {
            "none" => RestAuth::None,
            "bearer" => RestAuth::Bearer(secret),
            "basic" => RestAuth::Basic(r.username.clone().unwrap_or_default(), secret),
            "header" => match &r.auth_header {
                Some(h) => RestAuth::Header(h.clone(), secret),
                None => {
                    check.push("auth", "auth = \"header\" needs auth_header", None);
                    RestAuth::None
                }
            },
            other => {
                check.push(
                    "auth",
                    format!("auth \"{other}\" is unknown"),
                    Some("none, bearer, basic or header".into()),
                );
                RestAuth::None
            }
        };
        let reference = r.reference.unwrap_or_else(|| "header:Location".into());
        if !(reference.starts_with("header:") || reference.starts_with('/')) {
            check.push(
                "reference",
                "reference must be header:NAME or a JSON pointer like /id",
                None,
            );
        }
        Self {
            method,
            url: r.url,
            body,
            fields: r.fields,
            file_field: r.file_field.unwrap_or_else(|| match body {
                RestBody::Json => "content_base64".into(),
                _ => "file".into(),
            }),
            headers: r.headers,
            auth,
            exists_url: r.exists_url,
            reference,
            health_url: r.health_url,
            timeout: TargetCheck::timeout(r.timeout_secs),
        }
    }

    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        Ok(Arc::new(RestTarget::new(name, self.clone())?))
    }
}
