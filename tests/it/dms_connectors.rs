//! Each HTTP connector against its conformance server ([`crate::harness::dms_servers`]): the
//! exact request shapes, metadata mapped to properties, what each does beyond the generic
//! checks (logins, tasks, folders, tags, templates), and the config blocks. Redelivery, the
//! classification of failures (5xx, 429 with Retry-After, timeouts, connection refused,
//! rejected requests, wrong credentials) and re-assignment are checked for every target alike
//! by the compliance suite ([`crate::compliance`]).

use crate::harness::dms_servers::*;
use poststelle::config::Settings;
use poststelle::deliver::{self, DeliveryError};
use poststelle::domain::MailboxId;
use std::path::Path;

fn retriable(e: &DeliveryError) -> bool {
    e.is_retriable()
}

// ------------------------------------------------------------------------------------------
// d.velop

fn dvelop_block(url: &str) -> String {
    format!(
        r#"kind = "dvelop"
base_url = "{url}"
repository = "R1"
category = "DPOST"
timeout_secs = 2
properties = {{ document_id = "10", subject = "2", sender_name = "3", file_references = "4", invoice_number = "5", mailbox = "6" }}
task_assignees = {{ "63" = ["group-bauordnung"] }}
"#
    )
}

#[tokio::test]
async fn dvelop_files_with_properties_and_task_and_finds_its_own_document_again() {
    let srv = dvelop("KEY-1", "R1");
    let t = target(
        &dvelop_block(&srv.url()),
        &[("POSTSTELLE__DELIVER__TARGETS__T__API_KEY", "KEY-1")],
    );
    let it = item("63", b"%PDF-1.4 bauantrag");
    let r = t.deliver(&it).await.expect("delivered");
    assert!(!r.already_present);
    assert!(
        r.reference.ends_with("/dms/r/R1/o2m/P000001"),
        "{}",
        r.reference
    );
    {
        let docs = srv.state.docs.lock().expect("lock");
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.bytes, it.bytes);
        assert_eq!(d.category, "DPOST");
        assert_eq!(d.source_id, "/dms/r/R1/source");
        assert_eq!(d.filename, format!("{}.pdf", it.document_id.as_str()));
        assert_eq!(
            d.properties["10"],
            vec![it.document_id.as_str().to_string()]
        );
        assert_eq!(
            d.properties["2"],
            vec!["Bauantrag Wintergarten, Flurstück 88"]
        );
        assert_eq!(d.properties["3"], vec!["Erika Mustermann"]);
        assert_eq!(d.properties["4"], vec!["63-0815/26", "63-0816/26"]);
        assert_eq!(d.properties["5"], vec!["RE-2026-17"]);
        assert_eq!(d.properties["6"], vec!["63"]);
        let tasks = srv.state.tasks.lock().expect("lock");
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            tasks[0]["assignees"],
            serde_json::json!(["group-bauordnung"])
        );
        assert_eq!(tasks[0]["correlationKey"], it.document_id.as_str());
        assert_eq!(tasks[0]["dmsReferences"][0]["objectId"], "P000001");
    }
    // A retried delivery (e.g. after a crash before our commit) finds the document.
    let r2 = t.deliver(&it).await.expect("again");
    assert!(r2.already_present);
    assert_eq!(srv.state.docs.lock().expect("lock").len(), 1);
    assert_eq!(srv.state.tasks.lock().expect("lock").len(), 1);
    // One login for both deliveries; search before each create.
    let log = srv.state.log.lock().expect("lock").clone();
    assert_eq!(
        log.iter().filter(|l| l.contains("login")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(log[1], "GET /dms/r/R1/srm");
    // Mailbox 22 has no assignees: no task.
    t.deliver(&item("22", b"%PDF-1.4 steuer"))
        .await
        .expect("22");
    assert_eq!(srv.state.tasks.lock().expect("lock").len(), 1);
}

/// A failure in a later step of a d.velop delivery (after the chunk upload, after the document
/// was filed) is temporary, and the retry completes the delivery without a second document or
/// task.
#[tokio::test]
async fn dvelop_failures_are_classified() {
    let srv = dvelop("KEY-1", "R1");
    let t = target(
        &dvelop_block(&srv.url()),
        &[("POSTSTELLE__DELIVER__TARGETS__T__API_KEY", "KEY-1")],
    );
    // The o2m step fails after the chunk upload: retriable; the retry files exactly one.
    srv.state.faults.lock().expect("lock").fail_path = Some("/o2m".into());
    let it = item("63", b"%PDF-1.4 a");
    let e = t.deliver(&it).await.expect_err("500");
    assert!(retriable(&e), "{e:?}");
    srv.state.faults.lock().expect("lock").fail_path = None;
    // The task step fails after the document was filed: the retry adds only the task.
    srv.state.faults.lock().expect("lock").fail_path = Some("/task/tasks".into());
    assert!(retriable(&t.deliver(&it).await.expect_err("task 500")));
    srv.state.faults.lock().expect("lock").fail_path = None;
    assert!(t.deliver(&it).await.expect("ok").already_present);
    assert_eq!(srv.state.docs.lock().expect("lock").len(), 1);
    assert_eq!(srv.state.tasks.lock().expect("lock").len(), 1);
}

// ------------------------------------------------------------------------------------------
// CMIS

fn cmis_block(url: &str) -> String {
    format!(
        r#"kind = "cmis"
root_url = "{url}/cmis/browser/repo1/root"
username = "poststelle"
timeout_secs = 2
folder = "/Posteingang/{{mailbox}} {{mailbox_name}}"
folders = {{ "22" = "/Steuern/Eingang" }}
object_type = "cmis:document"
properties = {{ subject = "cmis:description", file_references = "mst:aktenzeichen", document_id = "mst:poststelleId" }}
"#
    )
}

#[tokio::test]
async fn cmis_creates_folders_and_document_and_does_not_duplicate() {
    let srv = cmis("poststelle", "pw");
    let t = target(
        &cmis_block(&srv.url()),
        &[("POSTSTELLE__DELIVER__TARGETS__T__PASSWORD", "pw")],
    );
    let it = item("63", b"%PDF-1.4 cmis");
    let r = t.deliver(&it).await.expect("delivered");
    assert!(!r.already_present);
    let docs = srv.state.documents();
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(r.reference, d.id);
    assert_eq!(
        d.path,
        format!("/Posteingang/63 Bauordnung/{}.pdf", it.document_id.as_str())
    );
    assert_eq!(d.content, it.bytes);
    assert_eq!(d.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(
        d.content_name.as_deref(),
        Some(format!("{}.pdf", it.document_id.as_str()).as_str())
    );
    assert_eq!(d.properties["cmis:objectTypeId"], vec!["cmis:document"]);
    assert_eq!(
        d.properties["cmis:description"],
        vec!["Bauantrag Wintergarten, Flurstück 88"]
    );
    assert_eq!(
        d.properties["mst:aktenzeichen"],
        vec!["63-0815/26", "63-0816/26"]
    );
    assert_eq!(
        d.properties["mst:poststelleId"],
        vec![it.document_id.as_str().to_string()]
    );
    let r2 = t.deliver(&it).await.expect("again");
    assert!(r2.already_present);
    assert_eq!(r2.reference, d.id);
    assert_eq!(srv.state.documents().len(), 1);
    // Re-assigned to 22: moved into 22's folder, not copied.
    let mut moved = it.clone();
    moved.mailbox = MailboxId::parse("22").expect("mailbox");
    let r3 = t.deliver(&moved).await.expect("forward");
    assert!(r3.already_present);
    assert_eq!(r3.reference, d.id);
    let docs = srv.state.documents();
    assert_eq!(docs.len(), 1, "moved, not copied");
    assert_eq!(
        docs[0].path,
        format!("/Steuern/Eingang/{}.pdf", it.document_id.as_str())
    );
    // Per-mailbox folder.
    t.deliver(&item("22", b"%PDF-1.4 steuer"))
        .await
        .expect("22");
    assert!(
        srv.state
            .documents()
            .iter()
            .any(|d| d.path.starts_with("/Steuern/Eingang/"))
    );
}

// ------------------------------------------------------------------------------------------
// Paperless-ngx

fn paperless_block(url: &str) -> String {
    format!(
        r#"kind = "paperless"
base_url = "{url}"
timeout_secs = 2
poll_interval_ms = 20
poll_timeout_secs = 5
tags = [1]
mailbox_tags = {{ "63" = [6, 3] }}
mailbox_document_types = {{ "63" = 4 }}
document_id_field = 7
custom_fields = {{ file_references = 8 }}
"#
    )
}

#[tokio::test]
async fn paperless_uploads_waits_for_the_task_and_recognises_redelivery() {
    let srv = paperless("TOK");
    let t = target(
        &paperless_block(&srv.url()),
        &[("POSTSTELLE__DELIVER__TARGETS__T__TOKEN", "TOK")],
    );
    let it = item("63", b"%PDF-1.4 paperless");
    let r = t.deliver(&it).await.expect("delivered");
    assert!(!r.already_present);
    assert_eq!(r.reference, format!("{}/api/documents/1/", srv.url()));
    {
        let docs = srv.state.docs.lock().expect("lock");
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.title, "Bauantrag Wintergarten, Flurstück 88");
        assert_eq!(d.created.as_deref(), Some("2026-11-28"));
        assert_eq!(d.tags, vec![1, 6, 3]);
        assert_eq!(d.document_type, Some(4));
        assert_eq!(d.custom_fields[&7], it.document_id.as_str());
        assert_eq!(d.custom_fields[&8], "63-0815/26, 63-0816/26");
        assert_eq!(d.bytes, it.bytes);
    }
    // Found by the custom field before uploading again.
    let before = srv.state.log.lock().expect("lock").len();
    assert!(t.deliver(&it).await.expect("again").already_present);
    let log = srv.state.log.lock().expect("lock")[before..].to_vec();
    assert_eq!(
        log,
        ["GET /api/documents/", "GET /api/documents/1/"],
        "no upload, no change"
    );
    assert_eq!(srv.state.docs.lock().expect("lock").len(), 1);
    // Re-assigned to 22: mailbox 63's tags come off, a tag set by a person (9) stays.
    srv.state.docs.lock().expect("lock")[0].tags.push(9);
    let mut moved = it.clone();
    moved.mailbox = MailboxId::parse("22").expect("mailbox");
    assert!(t.deliver(&moved).await.expect("forward").already_present);
    let d = srv.state.docs.lock().expect("lock")[0].clone();
    assert_eq!(d.tags, vec![1, 9]);
    assert_eq!(d.document_type, Some(4), "22 has no type of its own: kept");
}

#[tokio::test]
async fn paperless_duplicate_failure_counts_as_present_and_bad_tags_are_permanent() {
    let srv = paperless("TOK");
    // Without the custom field the consumer's duplicate check is the safety net.
    let block = paperless_block(&srv.url()).replace("document_id_field = 7\n", "");
    let t = target(&block, &[("POSTSTELLE__DELIVER__TARGETS__T__TOKEN", "TOK")]);
    let it = item("63", b"%PDF-1.4 dup");
    t.deliver(&it).await.expect("first");
    let r = t.deliver(&it).await.expect("duplicate");
    assert!(r.already_present);
    assert_eq!(r.reference, format!("{}/api/documents/1/", srv.url()));
    assert_eq!(srv.state.docs.lock().expect("lock").len(), 1);
    let bad = target(
        &paperless_block(&srv.url()).replace("tags = [1]", "tags = [99]"),
        &[("POSTSTELLE__DELIVER__TARGETS__T__TOKEN", "TOK")],
    );
    let e = bad
        .deliver(&item("63", b"other"))
        .await
        .expect_err("bad tag");
    assert!(
        matches!(&e, DeliveryError::Permanent(m) if m.contains("Invalid pk")),
        "{e:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Generic REST

#[tokio::test]
async fn rest_target_fills_templates_headers_and_the_reference() {
    let srv = rest("R-TOKEN");
    let block = format!(
        r#"kind = "rest"
method = "PUT"
url = "{0}/api/mailboxes/{{mailbox}}/documents/{{document_id}}"
exists_url = "{0}/api/mailboxes/{{mailbox}}/documents/{{document_id}}"
body = "multipart"
file_field = "datei"
fields = {{ betreff = "{{subject}}", absender = "{{sender_name}}", az = "{{file_references}}" }}
headers = {{ "X-Poststelle-Mailbox" = "{{mailbox}}" }}
auth = "bearer"
timeout_secs = 2
"#,
        srv.url()
    );
    let t = target(
        &block,
        &[("POSTSTELLE__DELIVER__TARGETS__T__SECRET", "R-TOKEN")],
    );
    let it = item("63", b"%PDF-1.4 rest");
    let r = t.deliver(&it).await.expect("delivered");
    assert!(!r.already_present);
    assert_eq!(
        r.reference,
        format!(
            "{}/api/mailboxes/63/documents/{}",
            srv.url(),
            it.document_id.as_str()
        )
    );
    {
        let docs = srv.state.docs.lock().expect("lock");
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.fields["betreff"], "Bauantrag Wintergarten, Flurstück 88");
        assert_eq!(d.fields["absender"], "Erika Mustermann");
        assert_eq!(d.fields["az"], "63-0815/26, 63-0816/26");
        assert_eq!(d.file.0, "datei");
        assert_eq!(d.header.as_deref(), Some("63"));
        assert_eq!(d.bytes, it.bytes);
    }
}

/// An authenticated REST target whose server redirects to another host: the credentials
/// (bearer, basic, an API key in a header of its own) must not travel there, and the delivery
/// is a permanent failure that names the redirect, not a success.
#[tokio::test]
async fn authenticated_rest_requests_do_not_follow_redirects() {
    let elsewhere = recorder();
    // Another host name and port than the redirecting server's.
    let to = format!("http://localhost:{}", elsewhere.port);
    let srv = redirect(&to);
    let secret = "S3CRET-KEY-4711";
    for (auth, extra, leaks) in [
        ("bearer", "", "authorization"),
        ("basic", "username = \"poststelle\"\n", "authorization"),
        ("header", "auth_header = \"X-Api-Key\"\n", "x-api-key"),
    ] {
        for exists in [false, true] {
            let exists_url = if exists {
                format!("exists_url = \"{}/api/docs/{{document_id}}\"\n", srv.url())
            } else {
                String::new()
            };
            let block = format!(
                "kind = \"rest\"\nmethod = \"PUT\"\nurl = \"{}/api/docs/{{document_id}}\"\n\
                 {exists_url}auth = \"{auth}\"\n{extra}timeout_secs = 2\n",
                srv.url()
            );
            let t = target(
                &block,
                &[("POSTSTELLE__DELIVER__TARGETS__T__SECRET", secret)],
            );
            let it = item("63", b"%PDF-1.4 redirected");
            let e = t
                .deliver(&it)
                .await
                .expect_err(&format!("{auth}: a redirect is no delivery"));
            assert!(!retriable(&e), "{auth}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("302") && msg.contains("Weiterleitung") && msg.contains(&to),
                "{auth}: {msg}"
            );
            assert!(!msg.contains(secret), "{auth}: {msg}");
            // The health check with a health_url does not follow either.
            let block = format!("{block}health_url = \"{}/api/health\"\n", srv.url());
            let t = target(
                &block,
                &[("POSTSTELLE__DELIVER__TARGETS__T__SECRET", secret)],
            );
            t.check()
                .await
                .expect_err("a redirecting health check fails");
        }
        let got = elsewhere.state.requests.lock().expect("lock").clone();
        assert!(
            got.is_empty(),
            "{auth}: requests reached the other host: {:?}",
            got.iter()
                .map(|r| (r.line.clone(), r.headers.contains_key(leaks)))
                .collect::<Vec<_>>()
        );
    }
    // The redirecting server did see the requests (the test reached it).
    assert!(srv.state.log.lock().expect("lock").len() >= 9);
}

#[test]
fn secrets_in_the_file_are_refused_and_unknown_fields_named() {
    let text = format!(
        "{MINIMAL}\n[deliver]\ndefault_target = \"t\"\n\n[deliver.targets.t]\n{}api_key = \"abc\"\n",
        dvelop_block("http://127.0.0.1:9")
    );
    let err = Settings::parse(Path::new("t.toml"), &text, &[]).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("deliver.targets.t.api_key must not stand in the config file"),
        "{msg}"
    );
    assert!(!msg.contains("abc"));
    let text = format!(
        "{MINIMAL}\n[deliver]\ndefault_target = \"t\"\n\n[deliver.targets.t]\n{}",
        dvelop_block("http://127.0.0.1:9").replace("subject = \"2\"", "subjekt = \"2\"")
    );
    let env = vec![(
        "POSTSTELLE__DELIVER__TARGETS__T__API_KEY".to_string(),
        "k".to_string(),
    )];
    let err = Settings::parse(Path::new("t.toml"), &text, &env).expect_err("unknown field");
    assert!(
        err.to_string().contains("unknown field \"subjekt\""),
        "{err}"
    );
    assert!(
        err.to_string().contains("did you mean \"subject\""),
        "{err}"
    );
}

/// The commented example blocks of config/musterstadt.toml are valid: uncommenting one and
/// pointing `default_target` at it is all it takes to switch the DMS.
#[test]
fn every_example_target_block_in_the_shipped_config_is_valid() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/musterstadt.toml")).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").expect("secret");
    let secret = format!("\"{}\"", secret.display());
    for (name, file_key) in [
        ("dvelop", "API_KEY_FILE"),
        ("cmis", "PASSWORD_FILE"),
        ("paperless", "TOKEN_FILE"),
        ("rest", "SECRET_FILE"),
    ] {
        let header = format!("# [deliver.targets.{name}]");
        let mut out = String::new();
        let mut inside = false;
        for line in text.lines() {
            if line.trim() == header {
                inside = true;
            } else if inside && (line.trim() == "#" || !line.starts_with('#')) {
                inside = false;
            }
            let line = if inside {
                line.trim_start_matches("# ").to_string()
            } else if line.starts_with("default_target") {
                format!("default_target = \"{name}\"")
            } else {
                line.to_string()
            };
            out.push_str(&line);
            out.push('\n');
        }
        assert!(
            out.contains(&format!("\n[deliver.targets.{name}]\n")),
            "{name} block found"
        );
        let env = vec![(
            format!(
                "POSTSTELLE__DELIVER__TARGETS__{}__{file_key}",
                name.to_ascii_uppercase()
            ),
            secret.clone(),
        )];
        let s = Settings::parse(Path::new("musterstadt.toml"), &out, &env)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.deliver.default_target, name);
        assert!(s.mailboxes.iter().all(|m| m.target == name));
        let t = &s.deliver.targets[name];
        let kind = format!("{t:?}");
        assert!(kind.to_lowercase().starts_with(name), "{name}: {kind}");
        assert!(!kind.contains("s3cret"), "secret leaked: {kind}");
        assert_eq!(t.kind(), name);
        deliver::build(name, t).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ------------------------------------------------------------------------------------------
