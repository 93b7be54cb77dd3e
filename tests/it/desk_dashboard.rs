//! The Übersicht (`/uebersicht`) and `/metrics` over HTTP: one letter is read and delivered,
//! then the Poststelle sees it counted on the page, a department is refused, and `/metrics`
//! answers the global token and a local scraper without credentials, but no department. In a
//! real browser, the page with every chart filled has no axe-core violations (WCAG 2.1 AA).

use crate::auth::{PASSWORD, Session, add_user, browser, sign_in, user_token};
use crate::harness::browser::{Browser, keys};
use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

fn page(d: &TestApp, s: &Session, path: &str) -> reqwest::blocking::Response {
    browser()
        .get(d.url(path))
        .header("Cookie", &s.cookie)
        .send()
        .expect("get")
}

#[test]
fn the_overview_counts_a_delivered_letter_and_metrics_are_for_admins() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);
    d.drop_file("brief.pdf", &bauantrag_pdf());
    wait_for("delivery", LONG, || {
        d.documents()
            .iter()
            .any(|x| x["state"] == "delivered")
            .then_some(())
    });

    // The Poststelle sees the letter counted: intake, straight through, mailbox 63.
    let post = sign_in(&d, "p.post");
    let r = page(&d, &post, "/uebersicht");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("style-src 'self'"), "{csp}");
    let html = r.text().expect("html");
    assert!(
        html.contains("1 Dokument in den letzten 14 Tagen."),
        "{html}"
    );
    assert!(html.contains("63 Bauordnung"), "{html}");
    assert!(
        html.contains("<th scope=\"row\">63 Bauordnung</th><td>1</td>"),
        "{html}"
    );
    assert!(
        html.contains("data-figure=\"straight-recent\">100 %</dd>"),
        "decided without a person: {html}"
    );
    assert!(html.contains("data-figure=\"queue\">0</dd>"), "{html}");
    assert!(html.contains("Nichts wartet auf eine Entscheidung."));
    assert!(html.contains("data-figure=\"dead-letters\">0</dd>"));
    assert!(
        html.contains("<svg class=\"chart\"") && html.contains("role=\"img\""),
        "{html}"
    );
    assert!(
        !html.contains("style=") && !html.contains("<style"),
        "no inline styles under the CSP"
    );
    assert!(
        !html.contains("href=\"/verwaltung#"),
        "no links to the administration for the Poststelle"
    );
    assert!(
        html.contains("Korrekturen je Postfach") && html.contains("Keine Daten"),
        "nobody corrected anything yet"
    );

    // The administration also gets the links to quarantine and dead letters.
    add_user(&d, "a.admin", "admin", &[]);
    let admin = sign_in(&d, "a.admin");
    let html = page(&d, &admin, "/uebersicht").text().expect("html");
    assert!(html.contains("href=\"/verwaltung#quarantaene\""), "{html}");
    assert!(html.contains("href=\"/verwaltung#unzustellbar\""), "{html}");

    // A department has no overview.
    let bau = sign_in(&d, "b.bau");
    let r = page(&d, &bau, "/uebersicht");
    assert_eq!(r.status(), 403);
    assert!(r.text().expect("html").contains("Keine Berechtigung"));
    // Without a session: the login.
    let r = browser().get(d.url("/uebersicht")).send().expect("get");
    assert_eq!(r.status(), 303);

    // /metrics with the global token (an admin).
    let r = browser()
        .get(d.url("/metrics"))
        .bearer_auth(&d.token)
        .send()
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().expect("text");
    for line in [
        "# TYPE poststelle_documents gauge",
        "poststelle_documents{state=\"delivered\"} 1\n",
        "poststelle_documents{state=\"review\"} 0\n",
        "poststelle_documents{state=\"dead_letter\"} 0\n",
        "# TYPE poststelle_review_queue_oldest_seconds gauge",
        "poststelle_review_queue_oldest_seconds 0\n",
        "# TYPE poststelle_delivery_failures_total counter",
        "poststelle_delivery_failures_total{target=\"dms\"} 0\n",
        "# TYPE poststelle_model_info gauge",
        "# TYPE poststelle_stage_seconds histogram",
        "poststelle_stage_seconds_count{stage=\"extract\"} 1\n",
        "poststelle_stage_seconds_count{stage=\"classify\"} 1\n",
        "poststelle_stage_seconds_count{stage=\"deliver\"} 1\n",
        "poststelle_stage_seconds_bucket{stage=\"deliver\",le=\"+Inf\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let health: serde_json::Value = browser()
        .get(d.url("/health"))
        .bearer_auth(&d.token)
        .send()
        .expect("health")
        .json()
        .expect("json");
    if let Some(version) = health["model"].as_str() {
        assert!(
            text.contains(&format!(
                "poststelle_model_info{{version=\"{version}\"}} 1\n"
            )),
            "{text}"
        );
    }
    let help = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    let kinds = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!((help, kinds), (12, 12), "{text}");

    // A department, with its session or its own token, and the Poststelle: 403.
    assert_eq!(page(&d, &bau, "/metrics").status(), 403);
    assert_eq!(page(&d, &post, "/metrics").status(), 403);
    let token = user_token(&d, "b.bau");
    let r = browser()
        .get(d.url("/metrics"))
        .bearer_auth(&token)
        .send()
        .expect("metrics");
    assert_eq!(r.status(), 403);
    // A scraper on this machine without credentials may read; not through a proxy.
    let r = browser().get(d.url("/metrics")).send().expect("metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .expect("text")
            .contains("poststelle_documents{state=\"delivered\"} 1\n")
    );
    let r = browser()
        .get(d.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .expect("metrics");
    assert_eq!(r.status(), 403);
}

#[test]
fn the_overview_with_every_chart_filled_passes_axe_in_a_real_browser() {
    let d = spawn_app(&[]);
    add_user(&d, "a.admin", "admin", &[]);
    d.drop_file("brief.pdf", &bauantrag_pdf());
    let delivered = |d: &TestApp| {
        d.documents()
            .iter()
            .find(|x| x["state"] == "delivered")
            .map(|x| x["id"].as_str().expect("id").to_string())
    };
    let id = wait_for("delivery", LONG, || delivered(&d));
    // A person moves it to the Stadtplanung: a correction, delivered again.
    let r = browser()
        .post(d.url(&format!("/api/documents/{id}/assign")))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"mailbox": "61"}))
        .send()
        .expect("assign");
    assert_eq!(r.status(), 200, "{:?}", r.text());
    wait_for("re-delivery to 61", LONG, || {
        d.documents()
            .iter()
            .any(|x| x["state"] == "delivered" && x["mailbox"] == "61")
            .then_some(())
    });

    let b = Browser::start();
    b.goto(&d.url("/login?next=/uebersicht"));
    b.find("#username").send_keys("a.admin");
    b.find("#password")
        .send_keys(&format!("{PASSWORD}{}", keys::ENTER));
    wait_for("the Übersicht", Duration::from_secs(60), || {
        b.current_url().contains("/uebersicht").then_some(())
    });
    assert_eq!(b.title(), "Übersicht – Poststelle");
    let charts = b.find_all("svg.chart[role=img]");
    assert_eq!(
        charts.len(),
        4,
        "intake, straight through, mailboxes, one mailbox's corrections"
    );
    let text = b.find("main").text();
    assert!(text.contains("61 Stadtplanung"), "{text}");
    assert!(text.contains("0 %"), "decided by a person: {text}");
    b.assert_no_axe_violations("uebersicht");
    // The tables too, opened.
    b.execute(
        "document.querySelectorAll('details').forEach(x => x.open = true);",
        vec![],
    );
    let tables = b.find_all("details table");
    assert_eq!(tables.len(), 4);
    b.assert_no_axe_violations("uebersicht-tabellen");
}
