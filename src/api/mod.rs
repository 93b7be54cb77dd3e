//! The HTTP API (axum): health, upload, documents, review queue, assignment, re-drive.
//!
//! Every `/api` route needs `Authorization: Bearer <token>` (token from env or file). Error
//! messages for people are German; the JSON shape is `{"error": "..."}`.

pub mod settings;

use crate::domain::{DocState, DocumentId, MailboxId};
use crate::intake::{Intake, Outcome};
use crate::pipeline::Pipeline;
use crate::store::StoreError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Pipeline (store, settings, classifier).
    pub pipeline: Arc<Pipeline>,
    /// Intake for uploads.
    pub intake: Intake,
}

/// API errors mapped to status codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401.
    #[error("Nicht angemeldet: gültiges API-Token erforderlich.")]
    Unauthorized,
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
    /// 500.
    #[error("Interner Fehler: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "API internal error");
        }
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
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
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    let max = state.pipeline.settings.upload_max_bytes as usize;
    let api = Router::new()
        .route("/documents", post(upload).get(list))
        .route("/documents/{id}", get(show))
        .route("/documents/{id}/assign", post(assign))
        .route("/documents/{id}/redrive", post(redrive))
        .route("/review", get(review))
        .route("/quarantine", get(quarantine))
        .route("/mailboxes", get(mailboxes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(max.saturating_add(64 * 1024)));
    Router::new()
        .route("/health", get(health))
        .nest("/api", api)
        .with_state(state)
}

async fn auth(State(s): State<ApiState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let token = &s.pipeline.settings.api.token;
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    match given {
        Some(g)
            if !token.is_empty() && constant_time_eq(g.as_bytes(), token.expose().as_bytes()) =>
        {
            Ok(next.run(req).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    s.pipeline.store.ping().await?;
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
    Ok(Json(
        serde_json::json!({"status": "ok", "documents": counts, "model": model}),
    ))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

async fn upload(
    State(s): State<ApiState>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let max = s.pipeline.settings.upload_max_bytes;
    let is_multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (name, bytes) = if is_multipart {
        let mut mp = Multipart::from_request(req, &s)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Ungültiger Upload: {e}")))?;
        let mut found = None;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(format!("Ungültiger Upload: {e}")))?
        {
            if field.name() == Some("file") {
                let name = field
                    .file_name()
                    .map(str::to_string)
                    .or(q.name.clone())
                    .unwrap_or_else(|| "upload".into());
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("Upload abgebrochen: {e}")))?;
                found = Some((name, data.to_vec()));
                break;
            }
        }
        found.ok_or_else(|| ApiError::BadRequest("Feld „file“ fehlt im Upload.".into()))?
    } else {
        let body = axum::body::to_bytes(req.into_body(), max as usize + 1)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Upload abgebrochen oder zu groß: {e}")))?;
        (
            q.name.clone().unwrap_or_else(|| "upload".into()),
            body.to_vec(),
        )
    };
    let name = crate::intake::safe_name(&name);
    match s
        .intake
        .ingest("upload", &name, &bytes, max)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    {
        Outcome::New(id) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"id": id, "duplicate": false, "state": DocState::Received})),
        )),
        Outcome::Duplicate(id) => {
            let doc = s.pipeline.store.get(&id).await?;
            Ok((
                StatusCode::OK,
                Json(serde_json::json!({"id": id, "duplicate": true, "state": doc.state})),
            ))
        }
        Outcome::Quarantined(reason) => {
            s.intake
                .quarantine("upload", &name, &reason, "", None, Some(&bytes))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Err(ApiError::Unprocessable(reason))
        }
    }
}

use axum::extract::FromRequest;

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = match q.state.as_deref() {
        Some(st) => Some(
            DocState::parse(st)
                .ok_or_else(|| ApiError::BadRequest(format!("Unbekannter Zustand „{st}“.")))?,
        ),
        None => None,
    };
    let docs = s
        .pipeline
        .store
        .list(state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(serde_json::json!({"documents": docs})))
}

fn parse_id(id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(id)
        .ok_or_else(|| ApiError::NotFound(format!("Dokument {id} nicht gefunden.")))
}

async fn show(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let doc = s.pipeline.store.get(&id).await?;
    let events = s.pipeline.store.events(&id).await?;
    let explanation = doc.decision.as_ref().map(|d| d.explanation.clone());
    let metadata = s.pipeline.store.metadata(&id).await?;
    Ok(Json(serde_json::json!({
        "document": doc,
        "state": doc.state,
        "mailbox": doc.mailbox,
        "explanation": explanation,
        "metadata": metadata,
        "events": events,
    })))
}

async fn review(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let docs = s.pipeline.store.list(Some(DocState::Review), 1000).await?;
    let items: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "original_name": d.original_name, "received_at": d.created_at,
                "proposal": d.mailbox, "confidence": d.confidence,
                "reason": d.decision.as_ref().and_then(|x| x.explanation.review_reason.clone()),
                "candidates": d.decision.as_ref().map(|x| x.explanation.candidates.clone()),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"review": items})))
}

#[derive(Debug, Deserialize)]
struct AssignBody {
    mailbox: String,
    actor: Option<String>,
    origin: Option<String>,
}

async fn assign(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let mailbox = MailboxId::parse(&body.mailbox)
        .filter(|m| s.pipeline.settings.mailboxes.iter().any(|mb| &mb.id == m))
        .ok_or_else(|| ApiError::BadRequest(format!("Unbekanntes Postfach „{}“.", body.mailbox)))?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let origin = body.origin.unwrap_or_else(|| "review".into());
    s.pipeline
        .store
        .assign(&id, &mailbox, &actor, &origin)
        .await?;
    s.pipeline.wake.notify_one();
    Ok(Json(
        serde_json::json!({"id": id, "mailbox": mailbox, "state": DocState::Queued}),
    ))
}

async fn redrive(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let state = s.pipeline.store.redrive(&id, "api").await?;
    s.pipeline.wake.notify_one();
    Ok(Json(serde_json::json!({"id": id, "state": state})))
}

async fn quarantine(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({"quarantine": s.pipeline.store.quarantine_entries(500).await?}),
    ))
}

async fn mailboxes(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let st = &s.pipeline.settings;
    let list: Vec<serde_json::Value> = st
        .mailboxes
        .iter()
        .map(|m| serde_json::json!({"id": m.id, "name": m.name, "target": m.target}))
        .collect();
    Json(
        serde_json::json!({"mailboxes": list, "review": {"id": st.review.id, "name": st.review.name}}),
    )
}
