//! Authentication: turns a request's credentials into an [`Identity`] in the request's
//! extensions, and checks the CSRF token of every state-changing browser request. Handlers take
//! an [`Identity`] argument (401 without one) or, on pages, [`super::web::Signed`] (a redirect
//! to `/login` without one).
//!
//! Credentials, in this order: `Authorization: Bearer <token>` (the configured global token,
//! which is an admin machine token, or a personal `pst_...` token); the session cookie
//! [`SESSION_COOKIE`] of a browser. A bearer token that does not hold is refused with 401, not
//! served anonymously; a stale session cookie is treated as no cookie (pages lead to the login).
//!
//! CSRF: a request with a session whose method changes something (anything but GET, HEAD,
//! OPTIONS) must carry the session's CSRF token as header `X-CSRF-Token`, as query parameter
//! `csrf`, or as field `csrf` of an urlencoded form; otherwise 403. Two forms check their own:
//! the login form (a double-submit cookie) and the upload form (its first multipart field). Token requests need none
//! (a browser never sends them on its own).

use super::{ApiError, ApiState};
use crate::auth::{Identity, Via, constant_time_eq};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// The browser session's cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "poststelle_sitzung";
/// The login form's double-submit cookie: its value must come back in the form's `csrf` field,
/// so that no other site can sign a browser in under an account of its choosing.
pub const LOGIN_COOKIE: &str = "poststelle_anmeldung";
/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest urlencoded form body read for its CSRF field.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`; `Secure` when `secure`;
/// `max_age` seconds (0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether cookies for this request must be `Secure`: by config, or because a TLS-terminating
/// proxy says the browser came over https.
pub fn secure_request(s: &ApiState, headers: &HeaderMap) -> bool {
    s.auth.settings().secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The middleware: resolves the identity (if any), stores it in the request's extensions and
/// enforces CSRF tokens on sessions.
pub async fn authenticate(
    State(s): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    if let Some(given) = bearer {
        match s.auth.bearer(&given).await? {
            Some(id) => {
                req.extensions_mut().insert(id);
            }
            None => return Err(ApiError::Unauthorized),
        }
    } else if let Some(cookie) = cookie_value(req.headers(), SESSION_COOKIE)
        && let Some(id) = s.auth.session(&cookie).await?
    {
        req.extensions_mut().insert(id);
    }
    let csrf = req
        .extensions()
        .get::<Identity>()
        .and_then(|id| match &id.via {
            Via::Session { csrf } => Some(csrf.clone()),
            _ => None,
        });
    // The login form has its own double-submit token (see `web::login`); the upload form's
    // token is its first multipart field, which the upload page checks before it reads a file
    // (so that the token never stands in a URL and the body is not read twice).
    if let Some(expected) = csrf
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !matches!(req.uri().path(), "/login" | super::web::upload::PATH)
    {
        let page = !req.uri().path().starts_with("/api/");
        let who = req.extensions().get::<Identity>().cloned();
        let (ok, back) = csrf_given(req, &expected).await?;
        if !ok {
            let msg = "Das Sicherheitsmerkmal des Formulars fehlt oder ist abgelaufen. Bitte laden Sie die Seite neu.";
            // People at the desk get a page in its frame; the JSON API answers JSON.
            if page {
                return Ok(super::web::error_page(
                    who.as_ref(),
                    axum::http::StatusCode::FORBIDDEN,
                    msg,
                ));
            }
            return Err(ApiError::Forbidden(msg.into()));
        }
        req = back;
    }
    Ok(next.run(req).await)
}

/// Whether the request carries `expected` as CSRF token; hands the request back (its body
/// re-assembled when it had to be read).
async fn csrf_given(req: Request, expected: &str) -> Result<(bool, Request), ApiError> {
    let matches = |v: &str| constant_time_eq(v.as_bytes(), expected.as_bytes());
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|h| h.to_str().ok()) {
        return Ok((matches(h), req));
    }
    if let Some(q) = req.uri().query()
        && let Some((_, v)) = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "csrf")
    {
        return Ok((matches(&v), req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((false, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest("Formular zu groß.".into()))?;
    let ok = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, v)| matches(&v));
    Ok((ok, Request::from_parts(parts, Body::from(bytes))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; poststelle_sitzung=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "v", 60, false).contains("Secure"));
    }
}
