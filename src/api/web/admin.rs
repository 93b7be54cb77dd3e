//! Verwaltung (role `admin`) and the quarantine list (`/quarantaene`, also for the Poststelle,
//! which may download what is there). `/verwaltung` shows model versions with their metrics
//! (activate, roll back), the quarantine with reasons (download, "erneut versuchen"), dead
//! letters (re-drive), accounts (lock, unlock), API tokens (revoke) and each delivery target's
//! state (circuit breaker open or closed, last error). Every action is a form post with the
//! CSRF token, recorded in the audit trail under the admin's name.

use super::document::time_de;
use super::inbox::state_de;
use super::{Chrome, Signed, error_page, failed, no_document, render, store_failure};
use crate::api::ApiState;
use crate::auth::Identity;
use crate::cli::train::{TrainOutcome, TrainStep};
use crate::domain::{DocState, DocumentId};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Rows per list at most.
const MAX_ROWS: i64 = 200;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/verwaltung", get(page))
        .route("/verwaltung/modelle/aktivieren", post(activate))
        .route("/verwaltung/modelle/zuruecksetzen", post(rollback))
        .route("/verwaltung/modelle/trainieren", post(train))
        .route("/quarantaene", get(quarantine_page))
        .route("/verwaltung/quarantaene/{entry}/datei", get(download))
        .route(
            "/verwaltung/quarantaene/{id}/erneut",
            post(|w, s, p| again(Again::Quarantine, w, s, p)),
        )
        .route(
            "/verwaltung/unzustellbar/{id}/erneut",
            post(|w, s, p| again(Again::DeadLetter, w, s, p)),
        )
        .route("/verwaltung/benutzer/anlegen", post(add_user))
        .route("/verwaltung/benutzer/{name}/sperren", post(lock_user))
        .route("/verwaltung/benutzer/{name}/entsperren", post(unlock_user))
        .route("/verwaltung/tokens/{id}/widerrufen", post(revoke_token))
}

/// A German 403 page unless `who` is an admin.
pub fn unless_admin(who: &Identity) -> Option<Response> {
    (!who.is_admin()).then(|| {
        error_page(
            Some(who),
            StatusCode::FORBIDDEN,
            "Diese Seite ist der Verwaltung (Rolle admin) vorbehalten.",
        )
    })
}

/// The training run started on the admin page: one at a time, its progress shown on the page.
#[derive(Debug, Clone, Default)]
pub struct Training(Arc<Mutex<TrainState>>);

/// Where a training run stands.
#[derive(Debug, Clone, Default)]
pub enum TrainState {
    /// None started since the daemon began.
    #[default]
    Idle,
    /// Running: the step, since when, started by whom.
    Running {
        /// The current step.
        step: TrainStep,
        /// Start of the run.
        since: Instant,
        /// Who started it.
        by: String,
    },
    /// Finished.
    Done {
        /// What it made.
        outcome: TrainOutcome,
        /// Who started it.
        by: String,
    },
    /// Failed.
    Failed {
        /// Why.
        error: String,
        /// Who started it.
        by: String,
    },
}

impl Training {
    fn get(&self) -> TrainState {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, state: TrainState) {
        match self.0.lock() {
            Ok(mut g) => *g = state,
            Err(p) => *p.into_inner() = state,
        }
    }

    /// Starts `Running` unless a run is going; false when one is.
    fn begin(&self, by: &str) -> bool {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if matches!(*g, TrainState::Running { .. }) {
            return false;
        }
        *g = TrainState::Running {
            step: TrainStep::Loading,
            since: Instant::now(),
            by: by.to_string(),
        };
        true
    }

    fn step(&self, step: TrainStep) {
        if let Ok(mut g) = self.0.lock()
            && let TrainState::Running { step: s, .. } = &mut *g
        {
            *s = step;
        }
    }
}

