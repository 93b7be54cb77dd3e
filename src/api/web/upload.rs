//! Hochladen: `/hochladen`, a form (drag and drop where the browser offers it) for letters
//! that arrive outside the scanner. The file goes through the same intake as the upload API:
//! committed before the page answers, duplicates found by their SHA-256, unreadable files
//! quarantined with their reason. Role `poststelle` (and `admin`).
//!
//! The form is `multipart/form-data`; its CSRF token is the form's first field (`csrf`), checked
//! here before any file is read (the central check leaves this one path to the page, so that the
//! token never stands in a URL).

use super::document::unless_poststelle;
use super::{Chrome, Signed, error_page, render};
use crate::api::ApiState;
use crate::auth::constant_time_eq;
use crate::intake::Outcome;
use askama::Template;
use axum::Router;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

/// The page's path.
pub const PATH: &str = "/hochladen";

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route(PATH, get(form).post(submit))
}

/// What became of one file.
#[derive(Debug, Clone)]
pub struct UploadResult {
    /// File name.
    pub name: String,
    /// German sentence.
    pub text: String,
    /// Link to the document, if one was made.
    pub link: Option<String>,
    /// Whether it went wrong.
    pub problem: bool,
}

#[derive(Template)]
#[template(path = "upload.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    results: Vec<UploadResult>,
    max_mb: u64,
}

fn page(who: &crate::auth::Identity, s: &ApiState, results: Vec<UploadResult>) -> Response {
    render(&Page {
        chrome: Chrome::new(who, "Hochladen", "/hochladen"),
        results,
        max_mb: s.pipeline.settings.upload.max_bytes.div_ceil(1024 * 1024),
    })
}

async fn form(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    page(&who, &s, Vec::new())
}

async fn submit(Signed(who): Signed, State(s): State<ApiState>, mp: Multipart) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let limits = s.pipeline.settings.upload.clone();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let work = async {
        let _slot = crate::api::streaming::slot(&s, limits.timeout).await?;
        Ok::<_, crate::api::ApiError>(receive_files(&who, &s, mp, limits.max_bytes).await)
    };
    let answer = match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Refused::Api(e)),
        Err(_) => Err(Refused::Api(crate::api::streaming::timed_out(
            limits.timeout,
        ))),
    };
    match answer {
        Ok(results) => page(&who, &s, results),
        Err(Refused::Page(r)) => r,
        Err(Refused::Api(e)) => {
            let status = e.status();
            error_page(Some(&who), status, e.to_string())
        }
    }
}

/// Why the form was not taken: a finished page, or an error to show in one.
enum Refused {
    Page(Response),
    Api(crate::api::ApiError),
}

impl From<crate::api::ApiError> for Refused {
    fn from(e: crate::api::ApiError) -> Self {
        Refused::Api(e)
    }
}

/// Reads the form's fields in order: the CSRF token, then the files, each streamed into the
/// data directory and committed (or quarantined) before the next is read.
async fn receive_files(
    who: &crate::auth::Identity,
    s: &ApiState,
    mut mp: Multipart,
    max: u64,
) -> Result<Vec<UploadResult>, Refused> {
    let mut results = Vec::new();
    // A session must show its CSRF token first (the form's first field); a token identity
    // (scanner software) has none and needs none.
    let mut csrf_ok = who.csrf().is_none();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(Refused::Page(error_page(
                    Some(who),
                    StatusCode::BAD_REQUEST,
                    format!("Der Upload ist abgebrochen oder zu groß: {e}"),
                )));
            }
        };
        if field.name() == Some("csrf") {
            let given = field.text().await.unwrap_or_default();
            csrf_ok = who
                .csrf()
                .is_none_or(|t| constant_time_eq(t.as_bytes(), given.trim().as_bytes()));
            continue;
        }
        if field.name() != Some("file") {
            continue;
        }
        if !csrf_ok {
            // Refused: nothing is taken in, but the rest of the body is read past (and thrown
            // away), so the sender gets the answer instead of a closed connection in the
            // middle of its request.
            crate::api::streaming::read_past(&mut field).await;
            continue;
        }
        let name = crate::intake::safe_name(field.file_name().unwrap_or("upload"));
        let incoming = crate::api::streaming::receive(&s.intake.blobs, field, max)
            .await
            .map_err(crate::api::ApiError::from)?;
        if incoming.is_empty() && name == "upload" {
            continue;
        }
        let outcome = s.intake.upload(who.actor(), &name, incoming, max).await;
        let r = match outcome {
            Ok(Outcome::New(id)) => UploadResult {
                name,
                text: "angenommen; wird gelesen und zugeordnet.".into(),
                link: Some(format!("/eingang/{id}")),
                problem: false,
            },
            Ok(Outcome::Duplicate(id)) => UploadResult {
                name,
                text: "war schon da (gleicher Inhalt); nicht noch einmal angenommen.".into(),
                link: Some(format!("/eingang/{id}")),
                problem: false,
            },
            Ok(Outcome::Retried(id)) => UploadResult {
                name,
                text: "war schon da und lag in der Quarantäne; wird erneut gelesen.".into(),
                link: Some(format!("/eingang/{id}")),
                problem: false,
            },
            Ok(Outcome::Quarantined(reason)) => UploadResult {
                name,
                text: format!("in Quarantäne: {reason}"),
                link: None,
                problem: true,
            },
            Err(e) => {
                tracing::error!(error = %e, "upload intake failed");
                UploadResult {
                    name,
                    text: "konnte nicht gespeichert werden; bitte erneut versuchen.".into(),
                    link: None,
                    problem: true,
                }
            }
        };
        results.push(r);
    }
    if !csrf_ok {
        return Err(Refused::Page(error_page(
            Some(who),
            StatusCode::FORBIDDEN,
            "Das Sicherheitsmerkmal des Formulars fehlt oder ist abgelaufen. Bitte laden Sie die Seite neu.",
        )));
    }
    if results.is_empty() {
        return Err(Refused::Page(error_page(
            Some(who),
            StatusCode::BAD_REQUEST,
            "Bitte mindestens eine Datei auswählen.",
        )));
    }
    Ok(results)
}