// Health checks (`Delivery::check`, `poststelle check-config --online`)

#[tokio::test]
async fn health_checks_tell_accepted_from_refused_credentials_and_a_server_that_is_down() {
    let mut dv = dvelop("KEY-1", "R1");
    let key = "POSTSTELLE__DELIVER__TARGETS__T__API_KEY";
    let good = target(&dvelop_block(&dv.url()), &[(key, "KEY-1")]);
    good.check().await.expect("d.velop healthy");
    let log = dv.state.log.lock().expect("lock").clone();
    assert_eq!(log, ["GET /identityprovider/login", "GET /dms/r/R1"]);
    let e = target(&dvelop_block(&dv.url()), &[(key, "WRONG")])
        .check()
        .await
        .expect_err("wrong key");
    assert!(e.message().contains("401"), "{e}");
    let e = target(
        &dvelop_block(&dv.url()).replace("repository = \"R1\"", "repository = \"R2\""),
        &[(key, "KEY-1")],
    )
    .check()
    .await
    .expect_err("unknown repository");
    assert!(e.message().contains("404"), "{e}");
    dv.down();
    let e = good.check().await.expect_err("down");
    assert!(e.message().contains("connection"), "{e}");

    let cm = cmis("poststelle", "pw");
    let key = "POSTSTELLE__DELIVER__TARGETS__T__PASSWORD";
    target(&cmis_block(&cm.url()), &[(key, "pw")])
        .check()
        .await
        .expect("CMIS healthy");
    let e = target(&cmis_block(&cm.url()), &[(key, "nope")])
        .check()
        .await
        .expect_err("wrong password");
    assert!(e.message().contains("permissionDenied"), "{e}");
    assert!(cm.state.documents().is_empty(), "a check files nothing");

    let pl = paperless("TOK");
    let key = "POSTSTELLE__DELIVER__TARGETS__T__TOKEN";
    target(&paperless_block(&pl.url()), &[(key, "TOK")])
        .check()
        .await
        .expect("Paperless healthy");
    let e = target(&paperless_block(&pl.url()), &[(key, "nope")])
        .check()
        .await
        .expect_err("wrong token");
    assert!(e.message().contains("Invalid token"), "{e}");
    assert!(pl.state.docs.lock().expect("lock").is_empty());

    let mut rs = rest("R-TOKEN");
    let url = rs.url();
    let block = |health: &str| {
        format!(
            "kind = \"rest\"\nmethod = \"PUT\"\nurl = \"{0}/api/mailboxes/{{mailbox}}/documents/{{document_id}}\"\nauth = \"bearer\"\ntimeout_secs = 2\n{health}",
            url
        )
    };
    let key = "POSTSTELLE__DELIVER__TARGETS__T__SECRET";
    let health = format!("health_url = \"{}/api/health\"\n", rs.url());
    target(&block(&health), &[(key, "R-TOKEN")])
        .check()
        .await
        .expect("REST healthy");
    let e = target(&block(&health), &[(key, "nope")])
        .check()
        .await
        .expect_err("wrong token");
    assert!(e.message().contains("401"), "{e}");
    // Without health_url the base answers (404 here): reachable, nothing more to tell.
    target(&block(""), &[(key, "nope")])
        .check()
        .await
        .expect("REST base reachable");
    {
        let mut f = rs.state.faults.lock().expect("lock");
        f.fail_next = 1;
        f.status = 503;
    }
    let e = target(&block(&health), &[(key, "R-TOKEN")])
        .check()
        .await
        .expect_err("503");
    assert!(e.message().contains("503"), "{e}");
    let base = target(&block(""), &[(key, "R-TOKEN")]);
    rs.down();
    let e = base.check().await.expect_err("down");
    assert!(e.message().contains("connection"), "{e}");
}

