//! Conformance test servers for the DMS connectors: d.velop (DMS App + Identity Provider),
//! CMIS 1.1 browser binding, Paperless-ngx and a small generic REST DMS. Each checks the exact
//! request shapes of the public API documentation (named at each server), answers as the real
//! API does (status codes, `Location` headers, JSON bodies, error bodies) and records what it
//! stored, so tests can read it back. Faults (5xx, 429 with `Retry-After`, hanging answers, a
//! lost answer to a request that did its work, being down) are switched on from the tests.
//! [`proxy`] puts the same faults in front of a real server (Mayan EDMS).
//!
//! [`target`] builds a connector from a config block, as the daemon would.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use poststelle::config::Settings;
use poststelle::deliver::{Delivery, DeliveryItem};
use poststelle::domain::{DocumentId, DocumentMetadata, InvoiceInfo, MailboxId};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// ------------------------------------------------------------------------------------------
// Building connectors from config, and the document they file.

/// A town with the mailboxes 63 (Bauordnung) and 22 (Steueramt), for connector configs.
pub const MINIMAL: &str = r#"
[municipality]
name = "Teststadt"

[review]
mailbox = "poststelle"
name = "Poststelle"

[[mailboxes]]
id = "63"
name = "Bauordnung"

[[mailboxes]]
id = "22"
name = "Steueramt"
"#;

/// The connector described by `block` (the body of `[deliver.targets.t]`), with `env`
/// overrides (secrets), built as the daemon builds its targets.
pub fn target(block: &str, env: &[(&str, &str)]) -> Arc<dyn Delivery> {
    let text =
        format!("{MINIMAL}\n[deliver]\ndefault_target = \"t\"\n\n[deliver.targets.t]\n{block}\n");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let s = Settings::parse(std::path::Path::new("test.toml"), &text, &env)
        .unwrap_or_else(|e| panic!("{e}"));
    poststelle::deliver::build("t", &s.deliver.targets["t"]).unwrap_or_else(|e| panic!("{e}"))
}