/// The training run as the page shows it.
#[derive(Debug, Clone)]
pub struct TrainView {
    /// Running now (the page reloads itself while so).
    pub running: bool,
    /// What to say, in German.
    pub text: String,
    /// Whether it went wrong or the version was not activated.
    pub problem: bool,
}

fn train_view(state: TrainState) -> Option<TrainView> {
    match state {
        TrainState::Idle => None,
        TrainState::Running { step, since, by } => Some(TrainView {
            running: true,
            text: format!(
                "Training läuft seit {} s (gestartet von {by}): {}.",
                since.elapsed().as_secs(),
                step.label_de()
            ),
            problem: false,
        }),
        TrainState::Done { outcome: o, by } => {
            let numbers = format!(
                "Version {} aus {} Beispielen ({} Korrekturen) in {:.0} s: Treffer {:.1} %, automatisch zugestellt {:.1} %",
                o.version,
                o.items,
                o.corrections,
                o.seconds,
                o.top1 * 100.0,
                o.straight_through * 100.0
            )
            .replace('.', ",");
            Some(if o.activated {
                TrainView {
                    running: false,
                    text: format!("Training von {by} fertig. {numbers}. Die Version ist aktiv."),
                    problem: false,
                }
            } else {
                TrainView {
                    running: false,
                    text: format!(
                        "Training von {by} fertig. {numbers}. Nicht aktiviert, weil sie schlechter ist: {}",
                        o.problems.join("; ")
                    ),
                    problem: true,
                }
            })
        }
        TrainState::Failed { error, by } => Some(TrainView {
            running: false,
            text: format!("Das Training (gestartet von {by}) ist fehlgeschlagen: {error}"),
            problem: true,
        }),
    }
}

/// One model version.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// Version id.
    pub version: String,
    /// Whether it is in use.
    pub active: bool,
    /// Whether it runs in shadow (`poststelle model shadow`).
    pub shadow: bool,
    /// When it was trained.
    pub created: String,
    /// Training items.
    pub items: String,
    /// Top-1 accuracy (cross-validated, rules + model), "95,8 %".
    pub top1: String,
    /// Straight-through share at the threshold.
    pub straight: String,
    /// The review threshold.
    pub threshold: String,
    /// Why it cannot be used, if so.
    pub problem: String,
}

/// One quarantine entry.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    /// Entry id.
    pub entry: i64,
    /// Document id, when the input became a document.
    pub document: Option<String>,
    /// Whether it can be tried again (its document is still quarantined).
    pub retry: bool,
    /// File name.
    pub name: String,
    /// Channel.
    pub source: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: String,
    /// Whether a file can be downloaded.
    pub file: bool,
}

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadRow {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Mailbox.
    pub mailbox: String,
    /// Why.
    pub reason: String,
    /// The stage a re-drive resumes.
    pub stage: &'static str,
}

/// One account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Name.
    pub name: String,
    /// Name as a URL path segment (directory names may hold any character).
    pub name_url: String,
    /// Role in German.
    pub role: &'static str,
    /// Mailboxes.
    pub mailboxes: String,
    /// "lokal" or "Verzeichnis".
    pub source: &'static str,
    /// Locked.
    pub disabled: bool,
}

/// One token.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user: String,
    /// Label.
    pub label: String,
    /// Made.
    pub created: String,
    /// Last used.
    pub used: String,
    /// Revoked.
    pub revoked: bool,
}

/// One delivery target.
#[derive(Debug, Clone)]
pub struct TargetRow {
    /// Name.
    pub name: String,
    /// Its mailboxes.
    pub mailboxes: String,
    /// "geschlossen (in Betrieb)" or "offen (pausiert noch 40 s)".
    pub state: String,
    /// Whether it is paused.
    pub open: bool,
    /// Failures in a row.
    pub failures: u32,
    /// Last error.
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "admin.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    notice: Option<String>,
    training: Option<TrainView>,
    models: Vec<ModelRow>,
    quarantine: Vec<QuarantineRow>,
    dead: Vec<DeadRow>,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    targets: Vec<TargetRow>,
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    ok: Option<String>,
}

