//! The JSON API under `/api`. Every route needs an [`Identity`] (a bearer token or a session);
//! without one it answers 401. Roles are enforced here: a department (`fachbereich`) sees only
//! documents in its own mailboxes (any other answers 404, as if it did not exist), the review
//! queue, uploads, the quarantine list and reading a quarantined document again are the
//! Poststelle's (403 for others), re-drives,
//! the model comparison and other people's tokens are the admins'. The Stichprobe (`/samples`)
//! is the Poststelle's. The `actor` of every audit event is the identity's
//! name, never a name from the request body.

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
        .route("/documents/{id}/retry", post(retry_quarantined))
        .route("/review", get(review))
        .route("/samples", get(samples))
        .route("/samples/precision", get(precision))
        .route("/samples/{id}/confirm", post(confirm_sample))
        .route("/samples/{id}/overturn", post(overturn_sample))
        .route("/visual-checks", get(visual_checks))
        .route("/visual-checks/{id}/ok", post(visual_check_ok))
        .route("/visual-checks/{id}/rescan", post(visual_check_rescan))
        .route("/quarantine", get(quarantine))
        .route("/batches/{id}", get(show_batch))
        .route("/batches/{id}/split", post(resplit_batch))
        .route("/mailboxes", get(mailboxes))
        .route("/models/compare", get(compare_models))
        .route("/me", get(me))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
}

/// 403 unless the identity may work as the Poststelle.
fn need_poststelle(who: &Identity) -> Result<(), ApiError> {
    if who.is_poststelle() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Diese Aktion ist der Poststelle vorbehalten.".into(),
        ))
    }
}

/// 403 unless the identity is an admin.
fn need_admin(who: &Identity) -> Result<(), ApiError> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Diese Aktion ist der Verwaltung (Rolle admin) vorbehalten.".into(),
        ))
    }
}

/// The document, if `who` may see it; otherwise 404, as if it did not exist.
pub async fn visible_document(
    s: &ApiState,
    who: &Identity,
    id: &DocumentId,
) -> Result<crate::store::DocumentRow, ApiError> {
    match s.pipeline.store.get(id).await {
        Ok(doc) if who.sees_document(&doc) => Ok(doc),
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("Dokument {id} nicht gefunden.")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// Room for the multipart framing around the file in a request's declared length.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// An upload, as multipart field `file` or as the raw body (`?name=`). The file streams into
/// the data directory with the size limit enforced on the way (413), within an upload slot
/// (503 when none becomes free) and the time limit (408); it is committed (or quarantined)
/// before this answers.
async fn upload(
    who: Identity,
    State(s): State<ApiState>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    need_poststelle(&who)?;
    let limits = s.pipeline.settings.upload.clone();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let work = async {
        let _slot = super::streaming::slot(&s, limits.timeout).await?;
        receive_upload(&s, &who, q, req, limits.max_bytes).await
    };
    let outcome = tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| super::streaming::timed_out(limits.timeout))??;
    match outcome {
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
        Outcome::Retried(id) => Ok((
            StatusCode::OK,
            Json(serde_json::json!({
                "id": id, "duplicate": true, "retried": true, "state": DocState::Received,
            })),
        )),
        Outcome::Quarantined(reason) => Err(ApiError::Unprocessable(reason)),
    }
}

/// Streams the upload's file into the blob store and commits it.
async fn receive_upload(
    s: &ApiState,
    who: &Identity,
    q: UploadQuery,
    req: Request,
    max: u64,
) -> Result<Outcome, ApiError> {
    use super::streaming::{check_declared_length, read_past, receive};
    let blobs = &s.intake.blobs;
    let is_multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let overhead = if is_multipart { MULTIPART_OVERHEAD } else { 0 };
    if let Err(e) = check_declared_length(req.headers(), max, overhead) {
        read_past(&mut req.into_body().into_data_stream()).await;
        return Err(e.into());
    }
    let (name, incoming) = if is_multipart {
        let mut mp = Multipart::from_request(req, s)
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
                found = Some((name, receive(blobs, field, max).await?));
                break;
            }
        }
        found.ok_or_else(|| ApiError::BadRequest("Feld „file“ fehlt im Upload.".into()))?
    } else {
        let name = q.name.clone().unwrap_or_else(|| "upload".into());
        let incoming = receive(blobs, req.into_body().into_data_stream(), max).await?;
        (name, incoming)
    };
    let name = crate::intake::safe_name(&name);
    s.intake
        .upload(who.actor(), &name, incoming, max)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(
    who: Identity,
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
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let docs = if who.sees_all() {
        s.pipeline.store.list(state, limit).await?
    } else {
        s.pipeline
            .store
            .list_in_mailboxes(&who.mailboxes, state, limit)
            .await?
    };
    Ok(Json(serde_json::json!({"documents": docs})))
}