/// A letter to `mailbox` with metadata in every field the connectors map (a fresh document id).
pub fn item(mailbox: &str, bytes: &[u8]) -> DeliveryItem {
    DeliveryItem {
        document_id: DocumentId::new(),
        mailbox: MailboxId::parse(mailbox).expect("mailbox"),
        mailbox_name: "Bauordnung".into(),
        original_name: "scan-0001.pdf".into(),
        media_type: "application/pdf".into(),
        extension: "pdf".into(),
        bytes: bytes.to_vec(),
        sidecar: serde_json::json!({"received_at": "2026-12-01T10:00:00.000Z"}),
        metadata: DocumentMetadata {
            sender_name: Some("Erika Mustermann".into()),
            letter_date: Some("2026-11-28".into()),
            subject: Some("Bauantrag Wintergarten, Flurstück 88".into()),
            file_references: vec!["63-0815/26".into(), "63-0816/26".into()],
            ibans: vec!["DE02120300000000202051".into()],
            invoice: Some(InvoiceInfo {
                format: "xrechnung-ubl".into(),
                number: Some("RE-2026-17".into()),
                gross_amount: Some("119.00".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        clerk: None,
    }
}

// ------------------------------------------------------------------------------------------
// Running a server on its own runtime thread, stoppable and restartable on the same port.

/// Faults the next requests meet (checked before any shape check).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer this many requests with `status` (default 500).
    pub fail_next: u32,
    /// Status for `fail_next`.
    pub status: u16,
    /// `Retry-After` seconds sent with the failures.
    pub retry_after: Option<u32>,
    /// Answer this many requests only after this long (the client times out).
    pub hang_next: u32,
    /// How long a hanging request waits.
    pub hang: Duration,
    /// Fail every request whose path contains this (with `status`), e.g. only the o2m step.
    pub fail_path: Option<String>,
    /// Lose the answer of the next request with this method whose path matches: the server
    /// does the work, the client gets `502 Bad Gateway` (as from a proxy whose upstream
    /// connection broke before the answer came back).
    pub lose: Option<(Method, regex::Regex)>,
}

impl Faults {
    /// Clears every fault.
    pub fn clear(&mut self) {
        *self = Faults::default();
    }
}

/// A server state with fault switches.
pub trait HasFaults: Send + Sync + 'static {
    /// The switches.
    fn faults(&self) -> &Mutex<Faults>;
}

/// A running conformance server.
pub struct Server<S: HasFaults> {
    /// Shared state (what was stored, faults, request log).
    pub state: Arc<S>,
    /// The port (kept across restarts).
    pub port: u16,
    make: fn(Arc<S>) -> Router,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: HasFaults> Server<S> {
    fn start(state: S, make: fn(Arc<S>) -> Router) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut s = Server {
            state: Arc::new(state),
            port,
            make,
            stop: None,
            thread: None,
        };
        s.up();
        s
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The fault switches.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(self.state.faults())
    }

    /// Starts serving (again) on the same port.
    pub fn up(&mut self) {
        assert!(self.stop.is_none(), "already up");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let app = (self.make)(self.state.clone()).layer(axum::middleware::from_fn_with_state(
            self.state.clone(),
            lose_answer::<S>,
        ));
        let port = self.port;
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = loop {
                    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                let _ = ready_tx.send(());
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
            // Dropping the runtime cancels hanging handlers and closes their connections.
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server up");
        self.stop = Some(tx);
        self.thread = Some(thread);
    }

    /// True while serving.
    pub fn is_up(&self) -> bool {
        self.stop.is_some()
    }

    /// Stops serving: connections are refused until [`Server::up`].
    pub fn down(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S: HasFaults> Drop for Server<S> {
    fn drop(&mut self) {
        self.down();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Middleware of every server: lets the request do its work, then loses the answer when
/// [`Faults::lose`] names it.
async fn lose_answer<S: HasFaults>(State(s): State<Arc<S>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let lost = {
        let mut f = lock(s.faults());
        let hit = f
            .lose
            .as_ref()
            .is_some_and(|(m, p)| *m == method && p.is_match(&path));
        if hit {
            f.lose = None;
        }
        hit
    };
    if lost {
        return (
            StatusCode::BAD_GATEWAY,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    resp
}

/// Applies the configured faults; `Some(response)` when this request is to fail.
async fn fault(f: &Mutex<Faults>, path: &str) -> Option<Response> {
    let (hang, fail) = {
        let mut g = lock(f);
        let hang = if g.hang_next > 0 {
            g.hang_next -= 1;
            Some(g.hang)
        } else {
            None
        };
        let by_path = g.fail_path.as_deref().is_some_and(|p| path.contains(p));
        let fail = if g.fail_next > 0 || by_path {
            if g.fail_next > 0 {
                g.fail_next -= 1;
            }
            Some((if g.status == 0 { 500 } else { g.status }, g.retry_after))
        } else {
            None
        };
        (hang, fail)
    };
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let (status, retry_after) = fail?;
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "<html><body><h1>Service unavailable</h1></body></html>",
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, s.to_string().parse().expect("value"));
    }
    Some(r)
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// A multipart field as read by the servers.
#[derive(Debug, Clone)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// File name, for file parts.
    pub file_name: Option<String>,
    /// Content type of the part.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Field {
    /// Text value.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).to_string()
    }
}

async fn read_multipart(mut m: Multipart) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    while let Some(f) = m.next_field().await.map_err(|e| e.to_string())? {
        let name = f.name().unwrap_or_default().to_string();
        let file_name = f.file_name().map(str::to_string);
        let content_type = f.content_type().map(str::to_string);
        let bytes = f.bytes().await.map_err(|e| e.to_string())?.to_vec();
        out.push(Field {
            name,
            file_name,
            content_type,
            bytes,
        });
    }
    Ok(out)
}

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

// ------------------------------------------------------------------------------------------
// d.velop: "d.velop documents – DMS App API" (help.d-velop.de/dev/documentation/dms-app,
// sections "Uploading a document" (blob/chunk, o2m), "Searching for documents" (srm with
// sourceproperties)) and "Identity Provider App API" (help.d-velop.de/dev/documentation/
// identityprovider-app, "Logging in with an API key"), "Task App API" ("Creating a task"),
// as published in 2024/2025.

/// A document stored by the d.velop server.
#[derive(Debug, Clone)]
pub struct DvelopDoc {
    /// Object id.
    pub id: String,
    /// `filename`.
    pub filename: String,
    /// `sourceCategory`.
    pub category: String,
    /// `sourceId`.
    pub source_id: String,
    /// Property key -> values.
    pub properties: BTreeMap<String, Vec<String>>,
    /// Content.
    pub bytes: Vec<u8>,
}

/// State of the d.velop server.
#[derive(Debug, Default)]
pub struct Dvelop {
    /// The API key it accepts.
    pub api_key: String,
    /// Repository id.
    pub repo: String,
    /// Issued login tokens (`authSessionId`).
    pub tokens: Mutex<Vec<String>>,
    /// Uploaded chunks.
    pub chunks: Mutex<HashMap<String, Vec<u8>>>,
    /// Stored documents.
    pub docs: Mutex<Vec<DvelopDoc>>,
    /// Created tasks (request bodies).
    pub tasks: Mutex<Vec<Value>>,
    /// Faults.
    pub faults: Mutex<Faults>,
    /// Request log: "METHOD path".
    pub log: Mutex<Vec<String>>,
}

impl HasFaults for Dvelop {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts a d.velop server.
pub fn dvelop(api_key: &str, repo: &str) -> Server<Dvelop> {
    Server::start(
        Dvelop {
            api_key: api_key.into(),
            repo: repo.into(),
            ..Default::default()
        },
        |s| {
            Router::new()
                .route("/identityprovider/login", get(dv_login))
                .route("/dms/r/{repo}", get(dv_repository))
                .route("/dms/r/{repo}/blob/chunk/", post(dv_chunk))
                .route("/dms/r/{repo}/o2m", post(dv_o2m))
                .route("/dms/r/{repo}/srm", get(dv_srm))
                .route("/task/tasks", post(dv_task))
                .with_state(s)
        },
    )
}

fn dv_error(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(json!({"reason": reason, "severity": 1}))).into_response()
}

impl Dvelop {
    fn authorised(&self, h: &HeaderMap) -> bool {
        bearer(h).is_some_and(|t| lock(&self.tokens).contains(&t))
    }
    /// Writing requests need `Origin` (CSRF protection of the DMS app).
    fn origin_ok(&self, h: &HeaderMap) -> bool {
        h.get(header::ORIGIN).is_some()
    }
    fn logged(&self, what: String) {
        lock(&self.log).push(what);
    }
}

async fn dv_login(State(s): State<Arc<Dvelop>>, h: HeaderMap) -> Response {
    s.logged("GET /identityprovider/login".into());
    if let Some(r) = fault(&s.faults, "/identityprovider/login").await {
        return r;
    }
    if bearer(&h).as_deref() != Some(s.api_key.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = format!("tok-{}", uuid());
    lock(&s.tokens).push(id.clone());
    axum::Json(json!({"authSessionId": id, "expire": "2099-01-01T00:00:00.000+01:00"}))
        .into_response()
}

/// `GET /dms/r/{repo}`: the repository ("Getting information about a repository").
async fn dv_repository(
    State(s): State<Arc<Dvelop>>,
    Path(repo): Path<String>,
    h: HeaderMap,
) -> Response {
    s.logged(format!("GET /dms/r/{repo}"));
    if let Some(r) = fault(&s.faults, &format!("/dms/r/{repo}")).await {
        return r;
    }
    if !s.authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if repo != s.repo {
        return dv_error(StatusCode::NOT_FOUND, "Repository not found");
    }
    axum::Json(json!({
        "id": repo,
        "name": "Poststelle",
        "_links": {"self": {"href": format!("/dms/r/{repo}")}},
    }))
    .into_response()
}

async fn dv_chunk(
    State(s): State<Arc<Dvelop>>,
    Path(repo): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    s.logged(format!("POST /dms/r/{repo}/blob/chunk/"));
    if let Some(r) = fault(&s.faults, "/blob/chunk/").await {
        return r;
    }
    if !s.authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !s.origin_ok(&h) {
        return dv_error(StatusCode::FORBIDDEN, "Missing Origin header");
    }
    if repo != s.repo {
        return dv_error(StatusCode::NOT_FOUND, "Repository not found");
    }
    if content_type(&h) != "application/octet-stream" {
        return dv_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/octet-stream expected",
        );
    }
    if body.is_empty() {
        return dv_error(StatusCode::BAD_REQUEST, "Empty chunk");
    }
    let id = uuid();
    lock(&s.chunks).insert(id.clone(), body.to_vec());
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/dms/r/{repo}/blob/chunk/{id}"))],
    )
        .into_response()
}

async fn dv_o2m(
    State(s): State<Arc<Dvelop>>,
    Path(repo): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    s.logged(format!("POST /dms/r/{repo}/o2m"));
    if let Some(r) = fault(&s.faults, "/o2m").await {
        return r;
    }
    if !s.authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !s.origin_ok(&h) {
        return dv_error(StatusCode::FORBIDDEN, "Missing Origin header");
    }
    let ct = content_type(&h);
    if !(ct.starts_with("application/hal+json") || ct.starts_with("application/json")) {
        return dv_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/hal+json expected",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return dv_error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let (Some(filename), Some(category), Some(source_id), Some(loc)) = (
        text("filename"),
        text("sourceCategory"),
        text("sourceId"),
        text("contentLocationUri"),
    ) else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "filename, sourceCategory, sourceId and contentLocationUri are required",
        );
    };
    let prefix = format!("/dms/r/{repo}/blob/chunk/");
    let Some(chunk) = loc
        .strip_prefix(&prefix)
        .and_then(|id| lock(&s.chunks).get(id).cloned())
    else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "contentLocationUri does not name an uploaded chunk",
        );
    };
    let mut properties = BTreeMap::new();
    let Some(props) = v
        .pointer("/sourceProperties/properties")
        .and_then(|p| p.as_array())
    else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "sourceProperties.properties must be an array",
        );
    };
    for p in props {
        let key = p.get("key").and_then(|k| k.as_str());
        let values = p.get("values").and_then(|k| k.as_array());
        let (Some(key), Some(values)) = (key, values) else {
            return dv_error(StatusCode::BAD_REQUEST, "property needs key and values");
        };
        let values: Option<Vec<String>> = values
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect();
        let Some(values) = values else {
            return dv_error(StatusCode::BAD_REQUEST, "property values must be strings");
        };
        properties.insert(key.to_string(), values);
    }
    let id = format!("P{:06}", lock(&s.docs).len() + 1);
    lock(&s.docs).push(DvelopDoc {
        id: id.clone(),
        filename,
        category,
        source_id,
        properties,
        bytes: chunk,
    });
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/dms/r/{repo}/o2m/{id}"))],
    )
        .into_response()
}

