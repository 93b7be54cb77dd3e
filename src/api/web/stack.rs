//! Stapel: `/stapel/{id}` shows a scanned stack's pages as thumbnails (drawn in the sandbox,
//! `/stapel/{id}/seite/{n}`), what the split saw on each (blank, separator sheet, a letter's
//! first page with its cues), the letters made of it, and lets the Poststelle move the split
//! points: every content page has a "Briefanfang" checkbox; the form (`/stapel/{id}/trennen`,
//! fields `start`, one per page where a letter begins) splits the stack anew through the same
//! path as `POST /api/batches/{id}/split`. The first page of the stack and the first page after
//! a separator sheet always begin a letter. Linked from the Prüfkorb for a letter of a stack.
//! Role `poststelle` (and `admin`) only.

use super::document::{mailbox_label, time_de, unless_poststelle};
use super::inbox::state_de;
use super::{Chrome, Signed, error_page, failed, render};
use crate::api::json::{find_batch, move_split_points};
use crate::api::{ApiError, ApiState};
use crate::batch::{PageKind, Plan};
use crate::domain::DocState;
use crate::extract::MediaType;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/stapel/{id}", get(show))
        .route("/stapel/{id}/seite/{page}", get(thumbnail))
        .route("/stapel/{id}/trennen", post(split))
}

/// One page of the stack as the desk shows it.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Page number in the stack.
    pub number: u32,
    /// The thumbnail's address.
    pub src: String,
    /// CSS class of its kind: `inhalt`, `leer`, `trennblatt`, `beschaedigt`.
    pub class: &'static str,
    /// What the split saw, in German.
    pub kind: String,
    /// How much it reads like a letter's first page, and why ("0,90: Anschriftfeld, Anrede").
    pub score: Option<String>,
    /// A letter begins here now.
    pub start: bool,
    /// A content page whose "Briefanfang" a person may set or clear.
    pub toggle: bool,
    /// Why a letter always begins here (the stack's first page, after a separator sheet).
    pub fixed: Option<&'static str>,
    /// The letter the page belongs to now (1-based), if any.
    pub letter: Option<usize>,
}

/// One letter of the stack.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Its number in the stack (1-based).
    pub number: usize,
    /// Its pages in the stack ("3-5").
    pub range: String,
    /// Its document's id (a link to the Prüfkorb while it waits there).
    pub id: Option<String>,
    /// Its state in German.
    pub state: String,
    /// Waits in the Prüfkorb.
    pub in_review: bool,
    /// Its mailbox ("63 Bauordnung") or empty.
    pub mailbox: String,
    /// Why it waits or was quarantined.
    pub reason: String,
}

#[derive(Template)]
#[template(path = "stack.html", config = "src/api/web/askama.toml")]
struct StackPage {
    chrome: Chrome,
    id: String,
    received: String,
    page_count: usize,
    tiles: Vec<Tile>,
    letters: Vec<Letter>,
    editable: bool,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    getrennt: Option<String>,
}

/// The stack's pages as tiles: kind, score, current split points and what may be toggled.
pub fn tiles(id: &str, plan: &Plan) -> Vec<Tile> {
    let mut out = Vec::new();
    // Whether a letter is open (a content page seen since the start or the last separator).
    let mut open = false;
    let mut after_separator = false;
    for p in &plan.pages {
        let letter = plan
            .parts
            .iter()
            .position(|part| part.first <= p.number && p.number <= part.last)
            .map(|i| i + 1);
        let start = plan.parts.iter().any(|part| part.first == p.number);
        let (class, kind) = match &p.kind {
            PageKind::Content => ("inhalt", "Inhalt".to_string()),
            PageKind::Blank => ("leer", "Leere Seite".to_string()),
            PageKind::Separator(name) => ("trennblatt", name.clone()),
            PageKind::Broken(reason) => ("beschaedigt", format!("Beschädigt: {reason}")),
        };
        let mut fixed = None;
        let mut toggle = false;
        match &p.kind {
            PageKind::Separator(_) => {
                open = false;
                after_separator = true;
            }
            PageKind::Blank => {}
            PageKind::Content | PageKind::Broken(_) => {
                if open {
                    toggle = true;
                } else {
                    fixed = Some(if after_separator {
                        "nach einem Trennblatt"
                    } else {
                        "erste Seite des Stapels"
                    });
                }
                open = true;
                after_separator = false;
            }
        }
        let score = p.start_score.map(|s| {
            let mut text = super::document::german_decimal(s);
            if !p.cues.is_empty() {
                text.push_str(": ");
                text.push_str(&p.cues.join(", "));
            }
            text
        });
        out.push(Tile {
            number: p.number,
            src: format!("/stapel/{id}/seite/{}", p.number),
            class,
            kind,
            score,
            start,
            toggle,
            fixed,
            letter: if matches!(p.kind, PageKind::Separator(_)) {
                None
            } else {
                letter
            },
        });
    }
    out
}

