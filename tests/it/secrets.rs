//! Secrets from the environment (issue 13): every secret key (`password`, `token`, `api_key`,
//! `secret`, and keys ending in them, such as `client_secret`) stays the exact string the
//! environment gave, even when it looks like a number, a date or a list; and no secret's value
//! appears in any message: not in the loaded settings' debug form, not in `check-config`'s
//! output, not in a refusal.

use crate::harness::*;
use poststelle::config::Settings;

/// Secret values that TOML would read as something else than a string.
const VALUES: [(&str, &str); 8] = [
    ("POSTSTELLE__API__TOKEN", "4711081542"),
    (
        "POSTSTELLE__DELIVER__TARGETS__DVELOP__API_KEY",
        "31415926535",
    ),
    ("POSTSTELLE__DELIVER__TARGETS__CMIS__PASSWORD", "1.50"),
    ("POSTSTELLE__DELIVER__TARGETS__PAPERLESS__TOKEN", "0x2A2A2A"),
    ("POSTSTELLE__DELIVER__TARGETS__REST__SECRET", "1979-05-27"),
    (
        "POSTSTELLE__DELIVER__TARGETS__MAYAN__TOKEN",
        "[271828, 182845]",
    ),
    ("POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__PASSWORD", "true"),
    ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "8675309e1"),
];

/// Switches the SMTP sender on, so that its password is read.
const SENDER: [(&str, &str); 2] = [
    ("POSTSTELLE__OUTGOING__ENABLED", "true"),
    ("POSTSTELLE__OUTGOING__SMTP__USER", "poststelle"),
];

/// The example config with one target of every kind that has a secret and an IMAP account.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text =
        std::fs::read_to_string(repo().join("config/musterstadt.toml")).expect("example config");
    text.push_str(
        r#"
[deliver.targets.dvelop]
kind = "dvelop"
base_url = "https://dms.example.org"
repository = "repo"
category = "DPOST"
properties = { document_id = "10" }

[deliver.targets.cmis]
kind = "cmis"
root_url = "https://dms.example.org/cmis/browser/root"
username = "poststelle"

[deliver.targets.paperless]
kind = "paperless"
base_url = "https://paperless.example.org"

[deliver.targets.rest]
kind = "rest"
method = "PUT"
url = "https://dms.example.org/api/{mailbox}/{document_id}"
body = "raw"
auth = "bearer"

[deliver.targets.mayan]
kind = "mayan"
url = "https://mayan.example.org"
document_type = "Eingangspost"

[[intake.imap.accounts]]
name = "poststelle"
host = "imap.example.org"
user = "poststelle@example.org"
"#,
    );
    let path = dir.join("secrets.toml");
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn a_numeric_secret_from_the_environment_stays_a_string_and_is_never_printed() {
    let install = Install::new();
    let path = config(install.dir.path());
    let mut env: Vec<(String, String)> = install
        .env()
        .into_iter()
        .filter(|(k, _)| k.starts_with("POSTSTELLE__") && k != "POSTSTELLE__API__TOKEN")
        .collect();
    env.extend(
        VALUES
            .iter()
            .chain(&SENDER)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let settings = Settings::load_with_env(&path, &env)
        .unwrap_or_else(|e| panic!("numeric-looking secrets must load as strings:\n{e}"));
    assert_eq!(settings.api.token.expose(), "4711081542");
    assert_eq!(settings.imap.accounts[0].password.expose(), "true");
    assert_eq!(settings.outgoing.smtp.password.expose(), "8675309e1");
    let targets = &settings.deliver.targets;
    let dvelop = targets["dvelop"]
        .get::<poststelle::deliver::dvelop::DvelopSettings>()
        .expect("dvelop");
    assert_eq!(dvelop.api_key.expose(), "31415926535");
    let cmis = targets["cmis"]
        .get::<poststelle::deliver::cmis::CmisSettings>()
        .expect("cmis");
    assert_eq!(cmis.password.expose(), "1.50");
    let paperless = targets["paperless"]
        .get::<poststelle::deliver::paperless::PaperlessSettings>()
        .expect("paperless");
    assert_eq!(paperless.token.expose(), "0x2A2A2A");
    let shown = format!("{settings:?}");
    // ("true" stands in the debug form anyway, for the switches that are on.)
    for (_, v) in VALUES.iter().filter(|(_, v)| *v != "true") {
        assert!(!shown.contains(v), "{v} shown in the settings' debug form");
    }
    // The command line: valid, and no value in anything it prints.
    let out = install
        .command()
        .env_remove("POSTSTELLE__API__TOKEN")
        .envs(
            VALUES
                .iter()
                .chain(&SENDER)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    for (_, v) in VALUES.iter().filter(|(_, v)| *v != "true") {
        assert!(!printed.contains(v), "{v} printed: {printed}");
    }
}

/// A secret the configuration cannot use (a key the target does not have, a secret where a
/// table belongs) is refused by its key, never with its value.
#[test]
fn a_secret_that_cannot_be_used_is_refused_without_its_value() {
    let install = Install::new();
    let path = config(install.dir.path());
    for (key, value) in [
        (
            "POSTSTELLE__DELIVER__TARGETS__DMS__CLIENT_SECRET",
            "5550123456",
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__PAPERLESS__TOKEN__X",
            "6660123456",
        ),
    ] {
        let out = install
            .command()
            .env(key, value)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("check-config");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{key}: {printed}");
        assert!(!printed.contains(value), "{key}: value printed: {printed}");
    }
}