async fn dv_srm(
    State(s): State<Arc<Dvelop>>,
    Path(repo): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    s.logged(format!("GET /dms/r/{repo}/srm"));
    if let Some(r) = fault(&s.faults, "/srm").await {
        return r;
    }
    if !s.authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(source_id) = q.get("sourceid") else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "sourceid is required with sourceproperties",
        );
    };
    let Some(props) = q
        .get("sourceproperties")
        .and_then(|p| serde_json::from_str::<BTreeMap<String, Vec<String>>>(p).ok())
    else {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "sourceproperties must be a JSON object of arrays",
        );
    };
    let cats: Option<Vec<String>> = q
        .get("sourcecategories")
        .and_then(|c| serde_json::from_str(c).ok());
    let items: Vec<Value> = lock(&s.docs)
        .iter()
        .filter(|d| &d.source_id == source_id)
        .filter(|d| cats.as_ref().is_none_or(|c| c.contains(&d.category)))
        .filter(|d| {
            props
                .iter()
                .all(|(k, vs)| d.properties.get(k).is_some_and(|have| vs.iter().all(|v| have.contains(v))))
        })
        .map(|d| {
            json!({
                "id": d.id,
                "sourceCategories": [d.category],
                "sourceProperties": d.properties.iter().map(|(k, v)| json!({"key": k, "value": v.join(", ")})).collect::<Vec<_>>(),
                "_links": {"self": {"href": format!("/dms/r/{repo}/o2/{}", d.id)}},
            })
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/hal+json")],
        axum::Json(
            json!({"_links": {"self": {"href": format!("/dms/r/{repo}/srm")}}, "items": items}),
        ),
    )
        .into_response()
}

async fn dv_task(State(s): State<Arc<Dvelop>>, h: HeaderMap, body: Bytes) -> Response {
    s.logged("POST /task/tasks".into());
    if let Some(r) = fault(&s.faults, "/task/tasks").await {
        return r;
    }
    if !s.authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !s.origin_ok(&h) {
        return dv_error(StatusCode::FORBIDDEN, "Missing Origin header");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return dv_error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let subject_ok = v
        .get("subject")
        .and_then(|x| x.as_str())
        .is_some_and(|x| !x.is_empty());
    let assignees_ok = v
        .get("assignees")
        .and_then(|x| x.as_array())
        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.is_string()));
    if !subject_ok || !assignees_ok {
        return dv_error(
            StatusCode::BAD_REQUEST,
            "subject and assignees are required",
        );
    }
    let key = v
        .get("correlationKey")
        .and_then(|x| x.as_str())
        .map(str::to_string);
    let mut tasks = lock(&s.tasks);
    if key.is_some()
        && tasks
            .iter()
            .any(|t| t.get("correlationKey").and_then(|x| x.as_str()) == key.as_deref())
    {
        return dv_error(
            StatusCode::CONFLICT,
            "A task with this correlationKey exists",
        );
    }
    tasks.push(v);
    let id = uuid();
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/task/tasks/{id}"))],
    )
        .into_response()
}

// ------------------------------------------------------------------------------------------
// CMIS: OASIS "Content Management Interoperability Services (CMIS) Version 1.1 Plus Errata
// 01" (2015), part II chapter 5 "Browser Binding": 5.3.2 object URLs by path below the root
// folder URL, 5.4.1 `cmisselector=object`, 5.4.2/5.4.4 form POSTs with `cmisaction`,
// `propertyId[i]`/`propertyValue[i]`, the `content` part, 201 + `Location` for created
// objects, 5.2.10 exception JSON `{"exception": "...", "message": "..."}` with the status
// mapping (objectNotFound 404, nameConstraintViolation 409, invalidArgument 400,
// permissionDenied 401/403).

/// An object stored by the CMIS server.
#[derive(Debug, Clone)]
pub struct CmisObject {
    /// `cmis:objectId`.
    pub id: String,
    /// Path below the root ("/a/b").
    pub path: String,
    /// Folder or document.
    pub is_folder: bool,
    /// Properties (multi-valued as lists).
    pub properties: BTreeMap<String, Vec<String>>,
    /// Content bytes.
    pub content: Vec<u8>,
    /// Content part's file name and type.
    pub content_name: Option<String>,
    /// Content type.
    pub content_type: Option<String>,
}

