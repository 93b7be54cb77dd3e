//! Shared HTTP code of the DMS connectors: building clients and mapping transport failures
//! and status codes to [`DeliveryError`].
//!
//! Timeouts, connection errors, 408, 429 and 5xx are temporary (429 and 503 carry the
//! server's `Retry-After`); every other 4xx is permanent: sending the same request again
//! would be refused again.

use super::DeliveryError;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Longest `Retry-After` we honour; a server asking for more is retried after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Body excerpts in error messages are cut to this many characters.
const EXCERPT: usize = 300;

/// A client with the connector's timeout (whole request) and a shorter connect timeout. A
/// connector that cannot get one cannot be built.
///
/// The client follows no redirect: every connector sends credentials (a bearer token, basic
/// auth, an API key in a header of its own), and a redirect to another host would carry them
/// there (reqwest drops `Authorization` across hosts, but not a custom header). A 3xx answer is
/// an error of its own ([`status_error`]) that names where the server points.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("poststelle/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A transport failure (no HTTP status): `what` names the request in the message.
pub fn send_error(what: &str, e: reqwest::Error) -> DeliveryError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_builder() {
        return DeliveryError::Permanent(format!("{what}: invalid request: {e}"));
    } else {
        "transport error"
    };
    DeliveryError::Retriable(format!("{what}: {kind}: {}", chain(&e)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The server's `Retry-After` (seconds or HTTP-date), capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// True for statuses worth retrying.
pub fn is_retriable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The error for a non-success status with its body. A redirect (3xx) is permanent: the
/// same request would be redirected again, and it is not followed (see [`client`]); the
/// configured URL has to name the target itself.
pub fn status_error(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DeliveryError {
    if status.is_redirection() {
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(ohne Location)");
        let to: String = to.chars().take(EXCERPT).collect();
        return DeliveryError::Permanent(format!(
            "{what}: HTTP {status}: Weiterleitung nach {to} nicht gefolgt (Anfragen mit \
             Zugangsdaten folgen keiner Weiterleitung); die URL in der Konfiguration muss \
             direkt auf das Ziel zeigen"
        ));
    }
    let excerpt: String = body.chars().take(EXCERPT).collect();
    let msg = format!("{what}: HTTP {status}: {}", excerpt.trim());
    if is_retriable(status) {
        match retry_after(headers) {
            Some(d)
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                DeliveryError::RetryAfter(msg, d)
            }
            _ => DeliveryError::Retriable(msg),
        }
    } else {
        DeliveryError::Permanent(msg)
    }
}

/// Sends a request, mapping transport failures.
pub async fn send(
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, DeliveryError> {
    req.send().await.map_err(|e| send_error(what, e))
}

/// Passes success responses through; turns the others into errors (reading their body).
pub async fn check(
    what: &str,
    resp: reqwest::Response,
) -> Result<reqwest::Response, DeliveryError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(error_of(what, resp).await)
}

/// The error of a response that is not what the caller accepts.
pub async fn error_of(what: &str, resp: reqwest::Response) -> DeliveryError {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    status_error(what, status, &headers, &body)
}

/// Sends and checks in one step.
pub async fn send_ok(
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, DeliveryError> {
    check(what, send(what, req).await?).await
}

/// Reads a JSON body. A body that does not parse is temporary (a proxy's error page, a
/// half-sent answer), but the message says what came.
pub async fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    resp: reqwest::Response,
) -> Result<T, DeliveryError> {
    let bytes = resp.bytes().await.map_err(|e| send_error(what, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let excerpt: String = String::from_utf8_lossy(&bytes)
            .chars()
            .take(EXCERPT)
            .collect();
        DeliveryError::Retriable(format!("{what}: unexpected answer ({e}): {excerpt}"))
    })
}

/// A header's value as a string.
pub fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Resolves a (possibly relative) `Location` against a base URL.
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    match reqwest::Url::parse(base).and_then(|b| b.join(location)) {
        Ok(u) => u.to_string(),
        Err(_) => location.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn statuses_map_to_retriable_or_permanent() {
        let h = HeaderMap::new();
        for s in [408u16, 429, 500, 502, 503, 504] {
            let e = status_error("x", StatusCode::from_u16(s).expect("status"), &h, "");
            assert!(matches!(e, DeliveryError::Retriable(_)), "{s}: {e:?}");
        }
        for s in [
            301u16, 302, 303, 307, 308, 400, 401, 403, 404, 405, 409, 413, 415, 422,
        ] {
            let e = status_error("x", StatusCode::from_u16(s).expect("status"), &h, "no");
            assert!(matches!(e, DeliveryError::Permanent(_)), "{s}: {e:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            status_error("x", StatusCode::TOO_MANY_REQUESTS, &h, ""),
            DeliveryError::RetryAfter(
                "x: HTTP 429 Too Many Requests: ".into(),
                Duration::from_secs(7)
            )
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let at = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&at).expect("value"));
        let d = retry_after(&h).expect("date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn refused_connection_and_timeout_are_retriable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let c = client(Duration::from_secs(2)).expect("client");
        let e = send("probe", c.get(format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(&e, DeliveryError::Retriable(m) if m.contains("connection")),
            "{e:?}"
        );
        // A server that accepts and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let _hold = tokio::spawn(async move {
            let mut keep = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                keep.push(s);
            }
        });
        let c = client(Duration::from_millis(300)).expect("client");
        let e = send("probe", c.get(format!("http://{addr}/")))
            .await
            .expect_err("times out");
        assert!(
            matches!(&e, DeliveryError::Retriable(m) if m.contains("timeout")),
            "{e:?}"
        );
    }
}