fn percent(v: &serde_json::Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.1} %", x * 100.0).replace('.', ","))
        .unwrap_or_else(|| "–".into())
}

async fn page(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    let settings = &s.pipeline.settings;
    let registry = crate::train::Registry::new(&settings.classify.models);
    let models = match tokio::task::spawn_blocking(move || registry.list()).await {
        Ok(list) => list,
        Err(e) => return failed(&who, e),
    };
    let models = models
        .into_iter()
        .map(|v| {
            let m = v.meta.clone().unwrap_or_default();
            let combined = &m["metrics"]["combined"];
            ModelRow {
                version: v.version,
                active: v.active,
                shadow: v.shadow,
                created: m["created_at"].as_str().map(time_de).unwrap_or_default(),
                items: m["items"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                top1: percent(&combined["top1"]),
                // At the thresholds of the precision target where the model has them.
                straight: match &m["metrics"]["target"]["straight_through"] {
                    serde_json::Value::Null => percent(&combined["straight_through"]),
                    v => percent(v),
                },
                threshold: m["threshold"]
                    .as_f64()
                    .map(super::document::german_decimal)
                    .unwrap_or_else(|| "–".into()),
                problem: v.problem.unwrap_or_default(),
            }
        })
        .collect();
    let store = &s.pipeline.store;
    let quarantine = match quarantine_rows(&s).await {
        Ok(q) => q,
        Err(e) => return failed(&who, e),
    };
    let dead = match store.list(Some(DocState::DeadLetter), MAX_ROWS).await {
        Ok(d) => d,
        Err(e) => return failed(&who, e),
    }
    .into_iter()
    .map(|d| DeadRow {
        id: d.id.to_string(),
        name: d.original_name,
        mailbox: d
            .mailbox
            .as_ref()
            .map(|m| super::document::mailbox_label(settings, m))
            .unwrap_or_default(),
        reason: d.reason.unwrap_or_default(),
        stage: state_de(d.failed_stage.unwrap_or(DocState::Queued)),
    })
    .collect();
    let users = match store.users().await {
        Ok(u) => u,
        Err(e) => return failed(&who, e),
    }
    .into_iter()
    .map(|u| UserRow {
        role: u.role.label_de(),
        mailboxes: u
            .mailboxes
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        source: if u.source == "local" {
            "lokal"
        } else {
            "Verzeichnis"
        },
        disabled: u.disabled,
        name_url: super::encode_component(&u.name).replace('/', "%2F"),
        name: u.name,
    })
    .collect();
    let tokens = match store.tokens(None).await {
        Ok(t) => t,
        Err(e) => return failed(&who, e),
    }
    .into_iter()
    .map(|t| TokenRow {
        id: t.id,
        user: t.user_name,
        label: t.label,
        created: time_de(&t.created_at),
        used: t.last_used_at.as_deref().map(time_de).unwrap_or_default(),
        revoked: t.revoked_at.is_some(),
    })
    .collect();
    let targets = s
        .pipeline
        .targets
        .keys()
        .map(|name| {
            let st = s.pipeline.breakers().status(name);
            let mailboxes = settings
                .mailboxes
                .iter()
                .chain(std::iter::once(&settings.review))
                .filter(|m| &m.target == name)
                .map(|m| m.id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            TargetRow {
                name: name.clone(),
                mailboxes,
                state: match st.paused_for {
                    Some(p) => format!("offen: pausiert noch {} s", p.as_secs().max(1)),
                    None if st.failures > 0 => "geschlossen, mit Fehlern".into(),
                    None => "geschlossen: in Betrieb".into(),
                },
                open: st.paused_for.is_some(),
                failures: st.failures,
                last_error: st.last_error.unwrap_or_default(),
            }
        })
        .collect();
    let notice = q.ok.map(|o| match o.as_str() {
        "modell" => "Das Modell ist aktiviert; neue Dokumente werden damit zugeordnet.".into(),
        "quarantaene" => "Das Dokument wird erneut gelesen.".into(),
        "unzustellbar" => "Das Dokument wird erneut bearbeitet.".into(),
        "benutzer" => "Das Konto ist geändert.".into(),
        "angelegt" => "Das Konto ist angelegt.".into(),
        "token" => "Das Token ist widerrufen.".into(),
        "training" => "Das Training ist gestartet.".into(),
        _ => "Erledigt.".into(),
    });
    render(&Page {
        chrome: Chrome::new(&who, "Verwaltung", "/verwaltung"),
        notice,
        training: train_view(s.training.get()),
        models,
        quarantine,
        dead,
        users,
        tokens,
        targets,
    })
}

#[derive(Debug, Deserialize)]
struct VersionForm {
    version: String,
}

async fn activate(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Form(f): Form<VersionForm>,
) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    let version = f.version.trim().to_string();
    let plausible = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plausible {
        return error_page(
            Some(&who),
            StatusCode::BAD_REQUEST,
            "Unbekannte Modellversion.",
        );
    }
    let registry = crate::train::Registry::new(&s.pipeline.settings.classify.models);
    let v = version.clone();
    match tokio::task::spawn_blocking(move || registry.activate(&v)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return error_page(
                Some(&who),
                StatusCode::CONFLICT,
                format!("Die Version kann nicht aktiviert werden: {e}"),
            );
        }
        Err(e) => return failed(&who, e),
    }
    model_changed(&s, &who, "model_activated", &version).await
}