/// State of the CMIS server.
#[derive(Debug, Default)]
pub struct Cmis {
    /// Basic auth user:password.
    pub credentials: (String, String),
    /// Objects by path (the root "" exists).
    pub objects: Mutex<BTreeMap<String, CmisObject>>,
    /// Faults.
    pub faults: Mutex<Faults>,
    /// Request log.
    pub log: Mutex<Vec<String>>,
}

impl HasFaults for Cmis {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

impl Cmis {
    /// Documents only.
    pub fn documents(&self) -> Vec<CmisObject> {
        lock(&self.objects)
            .values()
            .filter(|o| !o.is_folder)
            .cloned()
            .collect()
    }
}

/// Starts a CMIS server; the root folder URL is `<url>/cmis/browser/repo1/root`.
pub fn cmis(user: &str, password: &str) -> Server<Cmis> {
    let s = Cmis {
        credentials: (user.into(), password.into()),
        ..Default::default()
    };
    lock(&s.objects).insert(
        String::new(),
        CmisObject {
            id: "root".into(),
            path: String::new(),
            is_folder: true,
            properties: BTreeMap::new(),
            content: Vec::new(),
            content_name: None,
            content_type: None,
        },
    );
    Server::start(s, |s| {
        Router::new()
            .route(
                "/cmis/browser/repo1",
                get(cmis_repository_info).post(cmis_query),
            )
            .route(
                "/cmis/browser/repo1/root",
                get(cmis_get_root).post(cmis_post_root),
            )
            .route(
                "/cmis/browser/repo1/root/{*path}",
                get(cmis_get).post(cmis_post),
            )
            .with_state(s)
    })
}

fn cmis_error(status: StatusCode, exception: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"exception": exception, "message": message})),
    )
        .into_response()
}

fn succinct(o: &CmisObject) -> Value {
    let mut p = serde_json::Map::new();
    for (k, v) in &o.properties {
        p.insert(k.clone(), if v.len() == 1 { json!(v[0]) } else { json!(v) });
    }
    p.insert("cmis:objectId".into(), json!(o.id));
    p.insert(
        "cmis:baseTypeId".into(),
        json!(if o.is_folder {
            "cmis:folder"
        } else {
            "cmis:document"
        }),
    );
    json!({"succinctProperties": p})
}

fn cmis_auth(s: &Cmis, h: &HeaderMap) -> bool {
    use base64::Engine as _;
    let want = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", s.credentials.0, s.credentials.1));
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {want}"))
}

/// The object path below the root ("/a/b"); axum's `Path` has percent-decoded it already.
fn decode_path(p: &str) -> String {
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    if segs.is_empty() {
        String::new()
    } else {
        format!("/{}", segs.join("/"))
    }
}

async fn cmis_get_root(
    s: State<Arc<Cmis>>,
    q: Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    cmis_get_at(s, String::new(), q, h).await
}

async fn cmis_get(
    s: State<Arc<Cmis>>,
    Path(p): Path<String>,
    q: Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    cmis_get_at(s, p, q, h).await
}

async fn cmis_get_at(
    State(s): State<Arc<Cmis>>,
    raw: String,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let path = decode_path(&raw);
    lock(&s.log).push(format!("GET {path}"));
    if let Some(r) = fault(&s.faults, &path).await {
        return r;
    }
    if !cmis_auth(&s, &h) {
        return cmis_error(
            StatusCode::UNAUTHORIZED,
            "permissionDenied",
            "Authentication required",
        );
    }
    if q.get("cmisselector").map(String::as_str) == Some("parents") {
        // getObjectParents by objectId (5.4.1, selector "parents").
        let objects = lock(&s.objects);
        let Some(o) = q
            .get("objectId")
            .and_then(|id| objects.values().find(|o| &o.id == id))
        else {
            return cmis_error(StatusCode::NOT_FOUND, "objectNotFound", "no such objectId");
        };
        let (parent, segment) = o.path.rsplit_once('/').unwrap_or(("", o.path.as_str()));
        let Some(p) = objects.get(parent) else {
            return cmis_error(StatusCode::NOT_FOUND, "objectNotFound", "no parent");
        };
        return axum::Json(json!([{"object": succinct(p), "relativePathSegment": segment}]))
            .into_response();
    }
    if q.get("cmisselector").map(String::as_str) != Some("object") {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "cmisselector=object expected",
        );
    }
    match lock(&s.objects).get(&path) {
        Some(o) => axum::Json(succinct(o)).into_response(),
        None => cmis_error(
            StatusCode::NOT_FOUND,
            "objectNotFound",
            &format!("Object not found: {path}"),
        ),
    }
}

/// `GET <repository URL>?cmisselector=repositoryInfo` (5.3.1, 5.4.1): the repository's info,
/// keyed by its id.
async fn cmis_repository_info(
    State(s): State<Arc<Cmis>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    lock(&s.log).push("GET repositoryInfo".into());
    if let Some(r) = fault(&s.faults, "repositoryInfo").await {
        return r;
    }
    if !cmis_auth(&s, &h) {
        return cmis_error(
            StatusCode::UNAUTHORIZED,
            "permissionDenied",
            "Authentication required",
        );
    }
    if q.get("cmisselector").map(String::as_str) != Some("repositoryInfo") {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "cmisselector=repositoryInfo expected",
        );
    }
    axum::Json(json!({"repo1": {
        "repositoryId": "repo1",
        "repositoryName": "Poststelle",
        "cmisVersionSupported": "1.1",
        "rootFolderId": "root",
        "rootFolderUrl": "/cmis/browser/repo1/root",
    }}))
    .into_response()
}

async fn cmis_post_root(s: State<Arc<Cmis>>, h: HeaderMap, m: Multipart) -> Response {
    cmis_post_at(s, String::new(), h, m).await
}

async fn cmis_post(
    s: State<Arc<Cmis>>,
    Path(p): Path<String>,
    h: HeaderMap,
    m: Multipart,
) -> Response {
    cmis_post_at(s, p, h, m).await
}

