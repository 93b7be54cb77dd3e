//! Anmeldung: `/login` (form fields `username`, `password`) and `/logout`.
//!
//! The login form carries a double-submit token: `GET /login` sets the cookie
//! [`LOGIN_COOKIE`] and puts the same random value into the form's `csrf` field; `POST /login`
//! accepts only when both agree, so no other site can sign a browser in. A successful login sets
//! the session cookie [`SESSION_COOKIE`] and leads to `next` (a path of this site) or the role's
//! landing page.

use super::{landing, render};
use crate::api::ApiState;
use crate::api::auth::{LOGIN_COOKIE, SESSION_COOKIE, cookie_value, secure_request, set_cookie};
use crate::auth::{Identity, LoginOutcome, constant_time_eq, password};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/login", get(form).post(submit))
        .route("/logout", post(logout))
}

/// The login form.
#[derive(Template)]
#[template(path = "login.html", config = "src/api/web/askama.toml")]
pub struct LoginPage {
    /// The town's name.
    pub town: String,
    /// A message (wrong password, locked, signed out).
    pub message: Option<String>,
    /// Whether the message is a success note rather than a problem.
    pub notice: bool,
    /// Where to go after signing in.
    pub next: String,
    /// The pre-session CSRF token (the login cookie's value).
    pub csrf: String,
    /// The name typed before (shown again after a failure).
    pub username: String,
}

#[derive(Debug, Deserialize)]
struct FormQuery {
    next: Option<String>,
    abgemeldet: Option<String>,
}

/// Only a path of this site: no scheme, no `//host`, no backslash tricks.
fn local_path(next: Option<&str>) -> Option<String> {
    let n = next?.trim();
    // Browsers drop tabs and line breaks from URLs ("/\t/evil" becomes "//evil"): no control
    // characters or spaces at all.
    let plain = !n.chars().any(|c| c.is_control() || c.is_whitespace());
    (plain && n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("://"))
        .then(|| n.to_string())
}

/// The login page with a fresh login cookie.
fn page(
    s: &ApiState,
    headers: &HeaderMap,
    status: StatusCode,
    message: Option<String>,
    notice: bool,
    next: String,
    username: String,
) -> Response {
    let token = match password::random_hex(32) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no random token for the login form");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Zufallsquelle nicht verfügbar.",
            )
                .into_response();
        }
    };
    let mut res = (
        status,
        render(&LoginPage {
            town: s.pipeline.settings.municipality.clone(),
            message,
            notice,
            next,
            csrf: token.clone(),
            username,
        }),
    )
        .into_response();
    let cookie = set_cookie(LOGIN_COOKIE, &token, 3600, secure_request(s, headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn form(
    State(s): State<ApiState>,
    who: Option<axum::Extension<Identity>>,
    headers: HeaderMap,
    Query(q): Query<FormQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if let Some(axum::Extension(who)) = who {
        return Redirect::to(&next.unwrap_or_else(|| landing(who.role).to_string()))
            .into_response();
    }
    let message = q
        .abgemeldet
        .is_some()
        .then(|| "Sie sind abgemeldet.".to_string());
    let notice = message.is_some();
    page(
        &s,
        &headers,
        StatusCode::OK,
        message,
        notice,
        next.unwrap_or_else(|| "/".into()),
        String::new(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn submit(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_path(Some(&f.next)).unwrap_or_else(|| "/".into());
    let again = |status, msg: &str| {
        page(
            &s,
            &headers,
            status,
            Some(msg.to_string()),
            false,
            next.clone(),
            f.username.clone(),
        )
    };
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return again(
            StatusCode::FORBIDDEN,
            "Das Anmeldeformular ist abgelaufen. Bitte melden Sie sich erneut an.",
        );
    }
    match s.auth.login(&f.username, &f.password).await {
        Ok(LoginOutcome::SignedIn { cookie, identity }) => {
            let secure = secure_request(&s, &headers);
            let target = if next == "/" {
                landing(identity.role).to_string()
            } else {
                next.clone()
            };
            let mut res = Redirect::to(&target).into_response();
            let max_age = s.auth.settings().session_minutes * 60;
            for c in [
                set_cookie(SESSION_COOKIE, &cookie, max_age, secure),
                set_cookie(LOGIN_COOKIE, "", 0, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Ok(LoginOutcome::Refused) => again(
            StatusCode::UNAUTHORIZED,
            "Benutzername oder Passwort ist falsch.",
        ),
        Ok(LoginOutcome::Locked { until }) => {
            let at = chrono::DateTime::parse_from_rfc3339(&until)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%H:%M Uhr")
                        .to_string()
                })
                .unwrap_or(until);
            again(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Zu viele fehlgeschlagene Anmeldungen. Dieser Benutzer ist bis {at} gesperrt."
                ),
            )
        }
        Ok(LoginOutcome::DirectoryDown(why)) => {
            tracing::warn!(error = %why, "directory unreachable at login");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Der Verzeichnisdienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal oder wenden Sie sich an die IT.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "login failed");
            again(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Die Anmeldung ist gerade nicht möglich. Bitte wenden Sie sich an die IT.",
            )
        }
    }
}

async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(e) = s.auth.logout(&cookie).await
    {
        tracing::error!(error = %e, "logout failed");
    }
    let mut res = Redirect::to("/login?abgemeldet=1").into_response();
    let c = set_cookie(SESSION_COOKIE, "", 0, secure_request(&s, &headers));
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn next_is_only_a_local_path() {
        assert_eq!(
            local_path(Some("/pruefkorb?x=1")).as_deref(),
            Some("/pruefkorb?x=1")
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "pruefkorb",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(local_path(Some(bad)), None, "{bad}");
        }
    }
}
