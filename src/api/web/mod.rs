//! The web desk: German pages rendered by the daemon (askama templates, checked at compile
//! time, escaped by default), plain forms and one small script for keyboard use.
//!
//! One module per desk:
//! - [`login`]: `/login`, `/logout` (Anmeldung);
//! - [`account`]: `/konto` (Mein Konto: one's own API tokens);
//! - [`review`]: `/pruefkorb` and `/pruefkorb/{id}` (Prüfkorb, role `poststelle`);
//! - [`sample`]: `/stichprobe` (Stichprobe: confirm or correct a share of the documents routed
//!   straight through; the measured precision per mailbox);
//! - [`document`]: what every desk shows of a document: page images
//!   (`/dokumente/{id}/seite/{n}`), the explanation in sentences, the deciding words marked;
//! - [`inbox`]: `/eingang` (a department's mailboxes: send back, forward);
//! - [`dashboard`]: `/uebersicht` (Übersicht, server-rendered SVG charts);
//! - [`admin`]: `/verwaltung/...` (models, quarantine, dead letters, users, tokens, targets),
//!   `/quarantaene` (the quarantine list for the Poststelle);
//! - [`upload`]: `/hochladen` (Hochladen);
//! - [`stack`]: `/stapel/{id}` (a stack's pages as thumbnails; moving its split points).
//!
//! Every page handler takes [`Signed`] (a redirect to `/login` without a session) and builds its
//! template with a [`Chrome`] (navigation, the signed-in person, the CSRF token every form
//! carries as hidden field `csrf`). Responses carry a `Content-Security-Policy` that allows no
//! inline script or style.

pub mod account;
pub mod admin;
pub mod dashboard;
pub mod document;
pub mod inbox;
pub mod login;
pub mod review;
pub mod sample;
pub mod stack;
pub mod upload;
pub mod visual;

use super::ApiState;
use crate::auth::{Identity, Role};
use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// The pages' routes and static assets.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/static/desk.css", get(css))
        .route("/static/desk.js", get(js))
        .merge(login::routes())
        .merge(account::routes())
        .merge(review::routes())
        .merge(sample::routes())
        .merge(visual::routes())
        .merge(document::routes())
        .merge(inbox::routes())
        .merge(dashboard::routes())
        .merge(admin::routes())
        .merge(upload::routes())
        .merge(stack::routes())
        .layer(axum::middleware::map_response(security_headers))
}

/// A signed-in person on a page; without one the page redirects to `/login`.
#[derive(Debug, Clone)]
pub struct Signed(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(id) => Ok(Signed(id.clone())),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let target = format!("/login?next={}", encode_component(next));
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// One entry of the navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Link.
    pub href: &'static str,
    /// Label.
    pub label: &'static str,
    /// The page shown now.
    pub current: bool,
}

/// What every page's frame needs: title, navigation, the person, the CSRF token.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The page's title (also the `<h1>`).
    pub title: String,
    /// Navigation for the person's role.
    pub nav: Vec<NavItem>,
    /// The signed-in person's name.
    pub user: String,
    /// Their role, as people read it.
    pub role: &'static str,
    /// The CSRF token for forms (empty for token identities, which need none).
    pub csrf: String,
    /// The page shown is the person's own (`/konto`, linked from their name).
    pub own_page: bool,
}

impl Chrome {
    /// The frame for `who` on the page at `current` (its path, e.g. `/pruefkorb`).
    pub fn new(who: &Identity, title: impl Into<String>, current: &str) -> Chrome {
        let all: [(&'static str, &'static str, bool); 8] = [
            ("/pruefkorb", "Prüfkorb", who.is_poststelle()),
            ("/stichprobe", "Stichprobe", who.is_poststelle()),
            ("/sichtkontrolle", "Sichtkontrolle", who.is_poststelle()),
            ("/eingang", "Eingang", true),
            ("/uebersicht", "Übersicht", who.is_poststelle()),
            ("/hochladen", "Hochladen", who.is_poststelle()),
            ("/quarantaene", "Quarantäne", who.is_poststelle()),
            ("/verwaltung", "Verwaltung", who.is_admin()),
        ];
        let nav = all
            .into_iter()
            .filter(|(_, _, shown)| *shown)
            .map(|(href, label, _)| NavItem {
                href,
                label,
                current: current == href || current.starts_with(&format!("{href}/")),
            })
            .collect();
        Chrome {
            title: title.into(),
            nav,
            user: who.name.clone(),
            role: who.role.label_de(),
            csrf: who.csrf().unwrap_or_default().to_string(),
            own_page: current == "/konto",
        }
    }
}