async fn cmis_post_at(
    State(s): State<Arc<Cmis>>,
    raw: String,
    h: HeaderMap,
    m: Multipart,
) -> Response {
    let folder = decode_path(&raw);
    lock(&s.log).push(format!("POST {folder}"));
    if let Some(r) = fault(&s.faults, &folder).await {
        return r;
    }
    if !cmis_auth(&s, &h) {
        return cmis_error(
            StatusCode::UNAUTHORIZED,
            "permissionDenied",
            "Authentication required",
        );
    }
    if !content_type(&h).starts_with("multipart/form-data") {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "multipart/form-data expected",
        );
    }
    let fields = match read_multipart(m).await {
        Ok(f) => f,
        Err(e) => return cmis_error(StatusCode::BAD_REQUEST, "invalidArgument", &e),
    };
    let get = |n: &str| fields.iter().find(|f| f.name == n).map(Field::text);
    let action = get("cmisaction").unwrap_or_default();
    if action == "move" {
        // moveObject (5.4.4): objectId, sourceFolderId, targetFolderId.
        let mut objects = lock(&s.objects);
        let find = |id: Option<String>| {
            id.and_then(|id| {
                objects
                    .values()
                    .find(|o| o.id == id)
                    .map(|o| o.path.clone())
            })
        };
        let (Some(obj), Some(src), Some(dst)) = (
            find(get("objectId")),
            find(get("sourceFolderId")),
            find(get("targetFolderId")),
        ) else {
            return cmis_error(
                StatusCode::NOT_FOUND,
                "objectNotFound",
                "objectId, sourceFolderId or targetFolderId unknown",
            );
        };
        let Some((parent, name)) = obj.rsplit_once('/') else {
            return cmis_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                "cannot move the root",
            );
        };
        if parent != src {
            return cmis_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                "sourceFolderId is not the parent",
            );
        }
        let new_path = format!("{dst}/{name}");
        if objects.contains_key(&new_path) {
            return cmis_error(
                StatusCode::CONFLICT,
                "nameConstraintViolation",
                "exists in target",
            );
        }
        let Some(mut o) = objects.remove(&obj) else {
            return cmis_error(StatusCode::NOT_FOUND, "objectNotFound", "gone");
        };
        o.path = new_path.clone();
        let body = succinct(&o);
        objects.insert(new_path, o);
        return (StatusCode::CREATED, axum::Json(body)).into_response();
    }
    // propertyId[i] / propertyValue[i] or propertyValue[i][j]
    let mut props: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &fields {
        let Some(i) = f
            .name
            .strip_prefix("propertyId[")
            .and_then(|r| r.strip_suffix(']'))
        else {
            continue;
        };
        let single = get(&format!("propertyValue[{i}]"));
        let mut values: Vec<String> = single.into_iter().collect();
        let mut j = 0;
        while let Some(v) = get(&format!("propertyValue[{i}][{j}]")) {
            values.push(v);
            j += 1;
        }
        props.insert(f.text(), values);
    }
    let is_folder = match action.as_str() {
        "createDocument" => false,
        "createFolder" => true,
        _ => {
            return cmis_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                "unknown cmisaction",
            );
        }
    };
    let one = |k: &str| props.get(k).and_then(|v| v.first()).cloned();
    let (Some(type_id), Some(name)) = (one("cmis:objectTypeId"), one("cmis:name")) else {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "constraint",
            "cmis:objectTypeId and cmis:name are required",
        );
    };
    if is_folder != (type_id == "cmis:folder") {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "constraint",
            "object type does not fit the action",
        );
    }
    let mut objects = lock(&s.objects);
    match objects.get(&folder) {
        Some(f) if f.is_folder => {}
        Some(_) => return cmis_error(StatusCode::BAD_REQUEST, "invalidArgument", "not a folder"),
        None => {
            return cmis_error(
                StatusCode::NOT_FOUND,
                "objectNotFound",
                &format!("Folder not found: {folder}"),
            );
        }
    }
    let path = format!("{folder}/{name}");
    if objects.contains_key(&path) {
        return cmis_error(
            StatusCode::CONFLICT,
            "nameConstraintViolation",
            &format!("{name} exists"),
        );
    }
    let content = fields.iter().find(|f| f.name == "content");
    if !is_folder && content.is_none() {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "constraint",
            "content part missing",
        );
    }
    let o = CmisObject {
        id: format!("obj-{}", objects.len()),
        path: path.clone(),
        is_folder,
        properties: props,
        content: content.map(|c| c.bytes.clone()).unwrap_or_default(),
        content_name: content.and_then(|c| c.file_name.clone()),
        content_type: content.and_then(|c| c.content_type.clone()),
    };
    let body = succinct(&o);
    let loc = format!("/cmis/browser/repo1/root?objectId={}", o.id);
    objects.insert(path, o);
    (
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        axum::Json(body),
    )
        .into_response()
}

/// `cmisaction=query` at the repository URL (5.4.3); this server understands the one statement
/// shape `SELECT cmis:objectId FROM cmis:document WHERE cmis:name = '<name>'`.
async fn cmis_query(State(s): State<Arc<Cmis>>, h: HeaderMap, m: Multipart) -> Response {
    lock(&s.log).push("POST (repository) query".into());
    if !cmis_auth(&s, &h) {
        return cmis_error(
            StatusCode::UNAUTHORIZED,
            "permissionDenied",
            "Authentication required",
        );
    }
    let fields = match read_multipart(m).await {
        Ok(f) => f,
        Err(e) => return cmis_error(StatusCode::BAD_REQUEST, "invalidArgument", &e),
    };
    let get = |n: &str| fields.iter().find(|f| f.name == n).map(Field::text);
    if get("cmisaction").as_deref() != Some("query") {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "cmisaction=query expected",
        );
    }
    let statement = get("statement").unwrap_or_default();
    let prefix = "SELECT cmis:objectId FROM cmis:document WHERE cmis:name = '";
    let Some(name) = statement
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix('\''))
    else {
        return cmis_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            &format!("unsupported statement: {statement}"),
        );
    };
    let name = name.replace("\\'", "'").replace("\\\\", "\\");
    let results: Vec<Value> = lock(&s.objects)
        .values()
        .filter(|o| !o.is_folder && o.path.rsplit('/').next() == Some(name.as_str()))
        .map(|o| json!({"succinctProperties": {"cmis:objectId": o.id}}))
        .collect();
    axum::Json(json!({"results": results, "hasMoreItems": false, "numItems": results.len()}))
        .into_response()
}

// ------------------------------------------------------------------------------------------
// Paperless-ngx: "REST API" documentation (docs.paperless-ngx.com/api/, 2.x): "Posting
// documents" (`POST /api/documents/post_document/`, multipart field `document` plus `title`,
// `created`, `correspondent`, `document_type`, `tags` (repeated), `custom_fields`; answers the
// consumer task's UUID), `GET /api/tasks/?task_id=` (list of tasks with `status`, `result`,
// `related_document`), token authentication (`Authorization: Token <token>`, 401
// `{"detail": "Invalid token."}`), document filtering with `custom_field_query`; the
// consumer refuses a file whose checksum exists ("It is a duplicate of ... (#id)").

