//! Prüfkorb: `/pruefkorb` (not built yet: the frame with a note).

use super::{Signed, placeholder};
use crate::api::ApiState;
use axum::Router;
use axum::response::Response;
use axum::routing::get;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/pruefkorb", get(page))
}

async fn page(Signed(who): Signed) -> Response {
    placeholder(&who, "Prüfkorb", "/pruefkorb")
}