fn check_config_online(env: &[(String, String)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poststelle"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .args(["check-config", "--online"])
        .output()
        .expect("run check-config");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        format!("{stdout}\n--- stderr:\n{stderr}"),
    )
}

#[test]
fn check_config_online_prints_one_line_per_target_and_fails_on_a_bad_one() {
    let pl = paperless("TOK");
    let dir = tempfile::tempdir().expect("tempdir");
    let var = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut env = vec![
        var(
            "POSTSTELLE__DELIVER__TARGETS__DMS__ROOT",
            &dir.path().join("dms").display().to_string(),
        ),
        var(
            "POSTSTELLE__CLASSIFY__MODELS",
            &dir.path().join("models").display().to_string(),
        ),
        var("POSTSTELLE__API__TOKEN", "t"),
        var("POSTSTELLE__DELIVER__TARGETS__PL__KIND", "\"paperless\""),
        var(
            "POSTSTELLE__DELIVER__TARGETS__PL__BASE_URL",
            &format!("\"{}\"", pl.url()),
        ),
        var("POSTSTELLE__DELIVER__TARGETS__PL__TOKEN", "TOK"),
    ];
    let (ok, out) = check_config_online(&env);
    assert!(ok, "{out}");
    assert!(out.contains("\ntarget dms (filesystem): OK\n"), "{out}");
    assert!(out.contains("\ntarget pl (paperless): OK\n"), "{out}");
    assert!(out.contains("configuration OK"), "{out}");

    env.extend([
        var("POSTSTELLE__DELIVER__TARGETS__BAD__KIND", "\"paperless\""),
        var(
            "POSTSTELLE__DELIVER__TARGETS__BAD__BASE_URL",
            &format!("\"{}\"", pl.url()),
        ),
        var("POSTSTELLE__DELIVER__TARGETS__BAD__TOKEN", "WRONG"),
    ]);
    let (ok, out) = check_config_online(&env);
    assert!(!ok, "a refused token fails the check: {out}");
    assert!(out.contains("\ntarget pl (paperless): OK\n"), "{out}");
    let bad = out
        .lines()
        .find(|l| l.starts_with("target bad (paperless): FEHLER: "))
        .unwrap_or_else(|| panic!("no line for the bad target: {out}"));
    assert!(
        bad.contains("401") && bad.contains("Invalid token"),
        "{bad}"
    );
    assert!(!out.contains("WRONG"), "the token is not printed: {out}");
    assert!(out.contains("configuration has problems"), "{out}");
}