/// A document stored by the Paperless server.
#[derive(Debug, Clone)]
pub struct PaperlessDoc {
    /// Id.
    pub id: u64,
    /// Title.
    pub title: String,
    /// `created`, when sent.
    pub created: Option<String>,
    /// Tags.
    pub tags: Vec<u64>,
    /// Document type.
    pub document_type: Option<u64>,
    /// Correspondent.
    pub correspondent: Option<u64>,
    /// Custom field id -> value.
    pub custom_fields: BTreeMap<u64, String>,
    /// Owner (a user id; set by `PATCH`, the upload has no such field).
    pub owner: Option<u64>,
    /// File name of the upload.
    pub file_name: String,
    /// Content.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct PendingTask {
    uuid: String,
    polls: u32,
    doc: PaperlessDoc,
    status: String,
    result: Option<String>,
    related: Option<u64>,
}

/// State of the Paperless server.
#[derive(Debug, Default)]
pub struct Paperless {
    /// Accepted token.
    pub token: String,
    /// Existing tag ids.
    pub tags: Vec<u64>,
    /// Existing user ids (owners).
    pub users: Vec<u64>,
    /// Polls a task stays PENDING/STARTED before it finishes.
    pub consume_polls: u32,
    /// Stored documents.
    pub docs: Mutex<Vec<PaperlessDoc>>,
    tasks: Mutex<Vec<PendingTask>>,
    /// Faults.
    pub faults: Mutex<Faults>,
    /// Request log.
    pub log: Mutex<Vec<String>>,
}

impl HasFaults for Paperless {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts a Paperless server accepting `token`, the tags 1..=9 and the users 1..=9.
pub fn paperless(token: &str) -> Server<Paperless> {
    Server::start(
        Paperless {
            token: token.into(),
            tags: (1..=9).collect(),
            users: (1..=9).collect(),
            consume_polls: 2,
            ..Default::default()
        },
        |s| {
            Router::new()
                .route("/api/documents/post_document/", post(pl_post))
                .route("/api/tasks/", get(pl_tasks))
                .route("/api/documents/", get(pl_documents))
                .route("/api/documents/{id}/", get(pl_document).patch(pl_patch))
                .with_state(s)
        },
    )
}

fn pl_auth(s: &Paperless, h: &HeaderMap) -> Option<Response> {
    let ok = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Token {}", s.token));
    (!ok).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Invalid token."})),
        )
            .into_response()
    })
}

async fn pl_post(State(s): State<Arc<Paperless>>, h: HeaderMap, m: Multipart) -> Response {
    lock(&s.log).push("POST /api/documents/post_document/".into());
    if let Some(r) = fault(&s.faults, "post_document").await {
        return r;
    }
    if let Some(r) = pl_auth(&s, &h) {
        return r;
    }
    if !content_type(&h).starts_with("multipart/form-data") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"detail": "Unsupported media type"})),
        )
            .into_response();
    }
    let fields = match read_multipart(m).await {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"detail": e}))).into_response();
        }
    };
    let Some(doc) = fields
        .iter()
        .find(|f| f.name == "document" && f.file_name.is_some())
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"document": ["No file was submitted."]})),
        )
            .into_response();
    };
    let allowed = [
        "document",
        "title",
        "created",
        "correspondent",
        "document_type",
        "storage_path",
        "tags",
        "archive_serial_number",
        "custom_fields",
    ];
    if let Some(f) = fields.iter().find(|f| !allowed.contains(&f.name.as_str())) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detail": format!("unexpected field {}", f.name)})),
        )
            .into_response();
    }
    let text = |n: &str| fields.iter().find(|f| f.name == n).map(Field::text);
    let num = |n: &'static str| -> Result<Option<u64>, &'static str> {
        match text(n) {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| n),
        }
    };
    let mut tags = Vec::new();
    for f in fields.iter().filter(|f| f.name == "tags") {
        match f.text().parse::<u64>() {
            Ok(t) if s.tags.contains(&t) => tags.push(t),
            _ => {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"tags": [format!("Invalid pk \"{}\" - object does not exist.", f.text())]}))).into_response();
            }
        }
    }
    let (document_type, correspondent) = match (num("document_type"), num("correspondent")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(n), _) | (_, Err(n)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({n: ["A valid integer is required."]})),
            )
                .into_response();
        }
    };
    let mut custom_fields = BTreeMap::new();
    if let Some(cf) = text("custom_fields") {
        match serde_json::from_str::<Value>(&cf) {
            Ok(Value::Object(o)) => {
                for (k, v) in o {
                    let (Ok(id), Some(v)) = (k.parse::<u64>(), v.as_str()) else {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"custom_fields": ["Invalid custom field."]})),
                        )
                            .into_response();
                    };
                    custom_fields.insert(id, v.to_string());
                }
            }
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"custom_fields": ["Expected a dictionary of id: value."]})),
                )
                    .into_response();
            }
        }
    }
    let file_name = doc.file_name.clone().unwrap_or_default();
    let pd = PaperlessDoc {
        id: 0,
        title: text("title").unwrap_or_else(|| file_name.clone()),
        created: text("created"),
        tags,
        document_type,
        correspondent,
        custom_fields,
        owner: None,
        file_name,
        bytes: doc.bytes.clone(),
    };
    let id = uuid();
    lock(&s.tasks).push(PendingTask {
        uuid: id.clone(),
        polls: 0,
        doc: pd,
        status: "PENDING".into(),
        result: None,
        related: None,
    });
    axum::Json(json!(id)).into_response()
}

/// The consumer works in the background, as Paperless's does: every request to the API moves
/// each waiting task one step on, so an upload whose answer the client never saw is still
/// consumed. A finished task stores its document, or fails as a duplicate (same checksum).
fn consume(s: &Paperless) {
    let mut tasks = lock(&s.tasks);
    for t in tasks
        .iter_mut()
        .filter(|t| t.status == "PENDING" || t.status == "STARTED")
    {
        t.polls += 1;
        if t.polls <= s.consume_polls {
            t.status = "STARTED".into();
            continue;
        }
        let mut docs = lock(&s.docs);
        if let Some(d) = docs.iter().find(|d| d.bytes == t.doc.bytes) {
            t.status = "FAILURE".into();
            t.result = Some(format!(
                "Not consuming {}: It is a duplicate of {} (#{}).",
                t.doc.file_name, d.title, d.id
            ));
        } else {
            let mut d = t.doc.clone();
            d.id = docs.len() as u64 + 1;
            t.status = "SUCCESS".into();
            t.result = Some(format!("Success. New document id {} created", d.id));
            t.related = Some(d.id);
            docs.push(d);
        }
    }
}

