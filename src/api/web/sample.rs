//! Stichprobe: `/stichprobe` (role `poststelle` and `admin`): the open samples of the documents
//! routed straight through, each with "bestätigen" and "korrigieren" (the right mailbox; the
//! document is assigned there and delivered again), and the measured precision per mailbox
//! with its 95 % interval. See [`crate::sample`].

use super::document::{mailbox_label, time_de, unless_poststelle};
use super::{Chrome, Signed, error_page, failed, no_document, render};
use crate::api::ApiState;
use crate::domain::DocumentId;
use crate::sample::{SampleError, percent_de, threshold_de};
use crate::store::StoreError;
use crate::store::samples::{JUDGED_ALREADY, SAME_MAILBOX, Verdict};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// Open samples listed at most.
const MAX_ITEMS: i64 = 500;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/stichprobe", get(list))
        .route("/stichprobe/{id}/bestaetigen", post(confirm))
        .route("/stichprobe/{id}/korrigieren", post(overturn))
}

/// One open sample as the page shows it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Subject line, if found.
    pub subject: String,
    /// "63 Bauordnung".
    pub mailbox: String,
    /// The machine's mailbox id (preselected in the list of mailboxes).
    pub mailbox_id: String,
    /// Confidence, German.
    pub confidence: String,
    /// When it was sampled.
    pub sampled: String,
}

/// One mailbox's measured precision.
#[derive(Debug, Clone)]
pub struct PrecisionRow {
    /// "63 Bauordnung".
    pub mailbox: String,
    /// Judged samples.
    pub judged: u64,
    /// Confirmed.
    pub confirmed: u64,
    /// Precision, German.
    pub precision: String,
    /// "97,10 % – 99,90 %".
    pub interval: String,
    /// Below the target (the interval's upper bound is).
    pub below: bool,
    /// The raised threshold, if any.
    pub raised: String,
}

/// A mailbox in the list.
#[derive(Debug, Clone)]
pub struct MailboxOption {
    /// Id.
    pub id: String,
    /// "63 Bauordnung".
    pub label: String,
}

#[derive(Template)]
#[template(path = "sample.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    notice: Option<String>,
    rows: Vec<Row>,
    precision: Vec<PrecisionRow>,
    target: String,
    share: String,
    all: Vec<MailboxOption>,
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
    let (open, judged, raises) = match (
        store.open_samples(MAX_ITEMS).await,
        store.judged_samples(None).await,
        store.threshold_raises().await,
    ) {
        (Ok(o), Ok(j), Ok(r)) => (o, j, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failed(&who, e),
    };
    let target = settings.classify.precision_target;
    let rows = open
        .iter()
        .map(|r| Row {
            id: r.document_id.to_string(),
            name: r.original_name.clone(),
            subject: r.subject.clone().unwrap_or_default(),
            mailbox: mailbox_label(settings, &r.mailbox),
            mailbox_id: r.mailbox.to_string(),
            confidence: percent_de(r.confidence),
            sampled: time_de(&r.sampled_at),
        })
        .collect();
    let precision = crate::sample::measure(&judged)
        .iter()
        .map(|m| PrecisionRow {
            mailbox: mailbox_label(settings, &m.mailbox),
            judged: m.judged,
            confirmed: m.confirmed,
            precision: percent_de(m.precision),
            interval: format!("{} – {}", percent_de(m.lower), percent_de(m.upper)),
            below: m.upper < target,
            raised: raises
                .get(&m.mailbox)
                .map(|r| threshold_de(r.threshold))
                .unwrap_or_default(),
        })
        .collect();
    let notice = q.erledigt.as_deref().map(|e| match e {
        "angehoben" => "Beurteilt. Die Präzision dieses Postfachs liegt unter dem Ziel: die \
                        Schwelle ist angehoben, die Verwaltung ist benachrichtigt."
            .to_string(),
        "korrigiert" => "Korrigiert: das Dokument wird dem richtigen Postfach zugestellt.".into(),
        _ => "Bestätigt.".into(),
    });
    render(&Page {
        chrome: Chrome::new(&who, "Stichprobe", "/stichprobe"),
        notice,
        rows,
        precision,
        target: percent_de(target),
        share: percent_de(settings.sample.share),
        all: settings
            .mailboxes
            .iter()
            .map(|m| MailboxOption {
                id: m.id.to_string(),
                label: format!("{} {}", m.id, m.name),
            })
            .collect(),
    })
}

async fn confirm(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    judge(who, s, id, None).await
}

#[derive(Debug, Deserialize)]
struct OverturnForm {
    mailbox: String,
}

async fn overturn(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<OverturnForm>,
) -> Response {
    judge(who, s, id, Some(f.mailbox)).await
}

/// Records the verdict (`mailbox`: overturned to it) and goes back to the list.
async fn judge(
    who: crate::auth::Identity,
    s: ApiState,
    id: String,
    mailbox: Option<String>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let Some(id) = DocumentId::parse(&id) else {
        return no_document(&who);
    };
    let (verdict, correct) = match mailbox {
        None => (Verdict::Confirmed, None),
        Some(m) => match super::review::mailbox_from_form(&s, &m) {
            Some(m) => (Verdict::Overturned, Some(m)),
            None => {
                return error_page(
                    Some(&who),
                    StatusCode::BAD_REQUEST,
                    "Bitte ein Postfach aus der Liste wählen.",
                );
            }
        },
    };
    match crate::sample::judge(&s.pipeline, &id, verdict, correct.as_ref(), who.actor()).await {
        Ok(j) => {
            let done = match (&j.raised, verdict) {
                (Some(_), _) => "angehoben",
                (None, Verdict::Overturned) => "korrigiert",
                (None, Verdict::Confirmed) => "bestaetigt",
            };
            Redirect::to(&format!("/stichprobe?erledigt={done}")).into_response()
        }
        Err(SampleError::Store(StoreError::NotFound(_))) => no_document(&who),
        Err(SampleError::Store(StoreError::Conflict { message, .. })) => error_page(
            Some(&who),
            StatusCode::CONFLICT,
            match message.as_str() {
                JUDGED_ALREADY => "Diese Stichprobe ist schon beurteilt.",
                SAME_MAILBOX => {
                    "Das ist das Postfach der Maschine: bitte „bestätigen“ oder ein anderes \
                     Postfach wählen."
                }
                _ => "Das Dokument kann in seinem jetzigen Zustand nicht neu zugeordnet werden.",
            },
        ),
        Err(e) => failed(&who, e),
    }
}
