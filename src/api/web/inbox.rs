//! Eingang: `/eingang` lists what reached a department's mailboxes in the last days (queued,
//! delivered, dead letters) with the reason; `/eingang/{id}` shows one document and its
//! "falsch zugeordnet" controls: forward to another mailbox (`/eingang/{id}/weiterleiten`) or
//! send back to the Poststelle with a reason (`/eingang/{id}/zurueck`). Both are corrections:
//! a forward re-delivers at once by the target's re-assignment rules; a document sent back
//! waits in the review queue with the department's reason.
//!
//! A department (`fachbereich`) sees only its own mailboxes; any other document answers 404.
//! The Poststelle and admins see every mailbox.

use super::document::{
    self, PageView, Span, explanation_sentences, mailbox_label, page_views, time_de,
};
use super::review::{MailboxOption, mailbox_from_form, source_de};
use super::{Chrome, Signed, error_page, failed, no_document, render, store_failure};
use crate::api::ApiState;
use crate::api::json::visible_document;
use crate::auth::Identity;
use crate::domain::{DocState, DocumentId};
use crate::store::DocumentRow;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// Days shown by default.
const DEFAULT_DAYS: i64 = 14;
/// Documents read at most.
const MAX_ROWS: i64 = 500;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/eingang", get(list))
        .route("/eingang/{id}", get(item))
        .route("/eingang/{id}/weiterleiten", post(forward))
        .route("/eingang/{id}/zurueck", post(send_back))
}

/// A document's state in German.
pub fn state_de(state: DocState) -> &'static str {
    match state {
        DocState::Received => "eingegangen",
        DocState::Extracted => "gelesen",
        DocState::Classified => "zugeordnet",
        DocState::Review => "im Prüfkorb",
        DocState::Queued => "wird zugestellt",
        DocState::Delivered => "zugestellt",
        DocState::Quarantined => "in Quarantäne",
        DocState::DeadLetter => "Zustellung gescheitert",
    }
}

/// One row of the inbox.
#[derive(Debug, Clone)]
pub struct Row {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Arrival.
    pub received: String,
    /// "63 Bauordnung".
    pub mailbox: String,
    /// State in German.
    pub state: &'static str,
    /// Why it is here: the explanation's first sentence.
    pub reason: String,
}

#[derive(Template)]
#[template(path = "inbox_list.html", config = "src/api/web/askama.toml")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    days: i64,
    mailboxes: String,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    tage: Option<i64>,
    erledigt: Option<String>,
}

/// What `who` sees in the inbox, newest first.
async fn visible(
    s: &ApiState,
    who: &Identity,
) -> Result<Vec<DocumentRow>, crate::store::StoreError> {
    if who.sees_all() {
        let mut all = Vec::new();
        for st in [DocState::Queued, DocState::Delivered, DocState::DeadLetter] {
            all.extend(s.pipeline.store.list(Some(st), MAX_ROWS).await?);
        }
        all.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
        all.truncate(MAX_ROWS as usize);
        Ok(all)
    } else {
        s.pipeline
            .store
            .list_in_mailboxes(&who.mailboxes, None, MAX_ROWS)
            .await
    }
}