async fn pl_tasks(
    State(s): State<Arc<Paperless>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    lock(&s.log).push("GET /api/tasks/".into());
    if let Some(r) = fault(&s.faults, "/api/tasks/").await {
        return r;
    }
    if let Some(r) = pl_auth(&s, &h) {
        return r;
    }
    let Some(task_id) = q.get("task_id") else {
        return (
            StatusCode::BAD_REQUEST,
            "task_id expected in this test server",
        )
            .into_response();
    };
    consume(&s);
    let tasks = lock(&s.tasks);
    let Some(t) = tasks.iter().find(|t| &t.uuid == task_id) else {
        return axum::Json(json!([])).into_response();
    };
    axum::Json(json!([{
        "id": 1,
        "task_id": t.uuid,
        "task_file_name": t.doc.file_name,
        "date_created": "2026-12-01T10:00:00Z",
        "date_done": if t.status == "SUCCESS" || t.status == "FAILURE" { json!("2026-12-01T10:00:01Z") } else { Value::Null },
        "type": "file",
        "status": t.status,
        "result": t.result,
        "acknowledged": false,
        "related_document": t.related.map(|r| r.to_string()),
    }]))
    .into_response()
}

async fn pl_documents(
    State(s): State<Arc<Paperless>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    lock(&s.log).push("GET /api/documents/".into());
    if let Some(r) = fault(&s.faults, "/api/documents/").await {
        return r;
    }
    if let Some(r) = pl_auth(&s, &h) {
        return r;
    }
    consume(&s);
    let docs = lock(&s.docs);
    let hits: Vec<Value> = match q.get("custom_field_query") {
        None => docs.iter().map(|d| json!({"id": d.id})).collect(),
        Some(cq) => {
            let Ok(Value::Array(a)) = serde_json::from_str::<Value>(cq) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"custom_field_query": ["Value must be valid JSON."]})),
                )
                    .into_response();
            };
            let (Some(field), Some("exact"), Some(value)) = (
                a.first().and_then(|v| v.as_u64()),
                a.get(1).and_then(|v| v.as_str()),
                a.get(2).and_then(|v| v.as_str()),
            ) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"custom_field_query": ["Invalid expression."]})),
                )
                    .into_response();
            };
            docs.iter()
                .filter(|d| d.custom_fields.get(&field).map(String::as_str) == Some(value))
                .map(|d| json!({"id": d.id}))
                .collect()
        }
    };
    let count = hits.len();
    let all: Vec<Value> = hits.iter().map(|h| h["id"].clone()).collect();
    let page_size = q
        .get("page_size")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(25);
    let results: Vec<Value> = hits.into_iter().take(page_size).collect();
    let next = (count > page_size).then_some("/api/documents/?page=2");
    axum::Json(
        json!({"count": count, "next": next, "previous": null, "all": all, "results": results}),
    )
    .into_response()
}

fn pl_detail(d: &PaperlessDoc) -> Value {
    json!({
        "id": d.id, "title": d.title, "tags": d.tags, "document_type": d.document_type,
        "correspondent": d.correspondent, "original_file_name": d.file_name, "owner": d.owner,
        "custom_fields": d.custom_fields.iter().map(|(k, v)| json!({"field": k, "value": v})).collect::<Vec<_>>(),
    })
}

async fn pl_document(
    State(s): State<Arc<Paperless>>,
    h: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    lock(&s.log).push(format!("GET /api/documents/{id}/"));
    if let Some(r) = pl_auth(&s, &h) {
        return r;
    }
    match lock(&s.docs).iter().find(|d| d.id == id) {
        Some(d) => axum::Json(pl_detail(d)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "No Document matches the given query."})),
        )
            .into_response(),
    }
}

/// `PATCH /api/documents/{id}/` with a JSON body (partial update of `tags`, `document_type`,
/// `owner`: a user id or null).
async fn pl_patch(
    State(s): State<Arc<Paperless>>,
    h: HeaderMap,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    lock(&s.log).push(format!("PATCH /api/documents/{id}/"));
    if let Some(r) = pl_auth(&s, &h) {
        return r;
    }
    if !content_type(&h).starts_with("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"detail": "Unsupported media type"})),
        )
            .into_response();
    }
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detail": "JSON parse error"})),
        )
            .into_response();
    };
    let mut docs = lock(&s.docs);
    let Some(d) = docs.iter_mut().find(|d| d.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "No Document matches the given query."})),
        )
            .into_response();
    };
    if let Some(tags) = v.get("tags") {
        let Some(tags) = tags
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_u64()).collect::<Option<Vec<u64>>>())
        else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"tags": ["Expected a list of items."]})),
            )
                .into_response();
        };
        if let Some(bad) = tags.iter().find(|t| !s.tags.contains(t)) {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"tags": [format!("Invalid pk \"{bad}\" - object does not exist.")]}),
                ),
            )
                .into_response();
        }
        d.tags = tags;
    }
    if let Some(dt) = v.get("document_type") {
        d.document_type = dt.as_u64();
    }
    if let Some(o) = v.get("owner") {
        match o.as_u64() {
            Some(u) if !s.users.contains(&u) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"owner": [format!("Invalid pk \"{u}\" - object does not exist.")]}),
                    ),
                )
                    .into_response();
            }
            None if !o.is_null() => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"owner": ["Incorrect type. Expected pk value."]})),
                )
                    .into_response();
            }
            u => d.owner = u,
        }
    }
    axum::Json(pl_detail(d)).into_response()
}

// ------------------------------------------------------------------------------------------
// A small generic REST DMS: `PUT /api/mailboxes/{mailbox}/documents/{id}` (multipart `file`
// plus fields, bearer token) -> 201 + Location, again -> 409; `GET` of the same URL -> 200/404;
// `GET /api/health` -> 200 with the token, 401 without.

/// A document stored by the REST server.
#[derive(Debug, Clone)]
pub struct RestDoc {
    /// Mailbox from the URL.
    pub mailbox: String,
    /// Id from the URL.
    pub id: String,
    /// Text fields.
    pub fields: BTreeMap<String, String>,
    /// File part name, file name, content type.
    pub file: (String, Option<String>, Option<String>),
    /// Content.
    pub bytes: Vec<u8>,
    /// Extra header `X-Poststelle-Mailbox`.
    pub header: Option<String>,
}

