//! The daemon's HTTP side (axum): the JSON API under `/api`, the web desk at `/`, `/health`.
//!
//! - [`auth`]: the middleware that turns a session cookie or a bearer token into an
//!   [`Identity`](crate::auth::Identity) (and checks CSRF tokens of browser posts);
//! - [`json`]: the JSON API (`/api/...`): documents, review queue, assignment, re-drive;
//! - [`web`]: the German pages of the web desk, server-rendered with askama;
//! - [`metrics`]: `/metrics` in the Prometheus text format (admins and local scrapers).
//!
//! Error messages for people are German; the JSON shape is `{"error": "..."}`.

pub mod auth;
pub mod json;
pub mod metrics;
pub mod settings;
pub mod streaming;
pub mod web;

use crate::intake::Intake;
use crate::pipeline::Pipeline;
use crate::store::StoreError;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Pipeline (store, settings, classifier).
    pub pipeline: Arc<Pipeline>,
    /// Intake for uploads.
    pub intake: Intake,
    /// Logins, sessions and tokens.
    pub auth: crate::auth::Authenticator,
    /// The training run started on the admin page, if any (one at a time).
    pub training: web::admin::Training,
    /// Page images drawn at once at most (each is a sandboxed worker process).
    pub page_images: Arc<tokio::sync::Semaphore>,
    /// Uploads received at once at most (`[intake.upload] max_concurrent`).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// API errors mapped to status codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401.
    #[error("Nicht angemeldet: gültiges API-Token erforderlich.")]
    Unauthorized,
    /// 403: signed in, but the role does not allow it (or the CSRF token is missing).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 422: input refused (quarantined).
    #[error("{0}")]
    Unprocessable(String),
    /// 413: an upload over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: an upload that took longer than its time limit.
    #[error("{0}")]
    Timeout(String),
    /// 503: no upload slot became free in time.
    #[error("{0}")]
    Unavailable(String),
    /// 500.
    #[error("Interner Fehler: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status code it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The detail goes to the log, never to the caller.
            tracing::error!(error = %self, "API internal error");
            "Interner Fehler; Einzelheiten stehen im Protokoll des Dienstes.".to_string()
        } else {
            self.to_string()
        };
        (status, Json(serde_json::json!({"error": text}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => {
                ApiError::NotFound(format!("Dokument {id} nicht gefunden."))
            }
            StoreError::Conflict { id, state, .. } => ApiError::Conflict(format!(
                "Dokument {id} ist im Zustand „{state}“; diese Aktion ist dort nicht möglich."
            )),
            StoreError::UnknownUser(_) => ApiError::NotFound(e.to_string()),
            StoreError::Exists(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::auth::authenticator::AuthError> for ApiError {
    fn from(e: crate::auth::authenticator::AuthError) -> Self {
        use crate::auth::authenticator::AuthError;
        match e {
            AuthError::Store(s) => s.into(),
            AuthError::Password(crate::auth::password::PasswordError::Weak(m)) => {
                ApiError::BadRequest(m.into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Builds the router: `/health`, `/metrics`, `/api/...`, the web desk and its static assets.
pub fn router(state: ApiState) -> Router {
    let max = state.pipeline.settings.upload.max_bytes as usize;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .nest("/api", json::routes())
        .merge(web::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max.saturating_add(64 * 1024)))
        .with_state(state)
}

/// `/health`: without credentials only whether the daemon is up (and its store answers);
/// with a token or session also the documents per state and the active model.
async fn health(
    State(s): State<ApiState>,
    who: Option<axum::Extension<crate::auth::Identity>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.pipeline.store.ping().await?;
    if who.is_none() {
        return Ok(Json(serde_json::json!({"status": "ok"})));
    }
    let counts: serde_json::Map<String, serde_json::Value> = s
        .pipeline
        .store
        .state_counts()
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    let model = s
        .pipeline
        .router()
        .classifier()
        .model()
        .map(|m| m.meta.version.clone());
    // How far the extraction workers are locked in (null until the first worker started).
    let sandbox = s
        .pipeline
        .extractor
        .sandbox_status()
        .map(|st| serde_json::json!({"level": st.level(), "status": st}));
    Ok(Json(serde_json::json!({
        "status": "ok",
        "documents": counts,
        "model": model,
        "sandbox": sandbox,
    })))
}
