//! Prüfkorb: `/pruefkorb` (the review queue, oldest first, with a confidence light) and
//! `/pruefkorb/{id}` (one item: page images with the deciding words marked, proposal and
//! runner-ups, the explanation in sentences, and the controls that decide it).
//!
//! Deciding is a plain form post (`/pruefkorb/{id}/zuordnen`, field `mailbox`); the keys
//! 1/2/3, Enter and j/k come from `desk.js`. "Nicht zuordenbar" (`/pruefkorb/{id}/notiz`) keeps
//! the item in the queue with a note. Role `poststelle` (and `admin`) only.

use super::document::{
    self, PageView, Span, explanation_sentences, german_decimal, mailbox_label, page_views,
    time_de, unless_poststelle, waiting_de,
};
use super::{Chrome, Signed, error_page, failed, no_document, render};
use crate::api::ApiState;
use crate::domain::{DocState, DocumentId, MailboxId};
use crate::store::DocumentRow;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// Items read for the queue at most.
const MAX_ITEMS: i64 = 1000;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/pruefkorb", get(list))
        .route("/pruefkorb/{id}", get(item))
        .route("/pruefkorb/{id}/zuordnen", post(assign))
        .route("/pruefkorb/{id}/notiz", post(note))
}

/// A confidence light: class and German word (colour is never the only signal).
#[derive(Debug, Clone)]
pub struct Light {
    /// CSS class: green, amber, red.
    pub class: &'static str,
    /// "hoch", "mittel", "niedrig".
    pub word: &'static str,
}

/// The light of a confidence against the threshold.
pub fn light(confidence: f64, threshold: f64) -> Light {
    if confidence >= threshold.max(0.5) * 0.9 {
        Light {
            class: "green",
            word: "hoch",
        }
    } else if confidence >= 0.4 {
        Light {
            class: "amber",
            word: "mittel",
        }
    } else {
        Light {
            class: "red",
            word: "niedrig",
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone)]
pub struct Row {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Channel.
    pub source: String,
    /// Arrival, as people read it.
    pub received: String,
    /// Waiting time.
    pub waiting: String,
    /// Proposal ("63 Bauordnung") or empty.
    pub proposal: String,
    /// Confidence "0,62".
    pub confidence: String,
    /// Its light.
    pub light: Light,
    /// Why it waits.
    pub reason: String,
    /// The stack it was split from (its id), for the stack's page.
    pub batch: Option<String>,
}

#[derive(Template)]
#[template(path = "review_list.html", config = "src/api/web/askama.toml")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    erledigt: Option<String>,
}

/// The review items, oldest first.
async fn queue(s: &ApiState) -> Result<Vec<DocumentRow>, crate::store::StoreError> {
    let mut docs = s
        .pipeline
        .store
        .list(Some(DocState::Review), MAX_ITEMS)
        .await?;
    docs.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    Ok(docs)
}

async fn list(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let docs = match queue(&s).await {
        Ok(d) => d,
        Err(e) => return failed(&who, e),
    };
    let settings = &s.pipeline.settings;
    let rows = docs
        .iter()
        .map(|d| {
            let threshold = d
                .decision
                .as_ref()
                .map(|x| x.explanation.threshold)
                .unwrap_or(0.75);
            let conf = d
                .decision
                .as_ref()
                .map(|x| x.confidence)
                .or(d.confidence)
                .unwrap_or(0.0);
            let proposal = match &d.decision {
                Some(x) => x.mailbox.clone(),
                None => d.mailbox.clone(),
            };
            Row {
                id: d.id.to_string(),
                name: d.original_name.clone(),
                source: source_de(&d.source).to_string(),
                received: time_de(&d.created_at),
                waiting: waiting_de(&d.created_at),
                proposal: proposal
                    .as_ref()
                    .map(|m| mailbox_label(settings, m))
                    .unwrap_or_default(),
                confidence: german_decimal(conf),
                light: light(conf, threshold),
                reason: d
                    .decision
                    .as_ref()
                    .and_then(|x| x.explanation.review_reason.clone())
                    .unwrap_or_default(),
                batch: d.batch_id.clone(),
            }
        })
        .collect();
    let notice = q
        .erledigt
        .map(|_| "Zugeordnet. Der Prüfkorb ist leer.".to_string());
    render(&ListPage {
        chrome: Chrome::new(&who, "Prüfkorb", "/pruefkorb"),
        rows,
        notice,
    })
}