/// State of the REST server.
#[derive(Debug, Default)]
pub struct Rest {
    /// Accepted bearer token.
    pub token: String,
    /// Stored documents.
    pub docs: Mutex<Vec<RestDoc>>,
    /// Per document id: the PUTs that got past the faults and the token check, whatever the
    /// answer (`201`, or `409` for a second one). A client that files a document once sends
    /// exactly one; a repeated PUT is answered 409 and would pass unseen without this count.
    pub puts: Mutex<BTreeMap<String, u32>>,
    /// Faults.
    pub faults: Mutex<Faults>,
}

impl HasFaults for Rest {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts the REST server.
pub fn rest(token: &str) -> Server<Rest> {
    Server::start(
        Rest {
            token: token.into(),
            ..Default::default()
        },
        |s| {
            Router::new()
                .route("/api/health", get(rest_health))
                .route(
                    "/api/mailboxes/{mailbox}/documents/{id}",
                    get(rest_get).put(rest_put),
                )
                .with_state(s)
        },
    )
}

/// `GET /api/health`: 200 for the right bearer token.
async fn rest_health(State(s): State<Arc<Rest>>, h: HeaderMap) -> Response {
    if let Some(r) = fault(&s.faults, "GET").await {
        return r;
    }
    if bearer(&h).as_deref() != Some(s.token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn rest_get(
    State(s): State<Arc<Rest>>,
    Path((mb, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    if let Some(r) = fault(&s.faults, "GET").await {
        return r;
    }
    if bearer(&h).as_deref() != Some(s.token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match lock(&s.docs).iter().find(|d| d.mailbox == mb && d.id == id) {
        Some(d) => axum::Json(json!({"id": d.id})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not found"})),
        )
            .into_response(),
    }
}

async fn rest_put(
    State(s): State<Arc<Rest>>,
    Path((mb, id)): Path<(String, String)>,
    h: HeaderMap,
    m: Multipart,
) -> Response {
    if let Some(r) = fault(&s.faults, "PUT").await {
        return r;
    }
    if bearer(&h).as_deref() != Some(s.token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    *lock(&s.puts).entry(id.clone()).or_default() += 1;
    let fields = match read_multipart(m).await {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some(file) = fields.iter().find(|f| f.file_name.is_some()) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "file part missing"})),
        )
            .into_response();
    };
    let mut docs = lock(&s.docs);
    if docs.iter().any(|d| d.mailbox == mb && d.id == id) {
        return (StatusCode::CONFLICT, axum::Json(json!({"error": "exists"}))).into_response();
    }
    docs.push(RestDoc {
        mailbox: mb.clone(),
        id: id.clone(),
        fields: fields
            .iter()
            .filter(|f| f.file_name.is_none())
            .map(|f| (f.name.clone(), f.text()))
            .collect(),
        file: (
            file.name.clone(),
            file.file_name.clone(),
            file.content_type.clone(),
        ),
        bytes: file.bytes.clone(),
        header: h
            .get("x-poststelle-mailbox")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/mailboxes/{mb}/documents/{id}"),
        )],
    )
        .into_response()
}

// ------------------------------------------------------------------------------------------
// A fault-injecting HTTP proxy in front of a real server: requests pass through unchanged
// unless a fault is switched on, so a connector talking to the real Mayan EDMS meets 5xx, 429,
// hanging or lost answers, or a refused connection exactly as it would meet them from a broken
// load balancer in front of it.

/// State of the proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Base URL of the real server.
    pub upstream: String,
    /// Faults.
    pub faults: Mutex<Faults>,
    client: reqwest::Client,
}

impl HasFaults for Proxy {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts a proxy to `upstream` (a base URL without a trailing slash).
pub fn proxy(upstream: &str) -> Server<Proxy> {
    Server::start(
        Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults: Mutex::new(Faults::default()),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        },
        |s| Router::new().fallback(forward).with_state(s),
    )
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
];

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Some(r) = fault(&p.faults, &path).await {
        return r;
    }
    let target = format!(
        "{}{}",
        p.upstream,
        req.uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
    );
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    let body = match axum::body::to_bytes(req.into_body(), 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let upstream = match p
        .client
        .request(method, target)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    match upstream.bytes().await {
        Ok(bytes) => (status, headers, bytes).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

// ------------------------------------------------------------------------------------------
// A server that redirects every request elsewhere, and one that only records what reaches it:
// together they show whether a connector carries its credentials along a redirect.

/// State of the redirecting server.
#[derive(Debug, Default)]
pub struct Redirect {
    /// Base URL every request is sent on to (`302`, same path and query).
    pub to: String,
    /// Requests redirected (method and path).
    pub log: Mutex<Vec<String>>,
    /// Faults.
    pub faults: Mutex<Faults>,
}

impl HasFaults for Redirect {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts a server that answers every request with `302 Found` to the same path under `to`.
pub fn redirect(to: &str) -> Server<Redirect> {
    Server::start(
        Redirect {
            to: to.trim_end_matches('/').to_string(),
            ..Default::default()
        },
        |s| Router::new().fallback(redirect_any).with_state(s),
    )
}

async fn redirect_any(State(s): State<Arc<Redirect>>, req: Request) -> Response {
    let pq = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    lock(&s.log).push(format!("{} {pq}", req.method()));
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{}{pq}", s.to))],
    )
        .into_response()
}

/// A request as the recording server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method and path.
    pub line: String,
    /// Every header.
    pub headers: HeaderMap,
}

/// State of the recording server.
#[derive(Debug, Default)]
pub struct Recorder {
    /// What reached it.
    pub requests: Mutex<Vec<Recorded>>,
    /// Faults.
    pub faults: Mutex<Faults>,
}

impl HasFaults for Recorder {
    fn faults(&self) -> &Mutex<Faults> {
        &self.faults
    }
}

/// Starts a server that records every request and answers `201 Created` (so that a client
/// that got here would take its delivery for done).
pub fn recorder() -> Server<Recorder> {
    Server::start(Recorder::default(), |s| {
        Router::new().fallback(record_any).with_state(s)
    })
}

async fn record_any(State(s): State<Arc<Recorder>>, req: Request) -> Response {
    lock(&s.requests).push(Recorded {
        line: format!("{} {}", req.method(), req.uri().path()),
        headers: req.headers().clone(),
    });
    (StatusCode::CREATED, axum::Json(json!({"id": "here"}))).into_response()
}