/// The quarantine entries, newest first, as the pages show them.
async fn quarantine_rows(s: &ApiState) -> Result<Vec<QuarantineRow>, crate::store::StoreError> {
    let store = &s.pipeline.store;
    let mut rows = Vec::new();
    for e in store.quarantine_entries(MAX_ROWS).await? {
        let doc_state = match e.document_id.as_deref().and_then(DocumentId::parse) {
            Some(id) => store.get(&id).await.ok().map(|d| d.state),
            None => None,
        };
        rows.push(QuarantineRow {
            entry: e.id,
            retry: doc_state == Some(DocState::Quarantined),
            file: e.document_id.is_some()
                || e.path
                    .as_deref()
                    .is_some_and(|p| std::path::Path::new(p).is_file()),
            document: e.document_id,
            name: e.original_name,
            source: super::review::source_de(&e.source).to_string(),
            reason: e.reason,
            at: time_de(&e.at),
        });
    }
    Ok(rows)
}

#[derive(Template)]
#[template(path = "quarantine.html", config = "src/api/web/askama.toml")]
struct QuarantinePage {
    chrome: Chrome,
    quarantine: Vec<QuarantineRow>,
    admin: bool,
}

/// `/quarantaene`: what could not be read, with the reason (Poststelle and admins); the
/// original can be downloaded; trying again is the admins' (on `/verwaltung`).
async fn quarantine_page(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    if let Some(r) = super::document::unless_poststelle(&who) {
        return r;
    }
    match quarantine_rows(&s).await {
        Ok(quarantine) => render(&QuarantinePage {
            chrome: Chrome::new(&who, "Quarantäne", "/quarantaene"),
            quarantine,
            admin: who.is_admin(),
        }),
        Err(e) => failed(&who, e),
    }
}

/// Folds of the cross-validation a training run from the page uses (as `poststelle train`).
const TRAIN_FOLDS: usize = 5;