async fn show(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let batch = match find_batch(&s, &id).await {
        Ok(b) => b,
        Err(ApiError::NotFound(m)) => return error_page(Some(&who), StatusCode::NOT_FOUND, m),
        Err(e) => return failed(&who, e),
    };
    let plan: Option<Plan> = match batch.plan.clone().map(serde_json::from_value).transpose() {
        Ok(p) => p,
        Err(e) => return failed(&who, e),
    };
    let Some(plan) = plan.filter(|_| batch.purged_at.is_none()) else {
        let message = match batch.state.as_str() {
            crate::store::batches::state::RECEIVED => {
                "Der Stapel wird gerade geteilt; bitte gleich noch einmal ansehen."
            }
            crate::store::batches::state::QUARANTINED => {
                "Der Stapel konnte nicht geteilt werden und liegt in der Quarantäne."
            }
            _ => "Der Inhalt dieses Stapels ist gelöscht.",
        };
        return error_page(Some(&who), StatusCode::NOT_FOUND, message);
    };
    let docs = match s.pipeline.store.batch_parts(&batch.id).await {
        Ok(d) => d,
        Err(e) => return failed(&who, e),
    };
    let settings = &s.pipeline.settings;
    let letters: Vec<Letter> = plan
        .parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let range = part.range();
            let doc = docs
                .iter()
                .find(|d| d.batch_pages.as_deref() == Some(range.as_str()));
            Letter {
                number: i + 1,
                id: doc.map(|d| d.id.to_string()),
                state: doc.map(|d| state_de(d.state)).unwrap_or("-").to_string(),
                in_review: doc.is_some_and(|d| d.state == DocState::Review),
                mailbox: doc
                    .and_then(|d| {
                        d.decision
                            .as_ref()
                            .map(|x| x.mailbox.clone())
                            .unwrap_or(d.mailbox.clone())
                    })
                    .map(|m| mailbox_label(settings, &m))
                    .unwrap_or_default(),
                reason: doc
                    .and_then(|d| {
                        d.reason.clone().or_else(|| {
                            d.decision
                                .as_ref()
                                .and_then(|x| x.explanation.review_reason.clone())
                        })
                    })
                    .unwrap_or_default(),
                range,
            }
        })
        .collect();
    // The split moves only while every letter waits in review (or quarantine).
    let editable = batch.state == crate::store::batches::state::SPLIT
        && !docs.is_empty()
        && docs
            .iter()
            .all(|d| matches!(d.state, DocState::Review | DocState::Quarantined));
    let tiles = tiles(&batch.id, &plan);
    render(&StackPage {
        chrome: Chrome::new(
            &who,
            format!("Stapel: {}", batch.original_name),
            "/pruefkorb",
        ),
        id: batch.id.clone(),
        received: time_de(&batch.created_at),
        page_count: tiles.len(),
        tiles,
        letters,
        editable,
        message: q.getrennt.map(|_| {
            "Die Trennstellen sind übernommen; die Briefe werden neu gebildet und neu zugeordnet."
                .to_string()
        }),
    })
}

/// `GET /stapel/{id}/seite/{n}`: page `n` of the stack as a small PNG, drawn in the sandbox.
async fn thumbnail(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path((id, page)): Path<(String, String)>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let not_found = || error_page(Some(&who), StatusCode::NOT_FOUND, "Seite nicht gefunden.");
    let Ok(batch) = find_batch(&s, &id).await else {
        return not_found();
    };
    let count = batch.page_count.unwrap_or(0).max(0) as u32;
    let Some(page) = page
        .trim_end_matches(".png")
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=count).contains(p))
    else {
        return not_found();
    };
    let Some(media) = MediaType::from_mime(&batch.media_type) else {
        return not_found();
    };
    if batch.purged_at.is_some() {
        return not_found();
    }
    let path = s.pipeline.blobs.path(&batch.sha256);
    // One worker process per image: no more at once than the machine has cores.
    let Ok(_permit) = s.page_images.acquire().await else {
        return failed(&who, "page image limiter closed");
    };
    match s
        .pipeline
        .extractor
        .page_thumbnail(&path, media, page)
        .await
    {
        Ok(png) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=600"),
            ],
            png,
        )
            .into_response(),
        Err(crate::extract::ExtractError::NoPageImage(_)) => not_found(),
        Err(e) => {
            tracing::warn!(batch = batch.id, page, error = %e, "stack thumbnail failed");
            error_page(
                Some(&who),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Das Seitenbild konnte nicht erzeugt werden.",
            )
        }
    }
}

