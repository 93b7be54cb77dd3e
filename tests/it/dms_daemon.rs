//! The daemon end to end with HTTP delivery targets (conformance servers from
//! [`crate::harness::dms_servers`]): a DMS that is down for a while and comes back, 5xx
//! answers, hanging answers, dead letters after N attempts and their re-drive through the API,
//! and a SIGKILL between the DMS's confirmation and our commit (a child process; the other
//! tests run the daemon in-process). Afterwards every document is on the server exactly once.

use crate::harness::dms_servers::*;
use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

fn letter(name: &str) -> Vec<u8> {
    format!(
        "Von: {name} <{name}@example.org>\nAn: steueramt@musterstadt.de\nBetreff: Anmeldung Hundesteuer\n\n\
         Guten Tag, ich melde hiermit unseren Hund {name} zur Hundesteuer an. Er ist seit dem 1. März bei uns, \
         ein Mischling. Bitte senden Sie mir den Hundesteuerbescheid und die Steuermarke zu.\nMit freundlichen Grüßen\n{name}"
    )
    .into_bytes()
}

/// Env for a target named `ext` of the given kind, made the default target, with short
/// retry and breaker settings.
fn target_env(
    kind: &str,
    keys: &[(&str, &str)],
    max_attempts: u32,
    breaker: u32,
) -> Vec<(String, String)> {
    let mut v = vec![
        (
            "POSTSTELLE__DELIVER__DEFAULT_TARGET".to_string(),
            "ext".to_string(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__KIND".into(),
            format!("\"{kind}\""),
        ),
        (
            "POSTSTELLE__DELIVER__MAX_ATTEMPTS".into(),
            max_attempts.to_string(),
        ),
        ("POSTSTELLE__DELIVER__RETRY_BASE_SECS".into(), "1".into()),
        ("POSTSTELLE__DELIVER__RETRY_MAX_SECS".into(), "2".into()),
        (
            "POSTSTELLE__DELIVER__BREAKER_THRESHOLD".into(),
            breaker.to_string(),
        ),
        (
            "POSTSTELLE__DELIVER__BREAKER_COOLDOWN_SECS".into(),
            "2".into(),
        ),
    ];
    for (k, val) in keys {
        v.push((
            format!(
                "POSTSTELLE__DELIVER__TARGETS__EXT__{}",
                k.to_ascii_uppercase()
            ),
            val.to_string(),
        ));
    }
    v
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// The daemon in-process with these settings.
fn spawn(env: &[(String, String)]) -> TestApp {
    spawn_app(&pairs(env))
}

/// The daemon as a child process (to be killed), with `extra` (pause points).
fn serve(install: &Install, env: &[(String, String)], extra: &[(&str, &str)]) -> Daemon {
    let mut all = pairs(env);
    all.extend_from_slice(extra);
    install.serve(&all)
}

fn states(install: &Install) -> Vec<String> {
    install
        .documents()
        .iter()
        .map(|d| d["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn all_in(install: &Install, n: usize, state: &str) -> bool {
    let s = states(install);
    s.len() == n && s.iter().all(|x| x == state)
}

fn events(d: &TestApp, token: &str, id: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(token)
        .send()
        .expect("show")
        .json()
        .expect("json");
    v["events"].as_array().cloned().unwrap_or_default()
}

fn paperless_keys(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("base_url", format!("\"{url}\"")),
        ("token", "PL-TOKEN".into()),
        ("tags", "[1]".into()),
        ("document_id_field", "7".into()),
        ("poll_interval_ms", "50".into()),
        ("timeout_secs", "2".into()),
    ]
}

#[test]
fn paperless_down_for_a_while_then_back_files_every_document_exactly_once() {
    let mut srv = paperless("PL-TOKEN");
    srv.down();
    let keys = paperless_keys(&srv.url());
    let keys: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let env = target_env("paperless", &keys, 30, 2);
    let d = spawn(&env);
    let install = &*d;
    for n in ["Bello", "Rex", "Luna", "Hasso"] {
        install.drop_file(&format!("{n}.txt"), &letter(n));
    }
    // Connection refused: the documents stay queued; the breaker pauses the target.
    wait_for("deferred by the breaker", LONG, || {
        let docs = install.documents();
        (docs.len() == 4
            && docs.iter().all(|x| x["state"] == "queued")
            && docs.iter().any(|x| {
                events(&d, &install.token, x["id"].as_str().unwrap_or_default())
                    .iter()
                    .any(|e| e["kind"] == "delivery_deferred")
            }))
        .then_some(())
    });
    let attempts = |install: &Install| -> i64 {
        install
            .documents()
            .iter()
            .map(|x| x["attempts"].as_i64().unwrap_or(0))
            .sum()
    };
    let before = attempts(install);
    std::thread::sleep(Duration::from_secs(6));
    let spent = attempts(install) - before;
    // Without the breaker the 4 documents would spend an attempt every ~2 s each (about 12 in
    // these 6 s); with it only one probe per 2 s cool-down counts.
    assert!(
        spent <= 5,
        "attempts spent while the target was paused: {spent}"
    );
    // Back, first with 500s, then healthy.
    {
        let mut f = srv.state.faults.lock().expect("lock");
        f.fail_next = 3;
        f.status = 500;
    }
    srv.up();
    wait_for("all delivered", LONG, || {
        all_in(install, 4, "delivered").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let docs = srv.state.docs.lock().expect("lock").clone();
    assert_eq!(docs.len(), 4, "each document exactly once");
    let mut ids: Vec<String> = docs.iter().map(|x| x.custom_fields[&7].clone()).collect();
    ids.sort();
    let mut ours: Vec<String> = install
        .documents()
        .iter()
        .map(|x| x["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ours.sort();
    assert_eq!(ids, ours);
    for x in install.documents() {
        assert!(
            x["delivery_ref"]
                .as_str()
                .unwrap_or_default()
                .contains("/api/documents/"),
            "{x}"
        );
    }
}

#[test]
fn dvelop_dead_letter_after_n_attempts_then_redrive_files_once() {
    let srv = dvelop("DV-KEY", "R1");
    srv.state.faults.lock().expect("lock").fail_path = Some("/o2m".into());
    let url = format!("\"{}\"", srv.url());
    let env = target_env(
        "dvelop",
        &[
            ("base_url", url.as_str()),
            ("repository", "\"R1\""),
            ("category", "\"DPOST\""),
            ("api_key", "DV-KEY"),
            ("timeout_secs", "2"),
            ("properties", "{ document_id = \"10\", mailbox = \"6\" }"),
            ("task_assignees", "{ \"22\" = [\"steueramt\"] }"),
        ],
        2,
        100,
    );
    let d = spawn(&env);
    let install = &*d;
    install.drop_file("brief.txt", &letter("Bello"));
    wait_for("dead letter", LONG, || {
        all_in(install, 1, "dead_letter").then_some(())
    });
    let doc = install.documents()[0].clone();
    assert_eq!(doc["attempts"], 2);
    let reason = doc["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("nach 2 Versuchen aufgegeben"), "{reason}");
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(srv.state.docs.lock().expect("lock").len(), 0);
    // Visible in the API, re-driven after the DMS is fixed.
    srv.state.faults.lock().expect("lock").fail_path = None;
    let id = doc["id"].as_str().expect("id").to_string();
    let r = reqwest::blocking::Client::new()
        .post(d.url(&format!("/api/documents/{id}/redrive")))
        .bearer_auth(&install.token)
        .send()
        .expect("redrive");
    assert!(r.status().is_success(), "{:?}", r.text());
    wait_for("delivered", LONG, || {
        all_in(install, 1, "delivered").then_some(())
    });
    let docs = srv.state.docs.lock().expect("lock").clone();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].properties["10"], vec![id.clone()]);
    assert_eq!(docs[0].properties["6"], vec!["22".to_string()]);
    let tasks = srv.state.tasks.lock().expect("lock").clone();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["correlationKey"], id.as_str());
    let kinds: Vec<String> = events(&d, &install.token, &id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        kinds.contains(&"dead_letter".to_string()) && kinds.contains(&"redrive".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn cmis_timeouts_and_errors_then_each_document_once() {
    let srv = cmis("poststelle", "pw");
    {
        let mut f = srv.state.faults.lock().expect("lock");
        f.hang_next = 2;
        f.hang = Duration::from_secs(4);
        f.fail_next = 2;
        f.status = 503;
    }
    let root = format!("\"{}/cmis/browser/repo1/root\"", srv.url());
    let env = target_env(
        "cmis",
        &[
            ("root_url", root.as_str()),
            ("username", "\"poststelle\""),
            ("password", "pw"),
            ("timeout_secs", "1"),
            ("properties", "{ document_id = \"mst:poststelleId\" }"),
        ],
        30,
        100,
    );
    let install = spawn(&env);
    for n in ["Bello", "Rex"] {
        install.drop_file(&format!("{n}.txt"), &letter(n));
    }
    wait_for("delivered", LONG, || {
        all_in(&install, 2, "delivered").then_some(())
    });
    let docs = srv.state.documents();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(docs.iter().all(|x| x.path.starts_with("/Poststelle/22/")));
    assert!(
        install
            .documents()
            .iter()
            .any(|x| x["attempts"].as_i64().unwrap_or(0) >= 1),
        "faults were met"
    );
}

#[test]
fn sigkill_after_the_dms_confirmed_files_once_on_restart() {
    let srv = paperless("PL-TOKEN");
    let install = Install::new();
    let keys = paperless_keys(&srv.url());
    let keys: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let env = target_env("paperless", &keys, 10, 5);
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let d = serve(
        &install,
        &env,
        &[
            ("POSTSTELLE_PAUSE_AT", "after_deliver"),
            ("POSTSTELLE_PAUSE_MARKER", &marker_s),
        ],
    );
    install.drop_file("brief.txt", &letter("Luna"));
    wait_file(&marker, LONG);
    d.kill();
    assert_eq!(
        srv.state.docs.lock().expect("lock").len(),
        1,
        "Paperless has it"
    );
    assert_eq!(states(&install), ["queued"], "we had not committed");
    let _d = serve(&install, &env, &[]);
    wait_for("confirmed", LONG, || {
        all_in(&install, 1, "delivered").then_some(())
    });
    assert_eq!(
        srv.state.docs.lock().expect("lock").len(),
        1,
        "no second copy"
    );
}

#[test]
fn rest_target_500s_then_delivered_once() {
    let srv = rest("R-TOKEN");
    {
        let mut f = srv.state.faults.lock().expect("lock");
        f.fail_next = 3;
        f.status = 502;
    }
    let url = format!(
        "\"{}/api/mailboxes/{{mailbox}}/documents/{{document_id}}\"",
        srv.url()
    );
    let env = target_env(
        "rest",
        &[
            ("method", "\"PUT\""),
            ("url", url.as_str()),
            ("auth", "\"bearer\""),
            ("secret", "R-TOKEN"),
            ("fields", "{ betreff = \"{subject}\" }"),
            ("timeout_secs", "2"),
        ],
        30,
        100,
    );
    let install = spawn(&env);
    install.drop_file("brief.txt", &letter("Rex"));
    wait_for("delivered", LONG, || {
        all_in(&install, 1, "delivered").then_some(())
    });
    // Time for a late second PUT to show.
    std::thread::sleep(Duration::from_secs(3));
    let docs = srv.state.docs.lock().expect("lock").clone();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].mailbox, "22");
    let id = install.documents()[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(docs[0].id, id);
    // The server answers a second PUT with 409, which the connector takes for "already
    // there": only the count of PUTs that reached it shows a duplicate.
    let puts = srv.state.puts.lock().expect("lock").clone();
    assert_eq!(
        puts.into_iter().collect::<Vec<_>>(),
        vec![(id, 1)],
        "exactly one PUT past the 502s"
    );
}

/// A REST target that redirects (here to another host): the daemon does not follow with its
/// API key, and the document is not marked delivered but ends as a dead letter that says why.
#[test]
fn a_redirecting_rest_target_is_not_marked_delivered() {
    let elsewhere = recorder();
    let to = format!("http://localhost:{}", elsewhere.port);
    let srv = redirect(&to);
    let url = format!("\"{}/api/documents/{{document_id}}\"", srv.url());
    let env = target_env(
        "rest",
        &[
            ("method", "\"PUT\""),
            ("url", url.as_str()),
            ("auth", "\"header\""),
            ("auth_header", "\"X-Api-Key\""),
            ("secret", "KEY-0815"),
            ("timeout_secs", "2"),
        ],
        2,
        100,
    );
    let install = spawn(&env);
    install.drop_file("brief.txt", &letter("Hasso"));
    wait_for("dead letter", LONG, || {
        all_in(&install, 1, "dead_letter").then_some(())
    });
    let doc = install.documents()[0].clone();
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Weiterleitung"), "{reason}");
    assert!(!reason.contains("KEY-0815"), "{reason}");
    assert!(doc["delivery_ref"].is_null(), "{doc}");
    assert!(!srv.state.log.lock().expect("lock").is_empty());
    let got = elsewhere.state.requests.lock().expect("lock").clone();
    assert!(
        got.is_empty(),
        "the other host was asked: {:?}",
        got.iter()
            .map(|r| (r.line.clone(), r.headers.get("x-api-key").cloned()))
            .collect::<Vec<_>>()
    );
}