/// Starts a training run in the background (its own thread: training is CPU work); the page
/// shows its progress. The new version is activated only when it is not worse.
async fn train(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    if !s.training.begin(who.actor()) {
        return error_page(
            Some(&who),
            StatusCode::CONFLICT,
            "Es läuft schon ein Training; bitte warten, bis es fertig ist.",
        );
    }
    if let Err(e) = s
        .pipeline
        .store
        .log_event(None, who.actor(), "training_started", serde_json::json!({}))
        .await
    {
        s.training.set(TrainState::Idle);
        return failed(&who, e);
    }
    let training = s.training.clone();
    let pipeline = s.pipeline.clone();
    let by = who.actor().to_string();
    let handle = tokio::runtime::Handle::current();
    let started = std::thread::Builder::new()
        .name("poststelle-train".into())
        .spawn(move || {
            let settings = pipeline.settings.clone();
            let progress = training.clone();
            // A panic in training must not leave the page saying "running" for ever.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle.block_on(crate::cli::train::train_version(
                    &settings,
                    None,
                    false,
                    TRAIN_FOLDS,
                    crate::train::SELECTION_BUDGET_S,
                    &move |step| progress.step(step),
                ))
            }))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("das Training ist abgestürzt")));
            match result {
                Ok(outcome) => {
                    tracing::info!(
                        version = outcome.version,
                        activated = outcome.activated,
                        by,
                        "training from the admin page finished"
                    );
                    let detail = serde_json::json!({
                        "version": outcome.version, "activated": outcome.activated,
                        "top1": outcome.top1, "straight_through": outcome.straight_through,
                    });
                    handle.block_on(async {
                        if let Err(e) = pipeline
                            .store
                            .log_event(None, &by, "model_trained", detail)
                            .await
                        {
                            tracing::error!(error = %e, "recording the training failed");
                        }
                        pipeline.reload_model_if_changed().await;
                    });
                    training.set(TrainState::Done { outcome, by });
                }
                Err(e) => {
                    tracing::error!(error = %e, by, "training from the admin page failed");
                    training.set(TrainState::Failed {
                        error: format!("{e:#}"),
                        by,
                    });
                }
            }
        });
    if let Err(e) = started {
        s.training.set(TrainState::Idle);
        return failed(&who, e);
    }
    Redirect::to("/verwaltung?ok=training#modelle").into_response()
}

async fn rollback(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    let registry = crate::train::Registry::new(&s.pipeline.settings.classify.models);
    let version = match tokio::task::spawn_blocking(move || registry.rollback()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return error_page(
                Some(&who),
                StatusCode::CONFLICT,
                format!("Kein Zurücksetzen möglich: {e}"),
            );
        }
        Err(e) => return failed(&who, e),
    };
    model_changed(&s, &who, "model_rolled_back", &version).await
}

/// Records the change in the audit trail and puts the model in use at once.
async fn model_changed(s: &ApiState, who: &Identity, kind: &str, version: &str) -> Response {
    if let Err(e) = s
        .pipeline
        .store
        .log_event(
            None,
            who.actor(),
            kind,
            serde_json::json!({"version": version}),
        )
        .await
    {
        return failed(who, e);
    }
    s.pipeline.reload_model_if_changed().await;
    tracing::info!(
        version,
        actor = who.actor(),
        kind,
        "model changed on the admin page"
    );
    Redirect::to("/verwaltung?ok=modell#modelle").into_response()
}

async fn download(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(entry): Path<i64>,
) -> Response {
    if let Some(r) = super::document::unless_poststelle(&who) {
        return r;
    }
    let not_found = || error_page(Some(&who), StatusCode::NOT_FOUND, "Datei nicht gefunden.");
    let e = match s.pipeline.store.quarantine_entry(entry).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return failed(&who, e),
    };
    let path = match e.document_id.as_deref().and_then(DocumentId::parse) {
        Some(id) => match s.pipeline.store.get(&id).await {
            Ok(d) => s.pipeline.blobs.path(&d.sha256),
            Err(_) => return not_found(),
        },
        None => match e.path {
            Some(p) => std::path::PathBuf::from(p),
            None => return not_found(),
        },
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return not_found();
    };
    let name: String = e
        .original_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// What "erneut" means on the admin page.
