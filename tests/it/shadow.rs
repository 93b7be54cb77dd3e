//! The shadow model end to end: two model versions trained on different data, one active and
//! one in shadow in the running daemon; letters in the hot folder; a person corrects one
//! through the API; `model compare` (the command and the admin endpoint) scores both versions'
//! decisions against the outcomes, and routing followed the active version alone.

use crate::auth::{add_user, sign_in, user_token};
use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

/// The active version: the shared model trained on the shipped corpus.
const ACTIVE: &str = "v20250101-000000";
/// The shadow version: trained on the corpus with Bürgeramt (33) and Standesamt (34) swapped.
const SHADOW: &str = "v20250202-000000";

/// The shipped corpus with the labels 33 and 34 swapped, as JSON Lines.
fn swapped_corpus(to: &Path) {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(repo().join("training-data/corpus")).expect("corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            if line.trim().is_empty() {
                continue;
            }
            let mut item: serde_json::Value = serde_json::from_str(line).expect("item");
            let swapped = match item["mailbox"].as_str() {
                Some("33") => "34",
                Some("34") => "33",
                Some(other) => other,
                None => panic!("item without mailbox: {line}"),
            }
            .to_string();
            item["mailbox"] = swapped.into();
            lines.push(item.to_string());
        }
    }
    std::fs::write(to, lines.join("\n") + "\n").expect("write corpus");
}

/// A models dir with the two versions, `ACTIVE` active and nothing in shadow yet.
fn models(install: &Install) -> PathBuf {
    let dir = install.path("models");
    std::fs::create_dir_all(&dir).expect("dir");
    let shared = models_dir();
    let active = std::fs::read_to_string(shared.join("ACTIVE")).expect("ACTIVE");
    std::fs::copy(
        shared.join(format!("{}.model", active.trim())),
        dir.join(format!("{ACTIVE}.model")),
    )
    .expect("copy");
    std::fs::write(dir.join("ACTIVE"), format!("{ACTIVE}\n")).expect("active");
    std::fs::write(dir.join("HISTORY"), format!("{ACTIVE}\n")).expect("history");
    // The shadow version is trained for real, in a registry of its own.
    let corpus = install.path("swapped.jsonl");
    swapped_corpus(&corpus);
    let train_dir = install.path("train-models");
    let out = install
        .command()
        .env("POSTSTELLE__CLASSIFY__MODELS", &train_dir)
        .env(
            "POSTSTELLE__STORE__URL",
            format!("sqlite://{}", install.path("train.db").display()),
        )
        .args(["train", "--folds", "2", "--budget", "0", "--data"])
        .arg(&corpus)
        .output()
        .expect("train");
    assert!(
        out.status.success(),
        "train: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trained = std::fs::read_to_string(train_dir.join("ACTIVE")).expect("trained version");
    std::fs::copy(
        train_dir.join(format!("{}.model", trained.trim())),
        dir.join(format!("{SHADOW}.model")),
    )
    .expect("copy");
    dir
}

/// Runs `poststelle` on the models dir; (success, stdout + stderr).
fn cli(install: &Install, models: &Path, args: &[&str]) -> (bool, String) {
    let out = install
        .command()
        .env("POSTSTELLE__CLASSIFY__MODELS", models)
        .args(args)
        .output()
        .expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn letter(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Erika Mustermann\nLindenweg 4\n54321 Musterstadt\n\nStadt Musterstadt\nMarktplatz 1\n54321 Musterstadt\n\n\
         Musterstadt, 12.03.2026\n\nBetreff: {subject}\n\nSehr geehrte Damen und Herren,\n\n{body}\n\n\
         Mit freundlichen Grüßen\nErika Mustermann\n"
    )
    .into_bytes()
}

/// The document that arrived as `name`.
fn doc<'a>(docs: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["original_name"] == name)
        .unwrap_or_else(|| panic!("no document {name}: {docs:?}"))
}