fn parse_id(id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(id)
        .ok_or_else(|| ApiError::NotFound(format!("Dokument {id} nicht gefunden.")))
}

async fn show(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let doc = visible_document(&s, &who, &id).await?;
    let events = s.pipeline.store.events(&id).await?;
    let explanation = doc.decision.as_ref().map(|d| d.explanation.clone());
    let metadata = s.pipeline.store.metadata(&id).await?;
    let capture = s.pipeline.store.capture_record(&id).await?;
    let seal = capture.as_ref().map(|c| c.seal());
    Ok(Json(serde_json::json!({
        "document": doc,
        "state": doc.state,
        "mailbox": doc.mailbox,
        "explanation": explanation,
        "metadata": metadata,
        "capture": capture,
        "capture_seal": seal,
        "events": events,
    })))
}

async fn review(
    who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let docs = s.pipeline.store.list(Some(DocState::Review), 1000).await?;
    let items: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "original_name": d.original_name, "received_at": d.created_at,
                "proposal": d.mailbox, "confidence": d.confidence,
                "reason": d.decision.as_ref().and_then(|x| x.explanation.review_reason.clone()),
                "candidates": d.decision.as_ref().map(|x| x.explanation.candidates.clone()),
                "batch_id": d.batch_id, "batch_pages": d.batch_pages,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"review": items})))
}

#[derive(Debug, Deserialize)]
struct AssignBody {
    mailbox: String,
    origin: Option<String>,
}

/// Assigns a document to a mailbox: the Poststelle any document it may decide; a department
/// only a document in its own mailboxes (forwarding it, a correction).
async fn assign(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    visible_document(&s, &who, &id).await?;
    let mailbox = MailboxId::parse(&body.mailbox)
        .filter(|m| s.pipeline.settings.mailboxes.iter().any(|mb| &mb.id == m))
        .ok_or_else(|| ApiError::BadRequest(format!("Unbekanntes Postfach „{}“.", body.mailbox)))?;
    let origin = if who.sees_all() {
        body.origin.unwrap_or_else(|| "review".into())
    } else {
        "forward".into()
    };
    s.pipeline
        .store
        .assign(&id, &mailbox, who.actor(), &origin)
        .await?;
    s.pipeline.wake.notify_one();
    crate::sample::after_correction(&s.pipeline, &id).await;
    Ok(Json(
        serde_json::json!({"id": id, "mailbox": mailbox, "state": DocState::Queued}),
    ))
}

async fn redrive(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_admin(&who)?;
    let id = parse_id(&id)?;
    let state = s.pipeline.store.redrive(&id, who.actor()).await?;
    s.pipeline.wake.notify_one();
    Ok(Json(serde_json::json!({"id": id, "state": state})))
}

/// Reads a quarantined document again from its stored original (`quarantined -> received`);
/// the Poststelle's (and admins'). 409 for a document that is not quarantined.
async fn retry_quarantined(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let id = parse_id(&id)?;
    s.pipeline.store.retry_quarantined(&id, who.actor()).await?;
    s.pipeline.wake.notify_one();
    Ok(Json(
        serde_json::json!({"id": id, "state": DocState::Received}),
    ))
}

