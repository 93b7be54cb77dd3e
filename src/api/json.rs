//! The JSON API under `/api`. Every route needs an [`Identity`] (a bearer token or a session);
//! without one it answers 401.

use super::{ApiError, ApiState};
use crate::auth::Identity;
use crate::domain::{DocState, DocumentId, MailboxId};
use crate::intake::Outcome;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The `/api` routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/documents", post(upload).get(list))
        .route("/documents/{id}", get(show))
        .route("/documents/{id}/assign", post(assign))
        .route("/documents/{id}/redrive", post(redrive))
        .route("/review", get(review))
        .route("/quarantine", get(quarantine))
        .route("/mailboxes", get(mailboxes))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

async fn upload(
    _who: Identity,
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

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(
    _who: Identity,
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
    _who: Identity,
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

async fn review(
    _who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    _who: Identity,
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
    _who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let state = s.pipeline.store.redrive(&id, "api").await?;
    s.pipeline.wake.notify_one();
    Ok(Json(serde_json::json!({"id": id, "state": state})))
}

async fn quarantine(
    _who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({"quarantine": s.pipeline.store.quarantine_entries(500).await?}),
    ))
}

async fn mailboxes(_who: Identity, State(s): State<ApiState>) -> Json<serde_json::Value> {
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