/// A channel's name in German.
pub fn source_de(source: &str) -> &str {
    match source {
        "hot_folder" => "Scanner",
        "upload" => "Hochgeladen",
        s if s.starts_with("imap") => "E-Mail",
        other => other,
    }
}

/// A button that assigns.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Mailbox id.
    pub id: String,
    /// "63 Bauordnung".
    pub label: String,
    /// Score "0,62".
    pub score: String,
    /// Key 1, 2 or 3.
    pub key: usize,
}

/// An entry of the list of all mailboxes.
#[derive(Debug, Clone)]
pub struct MailboxOption {
    /// Mailbox id.
    pub id: String,
    /// "63 Bauordnung".
    pub label: String,
}

#[derive(Template)]
#[template(path = "review_item.html", config = "src/api/web/askama.toml")]
struct ItemPage {
    chrome: Chrome,
    id: String,
    source: String,
    received: String,
    waiting: String,
    light: Light,
    confidence: String,
    choices: Vec<Choice>,
    all: Vec<MailboxOption>,
    sentences: Vec<String>,
    pages: Vec<PageView>,
    text: Vec<Vec<Span>>,
    notes: Vec<String>,
    prev: Option<String>,
    next: Option<String>,
    position: usize,
    total: usize,
    message: Option<String>,
    deciding: Vec<String>,
    /// The stack it was split from and its pages there: (stack id, "3-5").
    batch: Option<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct ItemQuery {
    notiert: Option<String>,
    fehler: Option<String>,
}

async fn item(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let not_found = || {
        error_page(
            Some(&who),
            StatusCode::NOT_FOUND,
            "Dieses Dokument liegt nicht (mehr) im Prüfkorb.",
        )
    };
    let Some(id) = DocumentId::parse(&id) else {
        return not_found();
    };
    let doc = match s.pipeline.store.get(&id).await {
        Ok(d) if d.state == DocState::Review => d,
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => return not_found(),
        Err(e) => return failed(&who, e),
    };
    let docs = match queue(&s).await {
        Ok(d) => d,
        Err(e) => return failed(&who, e),
    };
    let pos = docs.iter().position(|d| d.id == doc.id).unwrap_or(0);
    let prev = pos
        .checked_sub(1)
        .and_then(|i| docs.get(i))
        .map(|d| d.id.to_string());
    let next = docs.get(pos + 1).map(|d| d.id.to_string());
    let settings = &s.pipeline.settings;
    let extraction = document::extraction_of(&s, &id).await;
    let decision = doc.decision.as_ref();
    let (pages, text) = page_views(&doc, extraction.as_ref(), decision);
    let mut choices: Vec<Choice> = Vec::new();
    if let Some(d) = decision {
        for c in &d.explanation.candidates {
            if choices.len() == 3 {
                break;
            }
            // A candidate without evidence is no proposal: pressing 1 must not guess.
            if c.score > 0.0 && settings.mailboxes.iter().any(|m| m.id == c.mailbox) {
                choices.push(Choice {
                    id: c.mailbox.to_string(),
                    label: mailbox_label(settings, &c.mailbox),
                    score: german_decimal(c.score),
                    key: choices.len() + 1,
                });
            }
        }
    }
    let all = settings
        .mailboxes
        .iter()
        .map(|m| MailboxOption {
            id: m.id.to_string(),
            label: format!("{} {}", m.id, m.name),
        })
        .collect();
    let notes = match s.pipeline.store.events(&id).await {
        Ok(ev) => ev
            .iter()
            .filter(|e| e.kind == "review_note" || e.kind == "sent_back")
            .map(|e| {
                let text = e.detail["note"]
                    .as_str()
                    .or(e.detail["reason"].as_str())
                    .unwrap_or_default();
                let what = if e.kind == "sent_back" {
                    "zurückgegeben"
                } else {
                    "Notiz"
                };
                format!("{} ({what}, {}): {text}", e.actor, time_de(&e.at))
            })
            .collect(),
        Err(e) => return failed(&who, e),
    };
    let conf = decision
        .map(|d| d.confidence)
        .or(doc.confidence)
        .unwrap_or(0.0);
    let threshold = decision.map(|d| d.explanation.threshold).unwrap_or(0.75);
    let message = if q.notiert.is_some() {
        Some("Die Notiz ist gespeichert; das Dokument bleibt im Prüfkorb.".to_string())
    } else {
        q.fehler
            .map(|_| "Bitte ein Postfach aus der Liste wählen.".to_string())
    };
    render(&ItemPage {
        chrome: Chrome::new(
            &who,
            format!("Prüfkorb: {}", doc.original_name),
            "/pruefkorb",
        ),
        id: id.to_string(),
        source: source_de(&doc.source).to_string(),
        received: time_de(&doc.created_at),
        waiting: waiting_de(&doc.created_at),
        light: light(conf, threshold),
        confidence: german_decimal(conf),
        choices,
        all,
        sentences: decision
            .map(|d| explanation_sentences(settings, d))
            .unwrap_or_default(),
        pages,
        text,
        notes,
        prev,
        next,
        position: pos + 1,
        total: docs.len(),
        message,
        deciding: decision
            .map(document::deciding_words)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        batch: doc
            .batch_id
            .clone()
            .map(|b| (b, doc.batch_pages.clone().unwrap_or_default())),
    })
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    mailbox: String,
}

/// The mailbox a form names: its id, or "63 Bauordnung" as the searchable list shows it.
pub fn mailbox_from_form(s: &ApiState, value: &str) -> Option<MailboxId> {
    let first = value.split_whitespace().next()?;
    MailboxId::parse(first).filter(|m| s.pipeline.settings.mailboxes.iter().any(|mb| &mb.id == m))
}

async fn assign(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let Some(id) = DocumentId::parse(&id) else {
        return no_document(&who);
    };
    let Some(mailbox) = mailbox_from_form(&s, &f.mailbox) else {
        return Redirect::to(&format!("/pruefkorb/{id}?fehler=postfach")).into_response();
    };
    match s.pipeline.store.get(&id).await {
        Ok(d) if d.state == DocState::Review => {}
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
            return error_page(
                Some(&who),
                StatusCode::CONFLICT,
                "Dieses Dokument liegt nicht mehr im Prüfkorb (schon entschieden?).",
            );
        }
        Err(e) => return failed(&who, e),
    }
    let next = match queue(&s).await {
        Ok(docs) => {
            let pos = docs.iter().position(|d| d.id == id);
            let after = pos
                .and_then(|p| docs.get(p + 1))
                .or_else(|| docs.iter().find(|d| d.id != id));
            after.map(|d| d.id.to_string())
        }
        Err(e) => return failed(&who, e),
    };
    if let Err(e) = s
        .pipeline
        .store
        .assign(&id, &mailbox, who.actor(), "review")
        .await
    {
        return failed(&who, e);
    }
    s.pipeline.wake.notify_one();
    crate::sample::after_correction(&s.pipeline, &id).await;
    tracing::info!(document = %id, mailbox = %mailbox, actor = who.actor(), "assigned in the review station");
    match next {
        Some(n) => Redirect::to(&format!("/pruefkorb/{n}")).into_response(),
        None => Redirect::to("/pruefkorb?erledigt=1").into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct NoteForm {
    note: String,
}

async fn note(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Form(f): Form<NoteForm>,
) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    let Some(id) = DocumentId::parse(&id) else {
        return no_document(&who);
    };
    let note = f.note.trim();
    if note.is_empty() || note.chars().count() > 500 {
        return error_page(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Bitte eine Notiz mit 1 bis 500 Zeichen angeben.",
        );
    }
    match s.pipeline.store.get(&id).await {
        Ok(d) if d.state == DocState::Review => {}
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
            return error_page(
                Some(&who),
                StatusCode::NOT_FOUND,
                "Dieses Dokument liegt nicht (mehr) im Prüfkorb.",
            );
        }
        Err(e) => return failed(&who, e),
    }
    if let Err(e) = s
        .pipeline
        .store
        .log_event(
            Some(&id),
            who.actor(),
            "review_note",
            serde_json::json!({"note": note, "unassignable": true}),
        )
        .await
    {
        return failed(&who, e);
    }
    Redirect::to(&format!("/pruefkorb/{id}?notiert=1")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lights_follow_the_threshold() {
        assert_eq!(light(0.74, 0.75).class, "green");
        assert_eq!(light(0.5, 0.75).class, "amber");
        assert_eq!(light(0.2, 0.75).word, "niedrig");
    }
}
