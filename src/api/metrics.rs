//! `/metrics`: the daemon's figures in the Prometheus text format (version 0.0.4).
//!
//! Who may read them: an admin identity (the configured global token is one), or a scraper on
//! the same machine without credentials (a loopback peer whose request carries no proxy
//! headers, so that a reverse proxy on the same host does not open it to everyone). Anyone
//! else, a signed-in department or Poststelle included, gets 403.
//!
//! Everything is read from the store on each scrape, so the figures survive restarts:
//! - `poststelle_documents{state}`: documents per state now (every state, 0 included);
//! - `poststelle_review_queue_oldest_seconds`: how long the oldest review item has waited;
//! - `poststelle_delivery_failures_total{target}`: failed delivery attempts ever, per target
//!   of the document's mailbox;
//! - `poststelle_model_info{version}`: the active model;
//! - the Stichprobe: `poststelle_sample_open` (samples waiting for a verdict),
//!   `poststelle_sample_judged_total{mailbox,verdict}`, `poststelle_live_precision{mailbox}`
//!   with `poststelle_live_precision_lower{mailbox}` / `_upper` (95 % Wilson interval),
//!   `poststelle_precision_target` and `poststelle_review_threshold_raised{mailbox}`;
//! - `poststelle_stage_seconds{stage}`: a histogram of the time documents received in the last
//!   24 hours (at most [`MAX_DOCUMENTS`]) spent in extraction, classification and delivery.

use super::{ApiError, ApiState};
use crate::auth::Identity;
use crate::domain::{DocState, MailboxId};
use crate::store::stats::StageDurations;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;

/// Documents looked at for the stage histograms at most (the newest of the window).
pub const MAX_DOCUMENTS: i64 = 10_000;
/// The window of the stage histograms.
pub const STAGE_WINDOW_HOURS: i64 = 24;
/// Upper bounds of the stage histograms' buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];
/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Headers a reverse proxy adds: a request carrying one did not start on this machine.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// `GET /metrics`.
pub async fn metrics(
    State(s): State<ApiState>,
    who: Option<Extension<Identity>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    if !allowed(who.as_ref().map(|w| &w.0), peer, &headers) {
        return Err(ApiError::Forbidden(
            "Die Messwerte sind der Verwaltung vorbehalten (oder einem Abruf ohne Anmeldung vom \
             selben Rechner)."
                .into(),
        ));
    }
    let text = render(&s).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Whether the request may read the metrics: an admin, or nobody signed in on a loopback
/// connection that no proxy forwarded.
pub fn allowed(who: Option<&Identity>, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    match who {
        Some(w) => w.is_admin(),
        None => {
            peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
                && !PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
        }
    }
}

async fn render(s: &ApiState) -> Result<String, ApiError> {
    let store = &s.pipeline.store;
    let mut out = String::new();

    let counts: BTreeMap<String, i64> = store.state_counts().await?.into_iter().collect();
    help(
        &mut out,
        "poststelle_documents",
        "gauge",
        "Documents per state now.",
    );
    for st in DocState::ALL {
        let n = counts.get(st.as_str()).copied().unwrap_or(0);
        sample(
            &mut out,
            "poststelle_documents",
            &[("state", st.as_str())],
            n as f64,
        );
    }

    let queue = store.review_queue().await?;
    let oldest = queue
        .oldest
        .and_then(|w| chrono::DateTime::parse_from_rfc3339(&w.since).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        })
        .unwrap_or(0.0)
        .max(0.0);
    help(
        &mut out,
        "poststelle_review_queue_oldest_seconds",
        "gauge",
        "Seconds the oldest document in the review queue has waited since it arrived (0 when the queue is empty).",
    );
    sample(
        &mut out,
        "poststelle_review_queue_oldest_seconds",
        &[],
        oldest,
    );

    let settings = &s.pipeline.settings;
    let mut failures: BTreeMap<String, i64> =
        s.pipeline.targets.keys().map(|t| (t.clone(), 0)).collect();
    for (mailbox, n) in store.delivery_failures().await? {
        let target = mailbox
            .as_deref()
            .and_then(MailboxId::parse)
            .and_then(|m| settings.mailbox(&m).map(|mb| mb.target.clone()))
            .unwrap_or_else(|| "unknown".into());
        *failures.entry(target).or_insert(0) += n;
    }
    help(
        &mut out,
        "poststelle_delivery_failures_total",
        "counter",
        "Failed delivery attempts (retried or given up), per target of the document's mailbox.",
    );
    for (target, n) in &failures {
        sample(
            &mut out,
            "poststelle_delivery_failures_total",
            &[("target", target)],
            *n as f64,
        );
    }

    help(
        &mut out,
        "poststelle_model_info",
        "gauge",
        "The classification model in use (value 1; no sample without a model).",
    );
    if let Some(m) = s.pipeline.router().classifier().model() {
        sample(
            &mut out,
            "poststelle_model_info",
            &[("version", &m.meta.version)],
            1.0,
        );
    }

    sample_metrics(&mut out, s).await?;

    let since = chrono::Utc::now() - chrono::Duration::hours(STAGE_WINDOW_HOURS);
    let stages = store.stage_durations(since, MAX_DOCUMENTS).await?;
    stage_histograms(&mut out, &stages);
    Ok(out)
}

