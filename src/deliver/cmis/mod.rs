//! CMIS 1.1 over the browser binding (OASIS "Content Management Interoperability Services
//! (CMIS) Version 1.1", Plus Errata 01, 2015, part II section 5 "Browser Binding").
//!
//! Objects are addressed by path below the repository's root folder URL (5.3.2 "Object URL").
//! Idempotency: the document's `cmis:name` contains our document id, so a look-up by path
//! (`GET <root>/<folder>/<name>?cmisselector=object&succinct=true`, 5.4.1) tells whether it is
//! already filed; `404` with `"exception":"objectNotFound"` means it is not. Creation is a
//! `multipart/form-data` POST to the folder's URL (5.4.2, 5.4.4) with `cmisaction=createDocument`,
//! `propertyId[i]`/`propertyValue[i]` (multi-valued: `propertyValue[i][j]`), `succinct=true` and
//! the `content` part; the server answers `201 Created` with the new object as JSON. A
//! `409 nameConstraintViolation` (another attempt got there first) is looked up again. Missing
//! folders are created level by level with `cmisaction=createFolder`. A document re-assigned
//! to another mailbox is found by a query on its name and moved (`cmisaction=move`).
//! A document with a clerk lies in a subfolder of its mailbox's folder named after the clerk
//! (`clerk_folders`, else the clerk's name; off with `clerk_subfolders = false`); a new clerk
//! moves it the same way.

mod settings;
pub use settings::{CmisSettings, RawCmis};

use super::http;
use super::{
    BuildError, CheckFuture, Delivery, DeliveryError, DeliveryFuture, DeliveryItem, Receipt,
    fields,
};
use reqwest::StatusCode;

/// CMIS browser binding target.
#[derive(Debug)]
pub struct CmisTarget {
    name: String,
    s: CmisSettings,
    client: reqwest::Client,
}

enum Lookup {
    Found(String),
    Missing,
}

impl CmisTarget {
    /// A target with these settings; fails when its HTTP client cannot be built.
    pub fn new(name: &str, s: CmisSettings) -> Result<Self, BuildError> {
        let client = http::client(s.timeout).map_err(|e| BuildError::new(name, e))?;
        Ok(Self {
            name: name.to_string(),
            s,
            client,
        })
    }

    fn req(&self, m: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let r = self.client.request(m, url);
        Ok(match &self.s.username {
            Some(u) => r.basic_auth(u, Some(self.s.password.expose())),
            None => r,
        })
    }

    /// Health check: the repository's info (`<repository URL>?cmisselector=repositoryInfo`,
    /// 5.3.1) when the root URL ends in `/root`, else the root folder object.
    async fn check_async(&self) -> Result<(), DeliveryError> {
        let req = match self.s.root_url.strip_suffix("/root") {
            Some(repo_url) => self
                .req(reqwest::Method::GET, repo_url)?
                .query(&[("cmisselector", "repositoryInfo")]),
            None => self
                .req(reqwest::Method::GET, &self.s.root_url)?
                .query(&[("cmisselector", "object"), ("succinct", "true")]),
        };
        let resp = http::send_ok("CMIS: getRepositoryInfo", req).await?;
        let _: serde_json::Value = http::json("CMIS: getRepositoryInfo", resp).await?;
        Ok(())
    }

