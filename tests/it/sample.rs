//! The Stichprobe end to end, with the real daemon and a real SMTP server: with a share of 1
//! every letter routed straight through is also sampled; the Poststelle confirms some samples
//! (one on the web desk) and overturns the rest through the API, the overturned letters are
//! re-delivered to the right mailbox; the measured precision with its 95 % interval shows in the
//! API, `/metrics` and `eval --live`; the mailbox's threshold is raised, so the next similar
//! letter waits in review, and the admins get one German e-mail. A department's forward or
//! send-back on the desk judges a sampled letter too.

use crate::auth::{add_user, browser, sign_in};
use crate::harness::smtp::{SmtpSink, free_port};
use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// Letters to the Bauordnungsamt, each with its own Flurstück (so each has its own bytes).
fn bauantrag(n: u32) -> Vec<u8> {
    let subject = format!("Bauantrag für einen Wintergarten, Flurstück {n}");
    letter_pdf(&din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        &subject,
        &[
            "hiermit reiche ich den Bauantrag für einen Wintergarten auf",
            "meinem Grundstück ein. Lageplan und Bauzeichnungen liegen bei.",
        ],
    ))
}

fn api_get(d: &TestApp, path: &str) -> serde_json::Value {
    let r = reqwest::blocking::Client::new()
        .get(d.url(path))
        .bearer_auth(&d.token)
        .send()
        .expect("get");
    assert_eq!(r.status(), 200, "{path}");
    r.json().expect("json")
}

fn api_post(d: &TestApp, path: &str, body: serde_json::Value) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(d.url(path))
        .bearer_auth(&d.token)
        .json(&body)
        .send()
        .expect("post")
}

fn state_of(d: &TestApp, id: &str) -> serde_json::Value {
    api_get(d, &format!("/api/documents/{id}"))
}