/// The Stichprobe's figures: open samples, verdicts, measured precision with its interval, the
/// target and the thresholds it raised.
async fn sample_metrics(out: &mut String, s: &ApiState) -> Result<(), ApiError> {
    let store = &s.pipeline.store;
    help(
        out,
        "poststelle_sample_open",
        "gauge",
        "Documents of the Stichprobe waiting for a person's verdict.",
    );
    sample(
        out,
        "poststelle_sample_open",
        &[],
        store.open_sample_count().await? as f64,
    );
    let measured = crate::sample::measure(&store.judged_samples(None).await?);
    help(
        out,
        "poststelle_sample_judged_total",
        "counter",
        "Judged samples per mailbox the machine chose and verdict (confirmed, overturned).",
    );
    for m in &measured {
        for (verdict, n) in [("confirmed", m.confirmed), ("overturned", m.overturned)] {
            sample(
                out,
                "poststelle_sample_judged_total",
                &[("mailbox", m.mailbox.as_str()), ("verdict", verdict)],
                n as f64,
            );
        }
    }
    for (name, text, value) in [
        (
            "poststelle_live_precision",
            "Measured precision of the documents routed straight through, per mailbox (confirmed / judged samples).",
            (|m: &crate::sample::Measured| m.precision) as fn(&crate::sample::Measured) -> f64,
        ),
        (
            "poststelle_live_precision_lower",
            "Lower bound of the 95 % Wilson interval of the measured precision.",
            |m| m.lower,
        ),
        (
            "poststelle_live_precision_upper",
            "Upper bound of the 95 % Wilson interval of the measured precision.",
            |m| m.upper,
        ),
    ] {
        help(out, name, "gauge", text);
        for m in &measured {
            sample(out, name, &[("mailbox", m.mailbox.as_str())], value(m));
        }
    }
    help(
        out,
        "poststelle_precision_target",
        "gauge",
        "The precision target the Stichprobe measures against.",
    );
    sample(
        out,
        "poststelle_precision_target",
        &[],
        s.pipeline.settings.classify.precision_target,
    );
    help(
        out,
        "poststelle_review_threshold_raised",
        "gauge",
        "Review thresholds the Stichprobe raised, per mailbox (no sample: not raised).",
    );
    for (mailbox, r) in store.threshold_raises().await? {
        sample(
            out,
            "poststelle_review_threshold_raised",
            &[("mailbox", mailbox.as_str())],
            r.threshold,
        );
    }
    Ok(())
}

/// The stage histograms of `d` in the text format.
pub fn stage_histograms(out: &mut String, d: &StageDurations) {
    help(
        out,
        "poststelle_stage_seconds",
        "histogram",
        "Seconds documents received in the last 24 hours (the newest 10000) spent in a stage: \
         extract (receipt to text), classify (text to decision), deliver (decision to delivery).",
    );
    for (stage, values) in [
        ("extract", &d.extract),
        ("classify", &d.classify),
        ("deliver", &d.deliver),
    ] {
        for le in BUCKETS {
            let n = values.iter().filter(|v| **v <= le).count();
            sample(
                out,
                "poststelle_stage_seconds_bucket",
                &[("stage", stage), ("le", &number(le))],
                n as f64,
            );
        }
        sample(
            out,
            "poststelle_stage_seconds_bucket",
            &[("stage", stage), ("le", "+Inf")],
            values.len() as f64,
        );
        sample(
            out,
            "poststelle_stage_seconds_sum",
            &[("stage", stage)],
            values.iter().sum(),
        );
        sample(
            out,
            "poststelle_stage_seconds_count",
            &[("stage", stage)],
            values.len() as f64,
        );
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        text.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", label_value(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A label value escaped for the text format (backslash, double quote, line feed).
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A number as the text format writes it: integers without a fraction.
fn number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use axum::http::HeaderValue;

    #[test]
    fn admins_and_local_scrapers_without_credentials_may_read() {
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("addr");
        let remote: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
        let none = HeaderMap::new();
        let admin = Identity::global_token();
        let mut dept = Identity::global_token();
        dept.role = Role::Fachbereich;
        let mut post = Identity::global_token();
        post.role = Role::Poststelle;
        assert!(allowed(Some(&admin), Some(remote), &none));
        assert!(allowed(None, Some(local), &none));
        assert!(allowed(None, Some(mapped), &none));
        assert!(!allowed(None, Some(remote), &none));
        assert!(!allowed(None, None, &none));
        assert!(!allowed(Some(&dept), Some(local), &none));
        assert!(!allowed(Some(&post), Some(local), &none));
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(!allowed(None, Some(local), &proxied));
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let d = StageDurations {
            extract: vec![0.05, 2.0, 7200.0],
            classify: vec![],
            deliver: vec![1.0],
        };
        let mut out = String::new();
        stage_histograms(&mut out, &d);
        assert!(out.starts_with("# HELP poststelle_stage_seconds "));
        assert!(out.contains("# TYPE poststelle_stage_seconds histogram\n"));
        for line in [
            "poststelle_stage_seconds_bucket{stage=\"extract\",le=\"0.1\"} 1\n",
            "poststelle_stage_seconds_bucket{stage=\"extract\",le=\"2.5\"} 2\n",
            "poststelle_stage_seconds_bucket{stage=\"extract\",le=\"3600\"} 2\n",
            "poststelle_stage_seconds_bucket{stage=\"extract\",le=\"+Inf\"} 3\n",
            "poststelle_stage_seconds_sum{stage=\"extract\"} 7202.05\n",
            "poststelle_stage_seconds_count{stage=\"extract\"} 3\n",
            "poststelle_stage_seconds_bucket{stage=\"classify\",le=\"+Inf\"} 0\n",
            "poststelle_stage_seconds_bucket{stage=\"deliver\",le=\"1\"} 1\n",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        sample(&mut out, "m", &[("v", "1\"")], 0.5);
        assert_eq!(out, "m{v=\"1\\\"\"} 0.5\n");
    }
}
