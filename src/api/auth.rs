//! Authentication: turns a request's credentials into an [`Identity`] in the request's
//! extensions. Handlers take an [`Identity`] argument (401 without one) or, on pages,
//! [`super::web::Signed`] (a redirect to `/login` without one).
//!
//! Credentials, in this order: `Authorization: Bearer <token>` (the configured global token,
//! which is an admin machine token); the session cookie of a browser.
//! A request with credentials that do not hold is refused with 401, not served anonymously.

use super::{ApiError, ApiState};
use crate::auth::Identity;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// The middleware: resolves the identity (if any) and stores it in the request's extensions.
pub async fn authenticate(
    State(s): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    if let Some(given) = bearer {
        let token = &s.pipeline.settings.api.token;
        if !token.is_empty() && constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            req.extensions_mut().insert(Identity::global_token());
        } else {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}