    /// Folder path segments for the item's mailbox (and its clerk's subfolder).
    fn folder(&self, item: &DeliveryItem) -> Vec<String> {
        let t = self
            .s
            .folders
            .get(item.mailbox.as_str())
            .unwrap_or(&self.s.folder);
        let mut segments: Vec<String> = fields::render(t, item)
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.replace(['\\', '\0'], "_"))
            .collect();
        if let Some(c) = item.clerk.as_ref().filter(|_| self.s.clerk_subfolders) {
            let name = self.s.clerk_folders.get(&c.id).unwrap_or(&c.name);
            let name = name.replace(['/', '\\', '\0'], "_");
            if !name.trim().is_empty() {
                segments.push(name);
            }
        }
        segments
    }

    fn url_of(&self, segments: &[String]) -> String {
        let mut u = self.s.root_url.clone();
        for s in segments {
            u.push('/');
            u.push_str(&fields::percent_encode(s));
        }
        u
    }

    fn doc_name(&self, item: &DeliveryItem) -> String {
        fields::render(&self.s.name, item).replace(['/', '\\', '\0'], "_")
    }

    async fn lookup(&self, segments: &[String]) -> Result<Lookup, DeliveryError> {
        let url = self.url_of(segments);
        let req = self
            .req(reqwest::Method::GET, &url)?
            .query(&[("cmisselector", "object"), ("succinct", "true")]);
        let resp = http::send("CMIS: getObjectByPath", req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Lookup::Missing);
        }
        let resp = http::check("CMIS: getObjectByPath", resp).await?;
        let obj: serde_json::Value = http::json("CMIS: getObjectByPath", resp).await?;
        let id = obj
            .pointer("/succinctProperties/cmis:objectId")
            .and_then(|v| v.as_str())
            .or_else(|| {
                obj.pointer("/properties/cmis:objectId/value")
                    .and_then(|v| v.as_str())
            })
            .unwrap_or_default();
        Ok(Lookup::Found(id.to_string()))
    }

    async fn ensure_folder(&self, segments: &[String]) -> Result<(), DeliveryError> {
        if let Lookup::Found(_) = self.lookup(segments).await? {
            return Ok(());
        }
        if !self.s.create_folders {
            return Err(DeliveryError::Permanent(format!(
                "CMIS: Ordner /{} fehlt (create_folders = false)",
                segments.join("/")
            )));
        }
        for i in 1..=segments.len() {
            let path = &segments[..i];
            if let Lookup::Found(_) = self.lookup(path).await? {
                continue;
            }
            let form = reqwest::multipart::Form::new()
                .text("cmisaction", "createFolder")
                .text("propertyId[0]", "cmis:objectTypeId")
                .text("propertyValue[0]", "cmis:folder")
                .text("propertyId[1]", "cmis:name")
                .text("propertyValue[1]", path[i - 1].clone())
                .text("succinct", "true");
            let req = self
                .req(reqwest::Method::POST, &self.url_of(&path[..i - 1]))?
                .multipart(form);
            let resp = http::send("CMIS: createFolder", req).await?;
            // 409: created meanwhile by a parallel delivery.
            if resp.status() != StatusCode::CONFLICT {
                http::check("CMIS: createFolder", resp).await?;
            }
        }
        Ok(())
    }

    fn create_form(
        &self,
        item: &DeliveryItem,
        name: &str,
    ) -> Result<reqwest::multipart::Form, DeliveryError> {
        let mut form = reqwest::multipart::Form::new()
            .text("cmisaction", "createDocument")
            .text("propertyId[0]", "cmis:objectTypeId")
            .text("propertyValue[0]", self.s.object_type.clone())
            .text("propertyId[1]", "cmis:name")
            .text("propertyValue[1]", name.to_string());
        let mut i = 2;
        for (field, prop) in &self.s.properties {
            let values = fields::values(item, field);
            if values.is_empty() {
                continue;
            }
            form = form.text(format!("propertyId[{i}]"), prop.clone());
            if values.len() == 1 {
                form = form.text(format!("propertyValue[{i}]"), values[0].clone());
            } else {
                for (j, v) in values.into_iter().enumerate() {
                    form = form.text(format!("propertyValue[{i}][{j}]"), v);
                }
            }
            i += 1;
        }
        let content = reqwest::multipart::Part::bytes(item.bytes.clone())
            .file_name(name.to_string())
            .mime_str(&item.media_type)
            .map_err(|e| DeliveryError::Permanent(format!("media type: {e}")))?;
        Ok(form.text("succinct", "true").part("content", content))
    }

    async fn run(&self, item: &DeliveryItem) -> Result<Receipt, DeliveryError> {
        let folder = self.folder(item);
        let name = self.doc_name(item);
        let mut path = folder.clone();
        path.push(name.clone());
        let found = |id: String| Receipt {
            reference: if id.is_empty() {
                self.url_of(&path)
            } else {
                id
            },
            already_present: true,
        };
        if let Lookup::Found(id) = self.lookup(&path).await? {
            return Ok(found(id));
        }
        self.ensure_folder(&folder).await?;
        if let Some(id) = self.move_from_elsewhere(&folder, &name).await? {
            return Ok(Receipt {
                reference: id,
                already_present: true,
            });
        }
        let req = self
            .req(reqwest::Method::POST, &self.url_of(&folder))?
            .multipart(self.create_form(item, &name)?);
        let resp = http::send("CMIS: createDocument", req).await?;
        if resp.status() == StatusCode::CONFLICT {
            if let Lookup::Found(id) = self.lookup(&path).await? {
                return Ok(found(id));
            }
            return Err(http::error_of("CMIS: createDocument", resp).await);
        }
        let resp = http::check("CMIS: createDocument", resp).await?;
        let obj: serde_json::Value = http::json("CMIS: createDocument", resp).await?;
        let id = obj
            .pointer("/succinctProperties/cmis:objectId")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                DeliveryError::Retriable("CMIS: createDocument ohne cmis:objectId".into())
            })?;
        Ok(Receipt {
            reference: id.to_string(),
            already_present: false,
        })
    }
}