async fn quarantine(
    who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
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

#[derive(Debug, Deserialize)]
struct CompareQuery {
    version: Option<String>,
}

/// The shadow model's comparison with the active one (admins only, as `poststelle model
/// compare --json`): the versions active and in shadow now, and the comparison of `?version=`
/// (default: the one in shadow now, else the last one logged), `null` before any was logged.
async fn compare_models(
    who: Identity,
    State(s): State<ApiState>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_admin(&who)?;
    let registry = crate::train::Registry::new(&s.pipeline.settings.classify.models);
    let shadow = registry.shadow_version();
    let comparison =
        crate::shadow::compare_in_store(&s.pipeline.store, q.version.as_deref(), shadow.clone())
            .await?;
    Ok(Json(serde_json::json!({
        "active": registry.active_version(), "shadow": shadow, "comparison": comparison,
    })))
}

/// Who the caller is: name, role, mailboxes, how signed in.
async fn me(who: Identity) -> Json<serde_json::Value> {
    let via = match &who.via {
        crate::auth::Via::Session { .. } => "session",
        crate::auth::Via::Token => "token",
        crate::auth::Via::GlobalToken => "global_token",
    };
    Json(serde_json::json!({
        "name": who.name, "role": who.role, "mailboxes": who.mailboxes, "via": via,
    }))
}

#[derive(Debug, Deserialize)]
struct TokensQuery {
    user: Option<String>,
}

/// The caller's tokens; an admin may ask for another account's (`?user=`) or all (`?user=*`).
async fn tokens(
    who: Identity,
    State(s): State<ApiState>,
    Query(q): Query<TokensQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = match q.user.as_deref() {
        Some(u) if u != who.name => {
            need_admin(&who)?;
            (u != "*").then_some(u)
        }
        _ => Some(who.name.as_str()),
    };
    Ok(Json(
        serde_json::json!({"tokens": s.pipeline.store.tokens(user).await?}),
    ))
}

#[derive(Debug, Deserialize)]
struct NewToken {
    label: String,
    user: Option<String>,
}

/// Creates a token for the caller (or, for an admin, for `user`). The token is in this answer
/// only; the store keeps its hash.
async fn create_token(
    who: Identity,
    State(s): State<ApiState>,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let user = body.user.clone().unwrap_or_else(|| who.name.clone());
    if user != who.name {
        need_admin(&who)?;
    }
    if who.via == crate::auth::Via::GlobalToken && body.user.is_none() {
        return Err(ApiError::BadRequest(
            "Das globale Token gehört keinem Benutzer: bitte „user“ angeben.".into(),
        ));
    }
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "Bitte eine Bezeichnung mit 1 bis 100 Zeichen angeben.".into(),
        ));
    }
    let (id, token) = s.auth.create_token(&user, label, who.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "user": user, "label": label, "token": token})),
    ))
}

/// Revokes a token: one's own, or any for an admin (404 for another's token otherwise).
async fn revoke_token(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("Token {id} nicht gefunden."));
    let token = s.pipeline.store.token(&id).await?.ok_or_else(not_found)?;
    if token.user_name != who.name && !who.is_admin() {
        return Err(not_found());
    }
    let revoked = s.pipeline.store.revoke_token(&id, who.actor()).await?;
    Ok(Json(serde_json::json!({"id": id, "revoked": revoked})))
}

/// Open samples of the Stichprobe, oldest first.
async fn samples(
    who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let open = s.pipeline.store.open_samples(1000).await?;
    Ok(Json(serde_json::json!({"samples": open})))
}

/// The measured precision per mailbox: judged samples, confirmed, precision, 95 % Wilson
/// interval, the target and the threshold in force (raised or not).
async fn precision(
    who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let store = &s.pipeline.store;
    let measured = crate::sample::measure(&store.judged_samples(None).await?);
    let raises = store.threshold_raises().await?;
    let target = s.pipeline.settings.classify.precision_target;
    let router = s.pipeline.router();
    let classifier = router.classifier();
    let mailboxes: Vec<serde_json::Value> = measured
        .iter()
        .map(|m| {
            serde_json::json!({
                "mailbox": m.mailbox, "judged": m.judged, "confirmed": m.confirmed,
                "overturned": m.overturned, "precision": m.precision,
                "interval": {"lower": m.lower, "upper": m.upper, "level": 0.95},
                "below_target": m.upper < target,
                "threshold": classifier.threshold_for(&m.mailbox),
                "raised": raises.get(&m.mailbox),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "target": target,
        "min_judged": s.pipeline.settings.sample.min_judged,
        "share": s.pipeline.settings.sample.share,
        "open": store.open_sample_count().await?,
        "mailboxes": mailboxes,
    })))
}

