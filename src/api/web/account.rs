//! Mein Konto: `/konto` shows the signed-in person's API tokens (for scanner software and
//! scripts) and lets them make a new one (shown once: the store keeps only its hash) or revoke
//! one. Every role has it; an admin manages everyone's tokens on `/verwaltung`.

use super::document::time_de;
use super::{Chrome, Signed, error_page, failed, render};
use crate::api::ApiState;
use crate::auth::{Identity, Via};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/konto", get(page))
        .route("/konto/tokens", post(create))
        .route("/konto/tokens/{id}/widerrufen", post(revoke))
}

/// One of the person's tokens.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Made.
    pub created: String,
    /// Last used.
    pub used: String,
    /// Revoked.
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    role: &'static str,
    mailboxes: String,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    personal: bool,
}

async fn show(s: &ApiState, who: &Identity, new_token: Option<String>) -> Response {
    let personal = !matches!(who.via, Via::GlobalToken);
    let tokens = if personal {
        match s.pipeline.store.tokens(Some(&who.name)).await {
            Ok(t) => t,
            Err(e) => return failed(who, e),
        }
    } else {
        Vec::new()
    };
    render(&Page {
        chrome: Chrome::new(who, "Mein Konto", "/konto"),
        role: who.role.label_de(),
        mailboxes: if who.sees_all() {
            "alle".into()
        } else {
            who.mailboxes
                .iter()
                .map(|m| super::document::mailbox_label(&s.pipeline.settings, m))
                .collect::<Vec<_>>()
                .join(", ")
        },
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                label: t.label,
                created: time_de(&t.created_at),
                used: t.last_used_at.as_deref().map(time_de).unwrap_or_default(),
                revoked: t.revoked_at.is_some(),
            })
            .collect(),
        new_token,
        personal,
    })
}

async fn page(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    show(&s, &who, None).await
}

#[derive(Debug, Deserialize)]
struct NewToken {
    label: String,
}

async fn create(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Form(f): Form<NewToken>,
) -> Response {
    if matches!(who.via, Via::GlobalToken) {
        return error_page(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Das globale Token gehört keinem Konto.",
        );
    }
    let label = f.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return error_page(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Bitte eine Bezeichnung mit 1 bis 100 Zeichen angeben.",
        );
    }
    match s.auth.create_token(&who.name, label, who.actor()).await {
        // The token is shown in this answer only (no redirect: it is not stored in clear).
        Ok((_, token)) => show(&s, &who, Some(token)).await,
        Err(e) => failed(&who, e),
    }
}

async fn revoke(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    let store = &s.pipeline.store;
    let not_found = || error_page(Some(&who), StatusCode::NOT_FOUND, "Token nicht gefunden.");
    match store.token(&id).await {
        Ok(Some(t)) if t.user_name == who.name => {}
        Ok(_) => return not_found(),
        Err(e) => return failed(&who, e),
    }
    match store.revoke_token(&id, who.actor()).await {
        Ok(_) => Redirect::to("/konto").into_response(),
        Err(e) => failed(&who, e),
    }
}