#[test]
fn unknown_kind_is_named_with_a_suggestion_and_a_broken_block_does_not_hide_behind_mailboxes() {
    let text = format!(
        "{MINIMAL}\n[deliver]\ndefault_target = \"t\"\n\n[deliver.targets.t]\nkind = \"paperles\"\n"
    );
    let err = Settings::parse(Path::new("t.toml"), &text, &[]).expect_err("unknown kind");
    assert_eq!(err.0.len(), 1, "{err}");
    let p = &err.0[0];
    assert_eq!(p.line, Some(21), "{p}");
    assert!(p.message.contains("kind \"paperles\" is not known"), "{p}");
    assert_eq!(p.hint.as_deref(), Some("did you mean \"paperless\"?"));

    let text = format!(
        "{MINIMAL}\n[deliver]\ndefault_target = \"t\"\n\n[deliver.targets.t]\n{}poll_intervall_ms = 5\n",
        paperless_block("http://127.0.0.1:9")
    );
    let env = vec![(
        "POSTSTELLE__DELIVER__TARGETS__T__TOKEN".to_string(),
        "x".to_string(),
    )];
    let err = Settings::parse(Path::new("t.toml"), &text, &env).expect_err("typo");
    assert_eq!(err.0.len(), 1, "only the typo, not every mailbox: {err}");
    assert!(
        err.0[0]
            .message
            .starts_with("deliver.targets.t: unknown field `poll_intervall_ms`"),
        "{err}"
    );
    assert_eq!(
        err.0[0].hint.as_deref(),
        Some("did you mean \"poll_interval_ms\"?")
    );
}