#[derive(Debug, Clone, Copy)]
enum Again {
    /// Read a quarantined document anew.
    Quarantine,
    /// Resume a dead letter where it failed.
    DeadLetter,
}

async fn again(
    what: Again,
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    let Some(id) = DocumentId::parse(&id) else {
        return no_document(&who);
    };
    let store = &s.pipeline.store;
    let (result, conflict, done) = match what {
        Again::Quarantine => (
            store.retry_quarantined(&id, who.actor()).await,
            "Das Dokument ist nicht mehr in Quarantäne.",
            "/verwaltung?ok=quarantaene#quarantaene",
        ),
        Again::DeadLetter => (
            store.redrive(&id, who.actor()).await.map(|_| ()),
            "Das Dokument ist nicht mehr unzustellbar.",
            "/verwaltung?ok=unzustellbar#unzustellbar",
        ),
    };
    if let Err(e) = result {
        return store_failure(&who, e, conflict);
    }
    s.pipeline.wake.notify_one();
    Redirect::to(done).into_response()
}

async fn set_disabled(s: &ApiState, who: &Identity, name: &str, disabled: bool) -> Response {
    if let Some(r) = unless_admin(who) {
        return r;
    }
    if disabled && name == who.name {
        return error_page(
            Some(who),
            StatusCode::CONFLICT,
            "Das eigene Konto kann nicht gesperrt werden.",
        );
    }
    match s
        .pipeline
        .store
        .set_user_disabled(name, disabled, who.actor())
        .await
    {
        Ok(()) => Redirect::to("/verwaltung?ok=benutzer#benutzer").into_response(),
        Err(crate::store::StoreError::UnknownUser(_)) => {
            error_page(Some(who), StatusCode::NOT_FOUND, "Konto nicht gefunden.")
        }
        Err(e) => failed(who, e),
    }
}

#[derive(Debug, Deserialize)]
struct NewUserForm {
    name: String,
    role: String,
    #[serde(default)]
    mailboxes: String,
    password: String,
}

/// Makes a local account (as `poststelle users add` does).
async fn add_user(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Form(f): Form<NewUserForm>,
) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    let bad = |msg: String| error_page(Some(&who), StatusCode::BAD_REQUEST, msg);
    let known: Vec<_> = s
        .pipeline
        .settings
        .mailboxes
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let mailboxes: Vec<String> = f
        .mailboxes
        .split([',', ' ', ';'])
        .map(str::to_string)
        .collect();
    let (role, ids) = match crate::auth::check_account(f.name.trim(), &f.role, &mailboxes, &known) {
        Ok(x) => x,
        Err(e) => return bad(e.reason_de()),
    };
    match s
        .auth
        .add_local_user(f.name.trim(), role, &ids, &f.password, None, who.actor())
        .await
    {
        Ok(()) => Redirect::to("/verwaltung?ok=angelegt#benutzer").into_response(),
        Err(crate::auth::authenticator::AuthError::Password(
            crate::auth::password::PasswordError::Weak(m),
        )) => bad(m.to_string()),
        Err(crate::auth::authenticator::AuthError::Store(crate::store::StoreError::Exists(_))) => {
            error_page(
                Some(&who),
                StatusCode::CONFLICT,
                format!("Ein Konto „{}“ gibt es schon.", f.name.trim()),
            )
        }
        Err(e) => failed(&who, e),
    }
}

async fn lock_user(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    set_disabled(&s, &who, &name, true).await
}

async fn unlock_user(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    set_disabled(&s, &who, &name, false).await
}

async fn revoke_token(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unless_admin(&who) {
        return r;
    }
    match s.pipeline.store.revoke_token(&id, who.actor()).await {
        Ok(true) => Redirect::to("/verwaltung?ok=token#tokens").into_response(),
        Ok(false) => error_page(Some(&who), StatusCode::NOT_FOUND, "Token nicht gefunden."),
        Err(e) => failed(&who, e),
    }
}