#[test]
fn a_shadow_model_is_logged_beside_the_active_one_and_compared_against_corrections() {
    let install = Install::new();
    let models = models(&install);

    // Shadow on: `model list` marks it; the active version cannot shadow itself.
    let (ok, out) = cli(&install, &models, &["model", "shadow", ACTIVE]);
    assert!(!ok && out.contains("is the active version"), "{out}");
    let (ok, out) = cli(&install, &models, &["model", "shadow", SHADOW]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&install, &models, &["model", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("* {ACTIVE}")) && out.contains(&format!("s {SHADOW}")),
        "{out}"
    );
    let (ok, out) = cli(&install, &models, &["model", "compare"]);
    assert!(
        ok && out.contains(&format!("no decisions of {SHADOW} logged yet")),
        "{out}"
    );

    let models_s = models.display().to_string();
    let d = install.spawn_app(&[("POSTSTELLE__CLASSIFY__MODELS", &models_s)]);
    // Two letters for the Standesamt (the shadow learnt them as Bürgeramt's), one for the
    // Abfallwirtschaft (both versions agree), and a page without readable text, which waits
    // for a person whatever the model.
    d.drop_file(
        "geburtsurkunde.txt",
        &letter(
            "Geburtsurkunden für meine Tochter",
            "ich bitte um die Ausstellung von drei Geburtsurkunden für meine Tochter Lena \
             Mustermann, geboren am 4. Februar 2026 im Klinikum Musterstadt. Die Urkunden \
             benötige ich für das Elterngeld und die Krankenkasse.",
        ),
    );
    d.drop_file(
        "sterbeurkunde.txt",
        &letter(
            "Sterbeurkunde meines Vaters",
            "mein Vater Hans Mustermann ist am 2. März 2026 in Musterstadt verstorben. Ich bitte \
             um die Ausstellung von fünf Sterbeurkunden für die Erbschaftsangelegenheiten, die \
             Rentenversicherung und die Banken.",
        ),
    );
    d.drop_file(
        "sperrmuell.txt",
        &letter(
            "Anmeldung zur Sperrmüllabholung",
            "ich möchte Sperrmüll zur Abholung anmelden: ein altes Sofa, zwei Schränke und einen \
             Lattenrost. Bitte teilen Sie mir den Abholtermin für die Sperrmüllabfuhr mit.",
        ),
    );
    d.drop_file("unleserlich.txt", b"-- -- --\n* * *\n");

    // Routing follows the active version alone: the Standesamt's letters are filed in 34.
    let docs = wait_for("routing", LONG, || {
        let docs = d.documents();
        let settled = docs.len() == 4
            && docs
                .iter()
                .all(|x| x["state"] == "delivered" || x["state"] == "review");
        settled.then_some(docs)
    });
    for (name, state, mailbox) in [
        ("geburtsurkunde.txt", "delivered", Some("34")),
        ("sterbeurkunde.txt", "delivered", Some("34")),
        ("sperrmuell.txt", "delivered", Some("70")),
        ("unleserlich.txt", "review", None),
    ] {
        let x = doc(&docs, name);
        assert_eq!(x["state"], state, "{name}: {x}");
        if let Some(m) = mailbox {
            assert_eq!(x["mailbox"], m, "{name}: {x}");
        }
        assert_eq!(
            x["decision"]["explanation"]["model_version"], ACTIVE,
            "{name} was routed by the active version"
        );
    }
    let delivered: Vec<String> = d.delivered().into_iter().map(|(mb, _)| mb).collect();
    assert_eq!(delivered, ["34", "34", "70"], "{delivered:?}");
    let id = |name: &str| doc(&docs, name)["id"].as_str().expect("id").to_string();
    let (geburt, sterbe, sperr) = (
        id("geburtsurkunde.txt"),
        id("sterbeurkunde.txt"),
        id("sperrmuell.txt"),
    );

    // A person corrects the death certificate's letter to 33 (as the shadow proposed).
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(d.url(&format!("/api/documents/{sterbe}/assign")))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"mailbox": "33", "origin": "correction"}))
        .send()
        .expect("assign");
    assert!(r.status().is_success(), "{:?}", r.text());
    wait_for("the corrected letter delivered again", LONG, || {
        let docs = d.documents();
        let x = doc(&docs, "sterbeurkunde.txt");
        (x["state"] == "delivered" && x["mailbox"] == "33").then_some(())
    });

    // The command: both versions scored against the outcomes.
    let (ok, out) = cli(&d, &models, &["model", "compare", "--json"]);
    assert!(ok, "{out}");
    let c: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(c["shadow_version"], SHADOW, "{c}");
    assert_eq!(c["active_versions"], serde_json::json!([ACTIVE]), "{c}");
    assert_eq!(c["logged"], 4, "every routed document was logged: {c}");
    assert_eq!(c["known"], 3, "the letter in review does not count: {c}");
    assert_eq!(c["active"]["right"], 2, "{c}");
    assert_eq!(c["shadow"]["right"], 2, "{c}");
    assert_eq!(c["shadow_right_active_wrong"], 1, "{c}");
    assert_eq!(c["active_right_shadow_wrong"], 1, "{c}");
    // The active version sent the three straight through, one into the wrong mailbox.
    assert_eq!(c["active"]["straight_through"], 3, "{c}");
    assert_eq!(c["active"]["straight_through_right"], 2, "{c}");
    let shadow_st = c["shadow"]["straight_through"].as_u64().expect("n");
    let shadow_st_right = c["shadow"]["straight_through_right"].as_u64().expect("n");
    assert!(shadow_st_right <= shadow_st && shadow_st <= 3, "{c}");
    let example = |id: &str| {
        c["examples"]
            .as_array()
            .expect("examples")
            .iter()
            .find(|e| e["document_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is no example: {c}"))
    };
    let e = example(&geburt);
    assert_eq!(
        (
            &e["outcome"],
            &e["active"]["mailbox"],
            &e["shadow"]["mailbox"]
        ),
        (
            &serde_json::json!("34"),
            &serde_json::json!("34"),
            &serde_json::json!("33")
        ),
        "{e}"
    );
    let e = example(&sterbe);
    assert_eq!(
        (
            &e["outcome"],
            &e["active"]["mailbox"],
            &e["shadow"]["mailbox"]
        ),
        (
            &serde_json::json!("33"),
            &serde_json::json!("34"),
            &serde_json::json!("33")
        ),
        "{e}"
    );
    assert!(
        !c["examples"]
            .as_array()
            .expect("examples")
            .iter()
            .any(|e| e["document_id"] == sperr.as_str()),
        "both agree on the Sperrmüll: {c}"
    );
    let (ok, text) = cli(&d, &models, &["model", "compare"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("shadow right, active wrong: 1   active right, shadow wrong: 1")
            && text.contains(&sterbe),
        "{text}"
    );
    let verdict = if c["not_worse"] == true {
        "NOT WORSE"
    } else {
        "WORSE"
    };
    assert!(text.contains(verdict), "{text}");

    // The endpoint: the same comparison, for admins only.
    let api: serde_json::Value = http
        .get(d.url("/api/models/compare"))
        .bearer_auth(&d.token)
        .send()
        .expect("compare")
        .json()
        .expect("json");
    assert_eq!(api["active"], ACTIVE);
    assert_eq!(api["shadow"], SHADOW);
    assert_eq!(api["comparison"], c, "endpoint and command agree");
    add_user(&d, "post", "poststelle", &[]);
    let token = user_token(&d, "post");
    let r = http
        .get(d.url("/api/models/compare"))
        .bearer_auth(&token)
        .send()
        .expect("compare");
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    // The Verwaltung page names the version in shadow.
    add_user(&d, "it-leitung", "admin", &[]);
    let session = sign_in(&d, "it-leitung");
    let html = reqwest::blocking::Client::new()
        .get(d.url("/verwaltung"))
        .header("Cookie", &session.cookie)
        .send()
        .expect("page")
        .text()
        .expect("html");
    assert!(
        html.contains(&format!("{SHADOW} <strong>(im Schattenbetrieb)</strong>")),
        "{html}"
    );

    // Activating the shadowed version ends its shadow; the log stays comparable.
    let (ok, out) = cli(&d, &models, &["model", "activate", SHADOW]);
    assert!(ok, "{out}");
    assert!(!models.join("SHADOW").exists());
    let (ok, out) = cli(&d, &models, &["model", "compare", "--json"]);
    assert!(ok, "{out}");
    let again: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(again["shadow_version"], SHADOW, "the last one logged");
    let (ok, out) = cli(&d, &models, &["model", "shadow", "--off"]);
    assert!(
        ok && out.contains("no version was running in shadow"),
        "{out}"
    );
}

