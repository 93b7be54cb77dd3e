//! Eingang: `/eingang`.

use super::{Chrome, Signed, render};
use crate::api::ApiState;
use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/eingang", get(page))
}

#[derive(Template)]
#[template(path = "placeholder.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    text: &'static str,
}

async fn page(Signed(who): Signed) -> Response {
    render(&Page {
        chrome: Chrome::new(&who, "Eingang", "/eingang"),
        text: "Diese Seite folgt.",
    })
}