#[test]
fn stichprobe_measures_live_precision_raises_the_threshold_and_tells_the_admins() {
    let install = Install::new();
    let sink = SmtpSink::start(free_port(), &install.path("mail"), &[]);
    let port = sink.port.to_string();
    let d = install.spawn_app(&[
        ("POSTSTELLE__SAMPLE__SHARE", "1.0"),
        ("POSTSTELLE__SAMPLE__MIN_JUDGED", "6"),
        (
            "POSTSTELLE__SAMPLE__NOTIFY_TO",
            "[\"it-leitung@musterstadt.de\"]",
        ),
        ("POSTSTELLE__OUTGOING__ENABLED", "true"),
        (
            "POSTSTELLE__OUTGOING__FROM_ADDRESS",
            "poststelle@musterstadt.de",
        ),
        ("POSTSTELLE__OUTGOING__DIGEST__ENABLED", "false"),
        ("POSTSTELLE__OUTGOING__SMTP__HOST", "127.0.0.1"),
        ("POSTSTELLE__OUTGOING__SMTP__PORT", &port),
        ("POSTSTELLE__OUTGOING__SMTP__TLS", "plain"),
    ]);
    add_user(&d, "p.post", "poststelle", &[]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);

    for n in 1..=6 {
        d.drop_file(&format!("bauantrag-{n}.pdf"), &bauantrag(100 + n));
    }
    let delivered = wait_for("six deliveries", LONG, || {
        let docs = d.documents();
        let done: Vec<String> = docs
            .iter()
            .filter(|x| x["state"] == "delivered")
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect();
        (done.len() == 6).then_some(done)
    });
    for id in &delivered {
        assert_eq!(state_of(&d, id)["mailbox"], "63", "{id}");
    }

    // Every letter that went straight through is in the sample, open.
    let open = api_get(&d, "/api/samples");
    let mut samples: Vec<serde_json::Value> = open["samples"].as_array().expect("samples").clone();
    assert_eq!(samples.len(), 6, "{open}");
    for s in &samples {
        assert_eq!(s["mailbox"], "63", "{s}");
        assert!(s["verdict"].is_null(), "{s}");
    }
    // A department may not judge samples.
    let bau = sign_in(&d, "b.bau");
    let refused = browser()
        .get(d.url("/api/samples"))
        .header("Cookie", &bau.cookie)
        .send()
        .expect("get");
    assert_eq!(refused.status(), 403);

    // The most confident ones were wrong: the lowest two are confirmed, the other four
    // overturned to 61 (Stadtplanung).
    samples.sort_by(|a, b| {
        let c = |v: &serde_json::Value| v["confidence"].as_f64().expect("confidence");
        c(a).total_cmp(&c(b))
    });
    let id_of = |s: &serde_json::Value| s["document_id"].as_str().expect("id").to_string();
    let top_confidence = samples
        .last()
        .and_then(|s| s["confidence"].as_f64())
        .expect("confidence");

    // The first confirmation on the web desk, as the Poststelle does it.
    let post_s = sign_in(&d, "p.post");
    let page = browser()
        .get(d.url("/stichprobe"))
        .header("Cookie", &post_s.cookie)
        .send()
        .expect("page")
        .text()
        .expect("html");
    assert!(page.contains("Offene Stichproben"), "{page}");
    assert!(page.contains(&id_of(&samples[0])), "{page}");
    assert!(page.contains("href=\"/stichprobe\""), "navigation: {page}");
    let r = browser()
        .post(d.url(&format!("/stichprobe/{}/bestaetigen", id_of(&samples[0]))))
        .header("Cookie", &post_s.cookie)
        .form(&[("csrf", post_s.csrf.as_str())])
        .send()
        .expect("confirm");
    assert_eq!(r.status(), 303);
    let again = api_post(
        &d,
        &format!("/api/samples/{}/confirm", id_of(&samples[0])),
        serde_json::json!({}),
    );
    assert_eq!(again.status(), 409, "judged once only");

    let r = api_post(
        &d,
        &format!("/api/samples/{}/confirm", id_of(&samples[1])),
        serde_json::json!({}),
    );
    assert_eq!(r.status(), 200);
    let same = api_post(
        &d,
        &format!("/api/samples/{}/overturn", id_of(&samples[2])),
        serde_json::json!({"mailbox": "63"}),
    );
    assert_eq!(
        same.status(),
        409,
        "overturning to the same mailbox is a confirmation"
    );
    let mut last = serde_json::Value::Null;
    for s in &samples[2..] {
        let r = api_post(
            &d,
            &format!("/api/samples/{}/overturn", id_of(s)),
            serde_json::json!({"mailbox": "61"}),
        );
        assert_eq!(r.status(), 200);
        last = r.json().expect("json");
    }
    // The sixth verdict gave the evidence: the threshold of 63 is raised above the most
    // confident overturned letter.
    let raised = &last["raised"];
    assert_eq!(raised["mailbox"], "63", "{last}");
    let threshold = raised["threshold"].as_f64().expect("threshold");
    assert!(
        threshold > top_confidence,
        "{threshold} <= {top_confidence}"
    );
    assert_eq!(raised["judged"], 6);
    assert_eq!(raised["confirmed"], 2);

    // Overturning is a correction: re-delivered to 61.
    for s in &samples[2..] {
        let id = id_of(s);
        let doc = wait_for("re-delivery to 61", LONG, || {
            let doc = state_of(&d, &id);
            (doc["state"] == "delivered" && doc["mailbox"] == "61").then_some(doc)
        });
        let events = doc["events"].as_array().expect("events");
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "assigned" && e["detail"]["origin"] == "sample"),
            "{doc}"
        );
    }
    assert!(
        api_get(&d, "/api/samples")["samples"]
            .as_array()
            .expect("samples")
            .is_empty()
    );

    // The measured precision with its interval in the API.
    let p = api_get(&d, "/api/samples/precision");
    assert_eq!(p["target"], 0.995);
    let m63 = p["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .find(|m| m["mailbox"] == "63")
        .cloned()
        .expect("63");
    assert_eq!(m63["judged"], 6, "{m63}");
    assert_eq!(m63["confirmed"], 2, "{m63}");
    assert_eq!(m63["overturned"], 4, "{m63}");
    let precision = m63["precision"].as_f64().expect("precision");
    assert!((precision - 2.0 / 6.0).abs() < 1e-9, "{m63}");
    let (lo, hi) = (
        m63["interval"]["lower"].as_f64().expect("lower"),
        m63["interval"]["upper"].as_f64().expect("upper"),
    );
    // Wilson 95 % for 2 of 6: 0.0968 .. 0.7000.
    assert!(
        (lo - 0.0968).abs() < 1e-3 && (hi - 0.7000).abs() < 1e-3,
        "{m63}"
    );
    assert_eq!(m63["below_target"], true);
    assert_eq!(m63["threshold"].as_f64(), Some(threshold), "{m63}");

    // ... in /metrics ...
    let metrics = reqwest::blocking::Client::new()
        .get(d.url("/metrics"))
        .bearer_auth(&d.token)
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    for line in [
        "poststelle_sample_judged_total{mailbox=\"63\",verdict=\"confirmed\"} 2".to_string(),
        "poststelle_sample_judged_total{mailbox=\"63\",verdict=\"overturned\"} 4".to_string(),
        format!("poststelle_live_precision{{mailbox=\"63\"}} {}", 2.0 / 6.0),
        format!("poststelle_review_threshold_raised{{mailbox=\"63\"}} {threshold}"),
        "poststelle_sample_open 0".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("poststelle_live_precision_lower{mailbox=\"63\"} 0.09"),
        "{metrics}"
    );

    // ... and in `eval --live`.
    let out = d
        .command()
        .args(["eval", "--live"])
        .output()
        .expect("eval --live");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("63 "))
        .unwrap_or_else(|| panic!("no row for 63:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["6", "2", "4"], "{text}");
    assert!(row.contains("33,33 %"), "{text}");
    assert!(row.contains("9,68 % – 70,00 %"), "{text}");
    assert!(row.contains("unter Ziel"), "{text}");

    // The raise holds at once, without a restart: the same letter again (other bytes, the
    // same text) waits in review, with the reason.
    let top_name = samples
        .last()
        .and_then(|s| s["original_name"].as_str())
        .expect("name")
        .to_string();
    let n: u32 = top_name
        .trim_start_matches("bauantrag-")
        .trim_end_matches(".pdf")
        .parse()
        .expect("number");
    let mut copy = bauantrag(100 + n);
    copy.extend_from_slice(b"\n% zweites Exemplar\n");
    d.drop_file("bauantrag-again.pdf", &copy);
    let again = wait_for("the copy decided", LONG, || {
        d.documents()
            .into_iter()
            .find(|x| x["original_name"] == "bauantrag-again.pdf")
            .filter(|x| {
                ["review", "queued", "delivered"].contains(&x["state"].as_str().unwrap_or(""))
            })
    });
    let id = again["id"].as_str().expect("id");
    let doc = state_of(&d, id);
    assert_eq!(doc["state"], "review", "{doc}");
    assert_eq!(doc["mailbox"], "63", "{doc}");
    let reason = doc["explanation"]["review_reason"]
        .as_str()
        .expect("reason")
        .to_string();
    assert!(reason.contains("Stichprobe"), "{reason}");
    assert!(
        (doc["document"]["confidence"].as_f64().expect("confidence") - top_confidence).abs() < 1e-9,
        "{doc}"
    );

    // One e-mail to the admins, in German.
    sink.wait_for(1, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    let mails: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_tos == ["it-leitung@musterstadt.de"])
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    let subject = m.header("Subject").expect("subject");
    assert!(
        subject.contains("Stichprobe: Präzision für Postfach 63"),
        "{subject}"
    );
    assert!(subject.contains("angehoben"), "{subject}");
    assert!(
        m.body.contains("2 von 6 geprüften Zuordnungen bestätigt"),
        "{}",
        m.body
    );
    assert!(m.body.contains("Ziel 99,50 %"), "{}", m.body);
    d.stop();
}

/// A department that forwards a sampled letter, or sends it back, has judged the machine: its
/// sample is overturned without waiting for the Poststelle, and it counts in the measured
/// precision (here enough to raise the threshold).
#[test]
fn a_departments_forward_or_send_back_on_the_desk_judges_the_sample() {
    let install = Install::new();
    let d = install.spawn_app(&[
        ("POSTSTELLE__SAMPLE__SHARE", "1.0"),
        ("POSTSTELLE__SAMPLE__MIN_JUDGED", "3"),
    ]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);
    for n in 1..=3 {
        d.drop_file(&format!("bauantrag-{n}.pdf"), &bauantrag(200 + n));
    }
    let mut delivered = wait_for("three deliveries", LONG, || {
        let done: Vec<String> = d
            .documents()
            .iter()
            .filter(|x| x["state"] == "delivered" && x["mailbox"] == "63")
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect();
        (done.len() == 3).then_some(done)
    });
    delivered.sort();
    let open = api_get(&d, "/api/samples");
    let open = open["samples"].as_array().expect("samples");
    assert_eq!(open.len(), 3);
    let top_confidence = open
        .iter()
        .filter_map(|s| s["confidence"].as_f64())
        .fold(0.0, f64::max);

    let bau = sign_in(&d, "b.bau");
    let post = |path: String, form: &[(&str, &str)]| {
        let r = browser()
            .post(d.url(&path))
            .header("Cookie", &bau.cookie)
            .form(form)
            .send()
            .expect("post");
        assert_eq!(r.status(), 303, "{path}: {:?}", r.text());
    };
    let csrf = bau.csrf.as_str();
    for id in &delivered[..2] {
        post(
            format!("/eingang/{id}/weiterleiten"),
            &[("csrf", csrf), ("mailbox", "61")],
        );
    }
    post(
        format!("/eingang/{}/zurueck", delivered[2]),
        &[
            ("csrf", csrf),
            ("reason", "Kein Bauantrag, eine Bauleitplanung"),
        ],
    );

    // No sample is open any more; each was judged by the department's action.
    assert!(
        api_get(&d, "/api/samples")["samples"]
            .as_array()
            .expect("samples")
            .is_empty()
    );
    for (id, by) in [
        (&delivered[0], "forward"),
        (&delivered[1], "forward"),
        (&delivered[2], "sent_back"),
    ] {
        let doc = state_of(&d, id);
        let judged = doc["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["kind"] == "sample_judged")
            .cloned()
            .unwrap_or_else(|| panic!("no verdict: {doc}"));
        assert_eq!(judged["actor"], "b.bau", "{judged}");
        assert_eq!(judged["detail"]["verdict"], "overturned", "{judged}");
        assert_eq!(judged["detail"]["by"], by, "{judged}");
    }

    // Three wrong of three: below the target with 95 % confidence, so 63 is raised.
    let p = api_get(&d, "/api/samples/precision");
    let m63 = p["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .find(|m| m["mailbox"] == "63")
        .cloned()
        .expect("63");
    assert_eq!(m63["judged"], 3, "{m63}");
    assert_eq!(m63["confirmed"], 0, "{m63}");
    assert_eq!(m63["below_target"], true, "{m63}");
    let threshold = m63["threshold"].as_f64().expect("threshold");
    assert!(
        threshold > top_confidence,
        "raised above {top_confidence}: {m63}"
    );
}