impl CmisTarget {
    /// A re-assigned document lies in another mailbox's folder: found by a CMIS query on its
    /// name (5.4.3 `cmisaction=query` at the repository URL), its parent read with
    /// `cmisselector=parents`, and moved with `cmisaction=move` (`objectId`, `sourceFolderId`,
    /// `targetFolderId`). `None` when it is nowhere (or the root URL is not `.../root`).
    async fn move_from_elsewhere(
        &self,
        folder: &[String],
        name: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let Some(repo_url) = self.s.root_url.strip_suffix("/root") else {
            return Ok(None);
        };
        let statement = format!(
            "SELECT cmis:objectId FROM cmis:document WHERE cmis:name = '{}'",
            name.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let form = reqwest::multipart::Form::new()
            .text("cmisaction", "query")
            .text("statement", statement)
            .text("searchAllVersions", "false")
            .text("succinct", "true");
        let req = self.req(reqwest::Method::POST, repo_url)?.multipart(form);
        let resp = http::send_ok("CMIS: query", req).await?;
        let found: serde_json::Value = http::json("CMIS: query", resp).await?;
        let Some(id) = found
            .pointer("/results/0/succinctProperties/cmis:objectId")
            .and_then(|v| v.as_str())
            .map(str::to_string)
        else {
            return Ok(None);
        };
        let req = self.req(reqwest::Method::GET, &self.s.root_url)?.query(&[
            ("objectId", id.as_str()),
            ("cmisselector", "parents"),
            ("succinct", "true"),
        ]);
        let resp = http::send_ok("CMIS: getObjectParents", req).await?;
        let parents: serde_json::Value = http::json("CMIS: getObjectParents", resp).await?;
        let Some(source) = parents
            .pointer("/0/object/succinctProperties/cmis:objectId")
            .and_then(|v| v.as_str())
            .map(str::to_string)
        else {
            return Ok(None);
        };
        let Lookup::Found(target) = self.lookup(folder).await? else {
            return Ok(None);
        };
        let form = reqwest::multipart::Form::new()
            .text("cmisaction", "move")
            .text("objectId", id.clone())
            .text("sourceFolderId", source)
            .text("targetFolderId", target)
            .text("succinct", "true");
        let req = self
            .req(reqwest::Method::POST, &self.s.root_url)?
            .multipart(form);
        http::send_ok("CMIS: moveObject", req).await?;
        Ok(Some(id))
    }
}

impl Delivery for CmisTarget {
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