/// The pages a form names as letter starts (fields `start`, repeated).
pub fn starts_from_form(body: &[u8]) -> Result<Vec<u32>, String> {
    form_urlencoded::parse(body)
        .filter(|(k, _)| k == "start")
        .map(|(_, v)| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("„{v}“ ist keine Seitenzahl."))
        })
        .collect()
}

/// `POST /stapel/{id}/trennen`: the stack split anew at the pages checked as "Briefanfang".
async fn split(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let batch = match find_batch(&s, &id).await {
        Ok(b) => b,
        Err(ApiError::NotFound(m)) => return error_page(Some(&who), StatusCode::NOT_FOUND, m),
        Err(e) => return failed(&who, e),
    };
    let mut starts = match starts_from_form(&body) {
        Ok(s) => s,
        Err(m) => return error_page(Some(&who), StatusCode::BAD_REQUEST, m),
    };
    // The pages where a letter always begins (the form shows them fixed, without a field).
    if let Some(plan) = batch
        .plan
        .clone()
        .and_then(|p| serde_json::from_value::<Plan>(p).ok())
    {
        starts.extend(
            tiles(&batch.id, &plan)
                .iter()
                .filter(|t| t.fixed.is_some())
                .map(|t| t.number),
        );
    }
    match move_split_points(&s, &who, &batch, starts).await {
        Ok(_) => {
            tracing::info!(
                batch = batch.id,
                actor = who.actor(),
                "split points moved on the desk"
            );
            Redirect::to(&format!("/stapel/{}?getrennt=1", batch.id)).into_response()
        }
        Err(ApiError::BadRequest(m)) => error_page(Some(&who), StatusCode::BAD_REQUEST, m),
        Err(ApiError::Conflict(m)) => error_page(Some(&who), StatusCode::CONFLICT, m),
        Err(ApiError::NotFound(m)) => error_page(Some(&who), StatusCode::NOT_FOUND, m),
        Err(e) => failed(&who, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Part, PlannedPage, StartedBy};

    fn page(number: u32, kind: PageKind) -> PlannedPage {
        PlannedPage {
            number,
            start_score: matches!(kind, PageKind::Content).then_some(0.4),
            kind,
            cues: vec!["Anrede".into()],
        }
    }

    fn part(first: u32, last: u32) -> Part {
        Part {
            pages: (first..=last).collect(),
            first,
            last,
            dropped: Vec::new(),
            started_by: StartedBy::LetterStart,
            confidence: 1.0,
            review_reason: None,
            broken: None,
        }
    }

    #[test]
    fn the_first_page_and_pages_after_a_separator_begin_a_letter_for_good() {
        let plan = Plan {
            pages: vec![
                page(1, PageKind::Content),
                page(2, PageKind::Blank),
                page(3, PageKind::Content),
                page(4, PageKind::Separator("Patch-T-Trennblatt".into())),
                page(5, PageKind::Blank),
                page(6, PageKind::Content),
                page(7, PageKind::Content),
            ],
            parts: vec![part(1, 3), part(6, 6), part(7, 7)],
        };
        let t = tiles("b", &plan);
        let fixed: Vec<u32> = t
            .iter()
            .filter(|t| t.fixed.is_some())
            .map(|t| t.number)
            .collect();
        assert_eq!(fixed, [1, 6]);
        let toggles: Vec<u32> = t.iter().filter(|t| t.toggle).map(|t| t.number).collect();
        assert_eq!(toggles, [3, 7]);
        let starts: Vec<u32> = t.iter().filter(|t| t.start).map(|t| t.number).collect();
        assert_eq!(starts, [1, 6, 7]);
        assert_eq!(
            t[1].letter,
            Some(1),
            "a blank back side belongs to its letter"
        );
        assert_eq!(t[3].letter, None, "a separator sheet belongs to no letter");
        assert_eq!(t[0].score.as_deref(), Some("0,40: Anrede"));
        assert_eq!(t[6].src, "/stapel/b/seite/7");
    }

    #[test]
    fn the_form_names_its_starts_and_refuses_what_is_no_page_number() {
        assert_eq!(
            starts_from_form(b"csrf=x&start=3&start=7&andere=1"),
            Ok(vec![3, 7])
        );
        assert!(starts_from_form(b"start=drei").is_err());
        assert_eq!(starts_from_form(b"csrf=x"), Ok(vec![]));
    }
}