/// The daemon's log so far.
fn daemon_log(install: &Install) -> String {
    let mut log = String::new();
    for e in std::fs::read_dir(install.dir.path())
        .expect("dir")
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("serve-") {
            log += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    log
}

#[test]
fn a_shadow_model_that_cannot_be_read_leaves_routing_alone() {
    let install = Install::new();
    let (models, _, broken) = crate::models::two_versions(&install);
    // The shadow version's file turned unreadable after it was chosen (another format).
    let path = models.join(format!("{broken}.model"));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&999u32.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    std::fs::write(models.join("SHADOW"), format!("{broken}\n")).expect("shadow");
    let (ok, out) = cli(&install, &models, &["model", "shadow", &broken]);
    assert!(!ok && out.contains("format version 999"), "{out}");

    let models_s = models.display().to_string();
    let d = install.spawn_app(&[("POSTSTELLE__CLASSIFY__MODELS", &models_s)]);
    d.drop_file(
        "sperrmuell.txt",
        &letter(
            "Anmeldung zur Sperrmüllabholung",
            "ich möchte Sperrmüll zur Abholung anmelden: ein altes Sofa, zwei Schränke und einen \
             Lattenrost. Bitte teilen Sie mir den Abholtermin für die Sperrmüllabfuhr mit.",
        ),
    );
    wait_for("delivered", LONG, || {
        (d.delivered().len() == 1).then_some(())
    });
    assert_eq!(d.delivered()[0].0, "70");
    let log = daemon_log(&d);
    assert!(log.contains("cannot load the shadow model"), "{log}");
    let (ok, out) = cli(&d, &models, &["model", "compare", "--json"]);
    assert!(ok, "{out}");
    let c: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        c["logged"], 0,
        "nothing logged for a shadow that never ran: {c}"
    );
}
