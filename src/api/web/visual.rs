//! Sichtkontrolle: `/sichtkontrolle` (role `poststelle` and `admin`): the scans drawn for a
//! visual check (`[capture] visual_check_share`, see [`crate::capture`]), each with
//! "vollständig und lesbar" and "neu scannen" (with a note what is wrong). The documents are
//! delivered meanwhile; a re-scan is handed in as a new document.

use super::document::{mailbox_label, time_de, unless_poststelle};
use super::{Chrome, Signed, error_page, failed, no_document, render};
use crate::api::ApiState;
use crate::domain::{DocumentId, MailboxId};
use crate::sample::percent_de;
use crate::store::StoreError;
use crate::store::capture::VisualVerdict;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// Checks listed at most.
const MAX_ITEMS: i64 = 500;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sichtkontrolle", get(list))
        .route("/sichtkontrolle/{id}/in-ordnung", post(ok))
        .route("/sichtkontrolle/{id}/neu-scannen", post(rescan))
}

/// One check as the page shows it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// "63 Bauordnung", or empty.
    pub mailbox: String,
    /// When it was drawn.
    pub queued: String,
    /// The verdict, German (judged ones).
    pub verdict: String,
    /// The note (judged ones).
    pub note: String,
    /// Who judged.
    pub actor: String,
}

#[derive(Template)]
#[template(path = "visual.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    notice: Option<String>,
    open: Vec<Row>,
    judged: Vec<Row>,
    share: String,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    erledigt: Option<String>,
}

async fn list(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let settings = &s.pipeline.settings;
    let store = &s.pipeline.store;
    let (open, all) = match (
        store.open_visual_checks(MAX_ITEMS).await,
        store.visual_checks(50).await,
    ) {
        (Ok(o), Ok(a)) => (o, a),
        (Err(e), _) | (_, Err(e)) => return failed(&who, e),
    };
    let row = |c: &crate::store::capture::VisualCheckRow| Row {
        id: c.document_id.to_string(),
        name: c.original_name.clone(),
        mailbox: c
            .mailbox
            .as_deref()
            .and_then(MailboxId::parse)
            .map(|m| mailbox_label(settings, &m))
            .unwrap_or_default(),
        queued: time_de(&c.queued_at),
        verdict: c
            .verdict
            .map(|v| v.german().to_string())
            .unwrap_or_default(),
        note: c.note.clone().unwrap_or_default(),
        actor: c.actor.clone().unwrap_or_default(),
    };
    let notice = q.erledigt.as_deref().map(|e| match e {
        "neu-scannen" => "Vermerkt: bitte das Original neu scannen. Das zugestellte Dokument \
                          bleibt; der neue Scan wird ein eigenes Dokument."
            .to_string(),
        _ => "Vermerkt: vollständig und lesbar.".to_string(),
    });
    render(&Page {
        chrome: Chrome::new(&who, "Sichtkontrolle", "/sichtkontrolle"),
        notice,
        open: open.iter().map(row).collect(),
        judged: all
            .iter()
            .filter(|c| c.verdict.is_some())
            .map(row)
            .collect(),
        share: percent_de(settings.capture.visual_check_share),
    })
}

#[derive(Debug, Deserialize, Default)]
struct NoteForm {
    #[serde(default)]
    note: String,
}

async fn ok(Signed(who): Signed, State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    judge(who, s, id, VisualVerdict::Ok, String::new()).await
}

async fn rescan(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<NoteForm>,
) -> Response {
    judge(who, s, id, VisualVerdict::Rescan, f.note).await
}

async fn judge(
    who: crate::auth::Identity,
    s: ApiState,
    id: String,
    verdict: VisualVerdict,
    note: String,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let Some(id) = DocumentId::parse(&id) else {
        return no_document(&who);
    };
    if note.chars().count() > 500 {
        return error_page(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Bitte höchstens 500 Zeichen als Vermerk.",
        );
    }
    match s
        .pipeline
        .store
        .judge_visual_check(&id, verdict, Some(&note), who.actor())
        .await
    {
        Ok(_) => {
            let done = match verdict {
                VisualVerdict::Ok => "in-ordnung",
                VisualVerdict::Rescan => "neu-scannen",
            };
            Redirect::to(&format!("/sichtkontrolle?erledigt={done}")).into_response()
        }
        Err(StoreError::NotFound(_)) => no_document(&who),
        Err(StoreError::Conflict { .. }) => error_page(
            Some(&who),
            StatusCode::CONFLICT,
            "Diese Sichtkontrolle ist schon erledigt.",
        ),
        Err(e) => failed(&who, e),
    }
}