/// The machine's mailbox was right.
async fn confirm_sample(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let id = parse_sample_id(&id)?;
    judge(
        &s,
        &who,
        &id,
        crate::store::samples::Verdict::Confirmed,
        None,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct OverturnBody {
    mailbox: String,
}

/// Another mailbox was right: the document is assigned there (a correction, re-delivered).
async fn overturn_sample(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<OverturnBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let id = parse_sample_id(&id)?;
    let mailbox = MailboxId::parse(&body.mailbox)
        .filter(|m| s.pipeline.settings.mailboxes.iter().any(|mb| &mb.id == m))
        .ok_or_else(|| ApiError::BadRequest(format!("Unbekanntes Postfach „{}“.", body.mailbox)))?;
    judge(
        &s,
        &who,
        &id,
        crate::store::samples::Verdict::Overturned,
        Some(&mailbox),
    )
    .await
}

fn parse_sample_id(id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(id)
        .ok_or_else(|| ApiError::NotFound(format!("Stichprobe {id} nicht gefunden.")))
}

async fn judge(
    s: &ApiState,
    who: &Identity,
    id: &DocumentId,
    verdict: crate::store::samples::Verdict,
    correct: Option<&MailboxId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::sample::SampleError;
    use crate::store::StoreError;
    match crate::sample::judge(&s.pipeline, id, verdict, correct, who.actor()).await {
        Ok(j) => Ok(Json(serde_json::json!({
            "sample": j.sample, "raised": j.raised,
        }))),
        Err(SampleError::Store(StoreError::NotFound(_))) => Err(ApiError::NotFound(format!(
            "Stichprobe {id} nicht gefunden."
        ))),
        Err(SampleError::Store(StoreError::Conflict { message, .. })) => {
            use crate::store::samples::{JUDGED_ALREADY, SAME_MAILBOX};
            Err(ApiError::Conflict(match message.as_str() {
                JUDGED_ALREADY => "Diese Stichprobe ist schon beurteilt.".into(),
                SAME_MAILBOX => {
                    "Zum Korrigieren bitte ein anderes Postfach wählen als das der Maschine.".into()
                }
                _ => format!("Das Dokument kann jetzt nicht neu zugeordnet werden ({message})."),
            }))
        }
        Err(SampleError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// The Sichtkontrolle: the open visual checks (oldest first) and the last judged ones.
async fn visual_checks(
    who: Identity,
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let store = &s.pipeline.store;
    let open = store.open_visual_checks(1000).await?;
    let all = store.visual_checks(200).await?;
    let judged: Vec<_> = all.into_iter().filter(|c| c.verdict.is_some()).collect();
    Ok(Json(serde_json::json!({
        "open": open, "judged": judged,
        "share": s.pipeline.settings.capture.visual_check_share,
    })))
}

#[derive(Debug, Deserialize, Default)]
struct VisualCheckBody {
    #[serde(default)]
    note: Option<String>,
}

/// The scan is complete and legible.
async fn visual_check_ok(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Option<Json<VisualCheckBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let note = body.and_then(|b| b.0.note);
    judge_visual(
        &s,
        &who,
        &id,
        crate::store::capture::VisualVerdict::Ok,
        note,
    )
    .await
}

/// The scan must be made again (pages missing, cut off, illegible); `{"note": "..."}` says
/// what. The delivered document stays; the new scan is a document of its own.
async fn visual_check_rescan(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Option<Json<VisualCheckBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let note = body.and_then(|b| b.0.note);
    judge_visual(
        &s,
        &who,
        &id,
        crate::store::capture::VisualVerdict::Rescan,
        note,
    )
    .await
}

async fn judge_visual(
    s: &ApiState,
    who: &Identity,
    id: &str,
    verdict: crate::store::capture::VisualVerdict,
    note: Option<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::store::StoreError;
    need_poststelle(who)?;
    let not_found = || ApiError::NotFound(format!("Sichtkontrolle {id} nicht gefunden."));
    let id = DocumentId::parse(id).ok_or_else(not_found)?;
    match s
        .pipeline
        .store
        .judge_visual_check(&id, verdict, note.as_deref(), who.actor())
        .await
    {
        Ok(check) => Ok(Json(serde_json::json!({"visual_check": check}))),
        Err(StoreError::NotFound(_)) => Err(not_found()),
        Err(StoreError::Conflict { .. }) => Err(ApiError::Conflict(
            "Diese Sichtkontrolle ist schon erledigt.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A stack (the Poststelle's): its pages as the split saw them (blank, separator sheet,
/// start of a letter with its score), the parts and their documents.
async fn show_batch(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let batch = find_batch(&s, &id).await?;
    let parts = s.pipeline.store.batch_parts(&batch.id).await?;
    let documents: Vec<serde_json::Value> = parts
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "pages": d.batch_pages, "state": d.state, "mailbox": d.mailbox,
                "reason": d.reason.clone().or_else(|| d.decision.as_ref()
                    .and_then(|x| x.explanation.review_reason.clone())),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "id": batch.id, "original_name": batch.original_name, "state": batch.state,
        "page_count": batch.page_count, "received_at": batch.created_at,
        "reason": batch.reason, "plan": batch.plan, "documents": documents,
    })))
}

/// The stack `id`, or 404 with a German message.
pub(crate) async fn find_batch(
    s: &ApiState,
    id: &str,
) -> Result<crate::store::batches::BatchRow, ApiError> {
    let missing = || ApiError::NotFound(format!("Stapel {id} nicht gefunden."));
    let id = DocumentId::parse(id).ok_or_else(missing)?;
    match s.pipeline.store.batch(id.as_str()).await {
        Ok(b) => Ok(b),
        Err(crate::store::StoreError::NotFound(_)) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct SplitBody {
    /// The stack's page numbers where letters begin.
    starts: Vec<u32>,
}

/// Moves a stack's split points (the Poststelle's): `{"starts": [1, 4, 7]}` are the pages
/// where letters begin. The stack's letters, which must all still wait in review, are replaced
/// by the new parts (made from the pages as analysed before, nothing is read again); they are
/// routed anew.
async fn resplit_batch(
    who: Identity,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<SplitBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    need_poststelle(&who)?;
    let batch = find_batch(&s, &id).await?;
    let (starts, ids) = move_split_points(&s, &who, &batch, body.starts).await?;
    Ok(Json(
        serde_json::json!({"id": batch.id, "starts": starts, "documents": ids}),
    ))
}

/// Moves the split points of `batch` to `starts` (the stack's pages where letters begin) on
/// behalf of `who`, for the API and the desk alike: the pages are checked, the stack is split
/// anew from its analysed pages ([`crate::pipeline::Pipeline::try_split_batch`], which replaces
/// its letters only while all wait in review) and the move is recorded in the audit trail.
/// Returns the split points (sorted, without repeats) and the new documents.
pub(crate) async fn move_split_points(
    s: &ApiState,
    who: &Identity,
    batch: &crate::store::batches::BatchRow,
    mut starts: Vec<u32>,
) -> Result<(Vec<u32>, Vec<DocumentId>), ApiError> {
    let count = batch.page_count.unwrap_or(0).max(0) as u32;
    starts.sort_unstable();
    starts.dedup();
    if starts.is_empty() || starts.iter().any(|&p| p == 0 || p > count) {
        return Err(ApiError::BadRequest(format!(
            "Trennstellen müssen Seitenzahlen von 1 bis {count} sein."
        )));
    }
    if batch.state != crate::store::batches::state::SPLIT {
        return Err(ApiError::Conflict(
            "Der Stapel ist noch nicht geteilt (oder in Quarantäne).".into(),
        ));
    }
    let ids = s
        .pipeline
        .try_split_batch(batch, Some(&starts))
        .await
        .map_err(|e| match e.downcast::<crate::store::StoreError>() {
            Ok(crate::store::StoreError::Conflict { message, .. }) => ApiError::Conflict(message),
            Ok(e) => ApiError::from(e),
            Err(e) => ApiError::Internal(format!("{e:#}")),
        })?;
    s.pipeline
        .store
        .log_event(
            None,
            who.actor(),
            "batch_split_moved",
            serde_json::json!({"batch": batch.id, "starts": starts}),
        )
        .await?;
    s.pipeline.wake.notify_one();
    Ok((starts, ids))
}