/// Renders a template as an HTML response (500 with a German message if rendering fails).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><html lang=\"de\"><title>Fehler</title><p>Die Seite konnte nicht angezeigt werden.</p></html>".to_string()),
            )
                .into_response()
        }
    }
}

/// A German error page for people (404, 403, 400, ...).
#[derive(Template)]
#[template(path = "error.html", config = "src/api/web/askama.toml")]
pub struct ErrorPage {
    /// Frame (None when nobody is signed in).
    pub chrome: Option<Chrome>,
    /// Heading.
    pub heading: String,
    /// What happened, in German.
    pub message: String,
}

/// An error page with its status code.
pub fn error_page(
    who: Option<&Identity>,
    status: StatusCode,
    message: impl Into<String>,
) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Nicht gefunden",
        StatusCode::FORBIDDEN => "Keine Berechtigung",
        StatusCode::BAD_REQUEST => "Ungültige Eingabe",
        StatusCode::CONFLICT => "Nicht möglich",
        _ => "Fehler",
    };
    let page = ErrorPage {
        chrome: who.map(|w| Chrome::new(w, heading, "")),
        heading: heading.into(),
        message: message.into(),
    };
    (status, render(&page)).into_response()
}

/// A failure people cannot mend: logged, and a German 500 page.
pub fn failed(who: &Identity, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "page: action failed");
    error_page(
        Some(who),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Die Aktion ist fehlgeschlagen; Einzelheiten stehen im Protokoll des Dienstes.",
    )
}

/// The German 404 page for a document that does not exist or is not the person's to see.
pub fn no_document(who: &Identity) -> Response {
    error_page(Some(who), StatusCode::NOT_FOUND, "Dokument nicht gefunden.")
}

/// A store error as a page: a missing document 404, a document in a state where the action
/// is not possible 409 with `conflict`, anything else [`failed`].
pub fn store_failure(who: &Identity, e: crate::store::StoreError, conflict: &str) -> Response {
    match e {
        crate::store::StoreError::NotFound(_) => no_document(who),
        crate::store::StoreError::Conflict { .. } => {
            error_page(Some(who), StatusCode::CONFLICT, conflict)
        }
        other => failed(who, other),
    }
}

/// The landing page of each role.
pub fn landing(role: Role) -> &'static str {
    match role {
        Role::Poststelle => "/pruefkorb",
        Role::Fachbereich => "/eingang",
        Role::Admin => "/uebersicht",
    }
}

async fn home(Signed(who): Signed) -> Redirect {
    Redirect::to(landing(who.role))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/desk.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/desk.js"),
    )
}

/// No inline script or style, no framing, no foreign origins.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Percent-encodes a URL component (query values such as `next`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigation_follows_the_role() {
        let mut who = Identity::global_token();
        who.role = Role::Fachbereich;
        let c = Chrome::new(&who, "Eingang", "/eingang");
        let hrefs: Vec<_> = c.nav.iter().map(|n| n.href).collect();
        assert_eq!(hrefs, ["/eingang"]);
        assert!(c.nav[0].current);
        let admin = Chrome::new(&Identity::global_token(), "x", "/verwaltung/modelle");
        assert!(
            admin
                .nav
                .iter()
                .any(|n| n.href == "/verwaltung" && n.current)
        );
    }

    #[test]
    fn components_are_encoded() {
        assert_eq!(
            encode_component("/pruefkorb?x=1&y"),
            "/pruefkorb%3Fx%3D1%26y"
        );
    }
}
