//! Anmeldung: `/login` (form fields `username`, `password`) and `/logout`.

use super::render;
use crate::api::ApiState;
use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/login", get(form))
}

/// The login form.
#[derive(Template)]
#[template(path = "login.html", config = "src/api/web/askama.toml")]
pub struct LoginPage {
    /// The town's name.
    pub town: String,
    /// A message (wrong password, locked, signed out).
    pub message: Option<String>,
    /// Where to go after signing in.
    pub next: String,
    /// The pre-session CSRF token.
    pub csrf: String,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn form(Query(q): Query<NextQuery>) -> Response {
    render(&LoginPage {
        town: "Musterstadt".into(),
        message: None,
        next: q.next.unwrap_or_else(|| "/".into()),
        csrf: String::new(),
    })
    .into_response()
}
