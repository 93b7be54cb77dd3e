//! Model versions: list, activate, rollback, hot reload in the running daemon, and refusal of
//! model files in another format. The commands run as child processes (the CLI is what is
//! tested); the daemon that reloads runs in-process.

use crate::harness::*;
use std::time::Duration;

/// A models dir with two versions (copies of the shared trained model), `a` active.
pub fn two_versions(install: &Install) -> (std::path::PathBuf, String, String) {
    let shared = models_dir();
    let active = std::fs::read_to_string(shared.join("ACTIVE"))
        .expect("ACTIVE")
        .trim()
        .to_string();
    let dir = install.path("models");
    std::fs::create_dir_all(&dir).expect("dir");
    let (a, b) = (
        "v20250101-000000".to_string(),
        "v20250202-000000".to_string(),
    );
    for v in [&a, &b] {
        std::fs::copy(
            shared.join(format!("{active}.model")),
            dir.join(format!("{v}.model")),
        )
        .expect("copy");
    }
    std::fs::write(dir.join("ACTIVE"), format!("{a}\n")).expect("active");
    std::fs::write(dir.join("HISTORY"), format!("{a}\n")).expect("history");
    (dir, a, b)
}

fn run(install: &Install, models: &std::path::Path, args: &[&str]) -> (bool, String) {
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

#[test]
fn activate_and_rollback_versions() {
    let install = Install::new();
    let (models, a, b) = two_versions(&install);
    let (ok, out) = run(&install, &models, &["model", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("* {a}")) && out.contains(&format!("  {b}")),
        "{out}"
    );
    let (ok, out) = run(&install, &models, &["model", "activate", &b]);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(models.join("ACTIVE"))
            .expect("read")
            .trim(),
        b
    );
    let (ok, out) = run(&install, &models, &["model", "rollback"]);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(models.join("ACTIVE"))
            .expect("read")
            .trim(),
        a
    );
    let (ok, out) = run(
        &install,
        &models,
        &["model", "activate", "v-does-not-exist"],
    );
    assert!(!ok);
    assert!(out.contains("no model version"), "{out}");
}

#[test]
fn a_model_in_another_format_is_refused_with_the_fix() {
    let install = Install::new();
    let (models, a, _) = two_versions(&install);
    let path = models.join(format!("{a}.model"));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&999u32.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    let txt = install.path("b.txt");
    std::fs::write(&txt, "Betreff: Hundesteuer\n\nAnmeldung meines Hundes.").expect("write");
    let (ok, out) = run(&install, &models, &["route", txt.to_str().expect("path")]);
    assert!(
        !ok,
        "an unreadable active model must not be silently replaced"
    );
    assert!(
        out.contains("format version 999") && out.contains("poststelle train"),
        "{out}"
    );
    let (ok, out) = run(&install, &models, &["model", "list"]);
    assert!(ok);
    assert!(out.contains("UNUSABLE"), "{out}");
    // The file is still there: nothing was dropped.
    assert!(path.exists());
}

#[test]
fn the_daemon_picks_up_an_activated_model_without_restart() {
    let install = Install::new();
    let (models, a, b) = two_versions(&install);
    let models_s = models.display().to_string();
    let d = install.spawn_app(&[("POSTSTELLE__CLASSIFY__MODELS", &models_s)]);
    let model_of = || -> Option<String> {
        // The model is told only to a caller with a token.
        let v: serde_json::Value = reqwest::blocking::Client::new()
            .get(d.url("/health"))
            .bearer_auth(&d.token)
            .send()
            .ok()?
            .json()
            .ok()?;
        v["model"].as_str().map(str::to_string)
    };
    assert_eq!(model_of().as_deref(), Some(a.as_str()));
    let (ok, out) = run(&d, &models, &["model", "activate", &b]);
    assert!(ok, "{out}");
    wait_for("new model in use", Duration::from_secs(30), || {
        (model_of().as_deref() == Some(b.as_str())).then_some(())
    });
}

/// `train` chooses the review thresholds for the configured precision target: with a target
/// that 20 predictions can measure (95 %), mailboxes get thresholds of their own, stored with the
/// model, and `route` decides a letter of such a mailbox against that mailbox's threshold.
#[test]
fn training_chooses_thresholds_per_mailbox_for_the_precision_target() {
    let install = Install::new();
    let models = install.path("models-target");
    std::fs::create_dir_all(&models).expect("dir");
    let out = install
        .command()
        .env("POSTSTELLE__CLASSIFY__MODELS", &models)
        .env("POSTSTELLE__CLASSIFY__PRECISION_TARGET", "0.95")
        .args(["train", "--budget", "0"])
        .output()
        .expect("train");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(target 95.0 %)"), "{text}");
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("thresholds of their own: "))
        .unwrap_or_else(|| panic!("no per-mailbox thresholds: {text}"));
    let thresholds: std::collections::BTreeMap<String, f64> = own
        .split(", ")
        .filter_map(|p| {
            let (m, t) = p.split_once(' ')?;
            Some((m.to_string(), t.parse().ok()?))
        })
        .collect();
    assert!(thresholds.len() >= 8, "{own}");
    // A Hundesteuer letter goes to 22 (Steueramt), decided against 22's own threshold.
    let letter = install.path("hundesteuer.txt");
    std::fs::write(
        &letter,
        "Stadt Musterstadt\nSteueramt\nRathausplatz 1\n12345 Musterstadt\n\nAbmeldung der Hundesteuer\n\nSehr geehrte Damen und Herren,\nunser Hund Bello ist verstorben. Bitte melden Sie ihn zur Hundesteuer ab.\nDie Steuermarke liegt bei.\n",
    )
    .expect("letter");
    let out = install
        .command()
        .env("POSTSTELLE__CLASSIFY__MODELS", &models)
        .args(["route", "--json"])
        .arg(&letter)
        .output()
        .expect("route");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v["mailbox"], "22", "{v}");
    let t22 = thresholds
        .get("22")
        .copied()
        .expect("22 has its own threshold");
    let used = v["explanation"]["threshold"].as_f64().expect("threshold");
    assert!(
        (used - t22).abs() < 0.0005,
        "used {used}, 22's own {t22}: {v}"
    );
}