async fn list(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let days = q.tage.unwrap_or(DEFAULT_DAYS).clamp(1, 365);
    let since = chrono::Utc::now() - chrono::Duration::days(days);
    let docs = match visible(&s, &who).await {
        Ok(d) => d,
        Err(e) => return failed(&who, e),
    };
    let settings = &s.pipeline.settings;
    let rows = docs
        .iter()
        .filter(|d| {
            chrono::DateTime::parse_from_rfc3339(&d.updated_at)
                .map(|t| t >= since)
                .unwrap_or(true)
        })
        .map(|d| Row {
            id: d.id.to_string(),
            name: d.original_name.clone(),
            received: time_de(&d.created_at),
            mailbox: d
                .mailbox
                .as_ref()
                .map(|m| mailbox_label(settings, m))
                .unwrap_or_default(),
            state: state_de(d.state),
            reason: d
                .decision
                .as_ref()
                .and_then(|x| explanation_sentences(settings, x).into_iter().next())
                .unwrap_or_default(),
        })
        .collect();
    let mailboxes = if who.sees_all() {
        "alle Postfächer".to_string()
    } else {
        who.mailboxes
            .iter()
            .map(|m| mailbox_label(settings, m))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let notice = q.erledigt.map(|e| match e.as_str() {
        "zurueck" => "Das Dokument ist an die Poststelle zurückgegeben.".to_string(),
        _ => "Das Dokument ist weitergeleitet.".to_string(),
    });
    render(&ListPage {
        chrome: Chrome::new(&who, "Eingang", "/eingang"),
        rows,
        days,
        mailboxes,
        notice,
    })
}

#[derive(Template)]
#[template(path = "inbox_item.html", config = "src/api/web/askama.toml")]
struct ItemPage {
    chrome: Chrome,
    id: String,
    source: String,
    received: String,
    mailbox: String,
    mailbox_id: String,
    state: &'static str,
    sentences: Vec<String>,
    pages: Vec<PageView>,
    text: Vec<Vec<Span>>,
    all: Vec<MailboxOption>,
    can_correct: bool,
    error: Option<String>,
    capture: Vec<document::Fact>,
}

#[derive(Debug, Deserialize)]
struct ItemQuery {
    fehler: Option<String>,
}

/// The document if `who` sees it in the inbox (their mailbox and a state of the inbox).
async fn inbox_document(s: &ApiState, who: &Identity, id: &str) -> Result<DocumentRow, Response> {
    let id = DocumentId::parse(id).ok_or_else(|| no_document(who))?;
    visible_document(s, who, &id)
        .await
        .map_err(|_| no_document(who))
}

async fn item(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Response {
    let doc = match inbox_document(&s, &who, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let settings = &s.pipeline.settings;
    let extraction = document::extraction_of(&s, &doc.id).await;
    let (pages, text) = page_views(&doc, extraction.as_ref(), doc.decision.as_ref());
    let can_correct = matches!(
        doc.state,
        DocState::Queued | DocState::Delivered | DocState::DeadLetter
    ) && doc.mailbox.is_some();
    let current = doc.mailbox.clone();
    let all = settings
        .mailboxes
        .iter()
        .filter(|m| Some(&m.id) != current.as_ref())
        .map(|m| MailboxOption {
            id: m.id.to_string(),
            label: format!("{} {}", m.id, m.name),
        })
        .collect();
    let capture = match s.pipeline.store.capture_record(&doc.id).await {
        Ok(r) => r.as_ref().map(document::capture_facts).unwrap_or_default(),
        Err(e) => return failed(&who, e),
    };
    let error = q.fehler.map(|f| match f.as_str() {
        "grund" => "Bitte einen Grund mit 1 bis 500 Zeichen angeben.".to_string(),
        _ => "Bitte ein Postfach aus der Liste wählen.".to_string(),
    });
    render(&ItemPage {
        chrome: Chrome::new(&who, format!("Eingang: {}", doc.original_name), "/eingang"),
        id: doc.id.to_string(),
        source: source_de(&doc.source).to_string(),
        received: time_de(&doc.created_at),
        mailbox: current
            .as_ref()
            .map(|m| mailbox_label(settings, m))
            .unwrap_or_default(),
        mailbox_id: current.as_ref().map(|m| m.to_string()).unwrap_or_default(),
        state: state_de(doc.state),
        sentences: doc
            .decision
            .as_ref()
            .map(|d| explanation_sentences(settings, d))
            .unwrap_or_default(),
        pages,
        text,
        all,
        can_correct,
        error,
        capture,
    })
}

#[derive(Debug, Deserialize)]
struct ForwardForm {
    mailbox: String,
}

async fn forward(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<ForwardForm>,
) -> Response {
    let doc = match inbox_document(&s, &who, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(mailbox) = mailbox_from_form(&s, &f.mailbox) else {
        return Redirect::to(&format!("/eingang/{}?fehler=postfach", doc.id)).into_response();
    };
    let origin = if who.sees_all() {
        "correction"
    } else {
        "forward"
    };
    match s
        .pipeline
        .store
        .assign(&doc.id, &mailbox, who.actor(), origin)
        .await
    {
        Ok(()) => {}
        Err(e) => {
            return store_failure(
                &who,
                e,
                "Das Dokument kann in seinem jetzigen Zustand nicht weitergeleitet werden.",
            );
        }
    }
    s.pipeline.wake.notify_one();
    crate::sample::after_correction(&s.pipeline, &doc.id).await;
    tracing::info!(document = %doc.id, mailbox = %mailbox, actor = who.actor(), "forwarded from the inbox");
    Redirect::to("/eingang?erledigt=weiter").into_response()
}

#[derive(Debug, Deserialize)]
struct BackForm {
    reason: String,
}

async fn send_back(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<BackForm>,
) -> Response {
    let doc = match inbox_document(&s, &who, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Redirect::to(&format!("/eingang/{}?fehler=grund", doc.id)).into_response();
    }
    let Some(from) = doc.mailbox.clone() else {
        return error_page(
            Some(&who),
            StatusCode::CONFLICT,
            "Das Dokument ist keinem Postfach zugeordnet.",
        );
    };
    match s
        .pipeline
        .store
        .send_back(&doc.id, &from, reason, who.actor())
        .await
    {
        Ok(()) => {}
        Err(e) => {
            return store_failure(
                &who,
                e,
                "Das Dokument kann in seinem jetzigen Zustand nicht zurückgegeben werden.",
            );
        }
    }
    crate::sample::after_correction(&s.pipeline, &doc.id).await;
    tracing::info!(document = %doc.id, from = %from, actor = who.actor(), "sent back to the Poststelle");
    Redirect::to("/eingang?erledigt=zurueck").into_response()
}
