//! Generic REST target for a DMS without a dedicated connector: method, URL, fields and
//! headers are templates over the document's fields (see [`super::fields`]).
//!
//! Idempotency comes from the configuration: either the URL names the document
//! (`PUT .../{document_id}`), or `exists_url` is asked first (200 = present, 404 = not), and a
//! `409 Conflict` on create is taken as "already there".

mod settings;
pub use settings::{RawRest, RestAuth, RestBody, RestSettings};

use super::http;
use super::{
    BuildError, CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt,
    fields,
};
use base64::Engine as _;
use reqwest::StatusCode;

/// Generic REST target.
#[derive(Debug)]
pub struct RestTarget {
    name: String,
    s: RestSettings,
    client: reqwest::Client,
}

impl RestTarget {
    /// A target with these settings; fails when its HTTP client cannot be built.
    pub fn new(name: &str, s: RestSettings) -> Result<Self, BuildError> {
        let client = http::client(s.timeout).map_err(|e| BuildError::new(name, e))?;
        Ok(Self {
            name: name.to_string(),
            s,
            client,
        })
    }

    fn authed(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.s.auth {
            RestAuth::None => r,
            RestAuth::Bearer(t) => r.bearer_auth(t.expose()),
            RestAuth::Basic(u, p) => r.basic_auth(u, Some(p.expose())),
            RestAuth::Header(h, v) => r.header(h, v.expose()),
        }
    }

    /// Health check. With `health_url`: a GET with our authentication (and the headers that
    /// are no templates) must answer 2xx. Without: a GET of the base of `url` (scheme, host,
    /// port) must get an answer that is neither 401/403 (credentials refused) nor a failure
    /// worth retrying (5xx, 408, 429); any other answer shows the server is there.
    async fn check_async(&self) -> Result<(), DeliveryError> {
        let (url, strict) = match &self.s.health_url {
            Some(u) => (u.clone(), true),
            None => {
                let base = reqwest::Url::parse(&self.s.url)
                    .and_then(|u| u.join("/"))
                    .map_err(|e| DeliveryError::Permanent(format!("REST: url: {e}")))?;
                (base.to_string(), false)
            }
        };
        let mut req = self.authed(self.client.get(&url));
        for (k, v) in &self.s.headers {
            if !v.contains('{') {
                req = req.header(k, v);
            }
        }
        let what = format!("REST: Prüfung {url}");
        let resp = http::send(&what, req).await?;
        let status = resp.status();
        if status.is_success()
            || !(strict
                || status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN
                || http::is_retriable(status))
        {
            return Ok(());
        }
        Err(http::error_of(&what, resp).await)
    }

    fn req(
        &self,
        m: reqwest::Method,
        url: &str,
        item: &DeliveryItem,
    ) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let mut r = self.client.request(m, url);
        for (k, v) in &self.s.headers {
            r = r.header(k, fields::render(v, item));
        }
        Ok(self.authed(r))
    }

    fn url(&self, t: &str, item: &DeliveryItem) -> String {
        fields::render_with(t, item, fields::percent_encode)
    }

    async fn run(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        if let Some(t) = &self.s.exists_url {
            let url = self.url(t, item);
            let resp =
                http::send("REST: Prüfung", self.req(reqwest::Method::GET, &url, item)?).await?;
            if resp.status() != StatusCode::NOT_FOUND {
                let resp = http::check("REST: Prüfung", resp).await?;
                return Ok(Receipt {
                    reference: self.reference(resp).await.unwrap_or(url),
                    already_present: true,
                });
            }
        }
        let url = self.url(&self.s.url, item);
        let method = reqwest::Method::from_bytes(self.s.method.as_bytes())
            .map_err(|e| DeliveryError::Permanent(format!("method: {e}")))?;
        let mut req = self.req(method, &url, item)?;
        let values: Vec<(String, String)> = self
            .s
            .fields
            .iter()
            .map(|(k, t)| (k.clone(), fields::render(t, item)))
            .collect();
        req = match self.s.body {
            RestBody::Multipart => {
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in values {
                    form = form.text(k, v);
                }
                let part = reqwest::multipart::Part::bytes(item.bytes.clone())
                    .file_name(fields::render("{file_name}", item))
                    .mime_str(&item.media_type)
                    .map_err(|e| DeliveryError::Permanent(format!("media type: {e}")))?;
                req.multipart(form.part(self.s.file_field.clone(), part))
            }
            RestBody::Json => {
                let mut obj: serde_json::Map<String, serde_json::Value> =
                    values.into_iter().map(|(k, v)| (k, v.into())).collect();
                obj.insert(
                    self.s.file_field.clone(),
                    base64::engine::general_purpose::STANDARD
                        .encode(&item.bytes)
                        .into(),
                );
                req.json(&obj)
            }
            RestBody::Raw => req
                .header("Content-Type", item.media_type.clone())
                .body(item.bytes.clone()),
        };
        let resp = http::send("REST: Ablage", req).await?;
        if resp.status() == StatusCode::CONFLICT {
            return Ok(Receipt {
                reference: url,
                already_present: true,
            });
        }
        let resp = http::check("REST: Ablage", resp).await?;
        Ok(Receipt {
            reference: self.reference(resp).await.unwrap_or(url),
            already_present: false,
        })
    }

    async fn reference(&self, resp: reqwest::Response) -> Option<String> {
        if let Some(h) = self.s.reference.strip_prefix("header:") {
            let base = resp.url().to_string();
            return http::header(&resp, h).map(|l| http::absolute(&base, &l));
        }
        let v: serde_json::Value = resp.json().await.ok()?;
        match v.pointer(&self.s.reference)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

impl Delivery for RestTarget {
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
