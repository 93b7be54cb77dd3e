//! Routing to the clerk inside a department (`[[clerks."63"]]`): the real daemon decides a
//! mailbox, its assignment table the clerk (by the sender's surname, by an Aktenzeichen
//! prefix), and the DMS target files it there (a d.velop task for the clerk's assignee, the
//! sidecar's `clerk`); a person's assignment to another mailbox asks that mailbox's table.
//! Each connector's shape for the clerk against its conformance server: d.velop task
//! assignees, the CMIS subfolder, the Paperless owner.

use crate::harness::dms_servers::*;
use crate::harness::*;
use poststelle::config::Settings;
use poststelle::domain::{ClerkAssignment, MailboxId};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// The assignment tables of the tests (mailbox ids of the town's taxonomy: 63 Bauordnung,
/// 22 Steueramt).
const CLERKS: &str = r#"
[[clerks."63"]]
id = "lange"
name = "Herr Lange"
file_references = ["63-BA"]

[[clerks."63"]]
id = "schmidt"
name = "Frau Schmidt"
surnames = "A-K"

[[clerks."63"]]
id = "nowak"
name = "Herr Nowak"
surnames = "L-Z"

[[clerks."22"]]
id = "hundesteuer"
name = "Team Hundesteuer"
"#;

/// The clerk tables of the example config with [`CLERKS`] added (lists of tables cannot be
/// given in the environment).
fn clerk_table() -> poststelle::classify::clerk::ClerkTable {
    let path = repo().join("config/musterstadt.toml");
    let text = std::fs::read_to_string(&path).expect("config") + CLERKS;
    let env: Vec<(String, String)> = Install::new()
        .env()
        .into_iter()
        .filter(|(k, _)| k.starts_with(poststelle::config::ENV_PREFIX))
        .collect();
    Settings::parse(&path, &text, &env)
        .unwrap_or_else(|e| panic!("{e}"))
        .clerks
}

/// An e-mail to the Bauordnung (routed by its recipient address) from `from`.
fn mail(from: &str, address: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from} <{address}>\r\n\
To: Bauordnung <bauordnung@musterstadt.de>\r\n\
Date: Tue, 1 Dec 2026 10:15:00 +0100\r\n\
Subject: {subject}\r\n\
Message-ID: <{address}.{}@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Sehr geehrte Damen und Herren,\r\n\
{body}\r\n\
Mit freundlichen Grüßen\r\n\
{from}\r\n",
        poststelle::domain::DocumentId::new().as_str()
    )
    .into_bytes()
}

fn api_get(d: &TestApp, path: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(d.url(path))
        .bearer_auth(&d.token)
        .send()
        .expect("get")
        .json()
        .expect("json")
}

#[test]
fn surname_range_routes_to_the_clerk_whose_dvelop_task_it_becomes() {
    let srv = dvelop("KEY-1", "R1");
    let env = [
        ("POSTSTELLE__DELIVER__DEFAULT_TARGET", "ext".to_string()),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__KIND",
            "\"dvelop\"".into(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__BASE_URL",
            format!("\"{}\"", srv.url()),
        ),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__REPOSITORY", "R1".into()),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__CATEGORY",
            "DPOST".into(),
        ),
        ("POSTSTELLE__DELIVER__TARGETS__EXT__API_KEY", "KEY-1".into()),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__PROPERTIES",
            "{ document_id = \"10\", mailbox = \"6\", clerk = \"7\", clerk_id = \"8\" }".into(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__TASK_ASSIGNEES",
            "{ \"63\" = [\"group-bauordnung\"] }".into(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__EXT__CLERK_ASSIGNEES",
            "{ \"nowak\" = [\"user-nowak\"], \"schmidt\" = [\"user-schmidt\"] }".into(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let table = clerk_table();
    let d = Install::new().spawn_app_with(&env, |s| s.clerks = table);
    // Öztürk under O (L–Z), von Albers under A (A–K): umlaut and particle as documented.
    d.drop_file(
        "oeztuerk.eml",
        &mail(
            "=?UTF-8?Q?Ay=C5=9Fe_=C3=96zt=C3=BCrk?=",
            "a.oeztuerk@example.org",
            "Frage zur Baugenehmigung",
            "wann wird über meinen Bauantrag für den Carport entschieden?",
        ),
    );
    d.drop_file(
        "albers.eml",
        &mail(
            "Hans von Albers",
            "h.albers@example.org",
            "Bauvoranfrage Gartenhaus",
            "ich bitte um Auskunft zu meiner Bauvoranfrage für ein Gartenhaus.",
        ),
    );
    let docs = wait_for("two delivered", LONG, || {
        let docs = d.documents();
        (docs.len() == 2 && docs.iter().all(|x| x["state"] == "delivered")).then_some(docs)
    });
    let tasks = srv.state.tasks.lock().expect("lock").clone();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let files = srv.state.docs.lock().expect("lock").clone();
    for (who, assignee, clerk, reason) in [
        (
            "oeztuerk",
            "user-nowak",
            "Herr Nowak",
            "Nachnamen L–Z: „Öztürk“",
        ),
        (
            "albers",
            "user-schmidt",
            "Frau Schmidt",
            "Nachnamen A–K: „Albers“",
        ),
    ] {
        let doc = docs
            .iter()
            .find(|x| x["original_name"] == format!("{who}.eml"))
            .expect("doc");
        let id = doc["id"].as_str().expect("id");
        let task = tasks
            .iter()
            .find(|t| t["correlationKey"] == id)
            .expect("task");
        assert_eq!(
            task["assignees"],
            serde_json::json!([assignee]),
            "the clerk's assignee instead of the mailbox's group"
        );
        let filed = files
            .iter()
            .find(|f| f.properties.get("10") == Some(&vec![id.to_string()]))
            .expect("filed");
        assert_eq!(filed.properties["6"], vec!["63"]);
        assert_eq!(filed.properties["7"], vec![clerk]);
        // The explanation says who and why; the document keeps it.
        let shown = api_get(&d, &format!("/api/documents/{id}"));
        let c: ClerkAssignment = serde_json::from_value(shown["explanation"]["clerk"].clone())
            .unwrap_or_else(|e| panic!("{e}: {shown}"));
        assert_eq!(c.name, clerk);
        assert_eq!(c.reason, reason);
        assert_eq!(c.mailbox, MailboxId::parse("63").expect("id"));
    }
    d.stop();
}

#[test]
fn file_reference_prefix_picks_the_clerk_and_another_mailbox_asks_its_own_table() {
    let table = clerk_table();
    let d = Install::new().spawn_app_with(&[], |s| s.clerks = table);
    // Zander would be Herr Nowak's (L–Z), but the Aktenzeichen row comes first.
    d.drop_file(
        "zander.eml",
        &mail(
            "Klaus Zander",
            "k.zander@example.org",
            "Nachreichung Unterlagen",
            "Ihr Zeichen: 63-BA 2026/0815\r\nanbei die fehlenden Bauvorlagen zu meinem Bauantrag.",
        ),
    );
    let delivered = wait_for("delivered", LONG, || {
        let x = d.delivered();
        (x.len() == 1).then_some(x)
    });
    assert_eq!(delivered[0].0, "63");
    let sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(delivered[0].1.with_extension("json")).expect("sidecar"),
    )
    .expect("json");
    assert_eq!(
        sidecar["clerk"],
        serde_json::json!({
            "id": "lange", "name": "Herr Lange",
            "reason": "Aktenzeichen „63-BA 2026/0815“ beginnt mit „63-BA“",
        }),
        "{sidecar}"
    );
    assert_eq!(sidecar["decision"]["explanation"]["clerk"]["id"], "lange");
    // A person assigns it to the Steueramt: its table's default, not Herr Lange.
    let id = sidecar["document_id"].as_str().expect("id").to_string();
    let r = reqwest::blocking::Client::new()
        .post(d.url(&format!("/api/documents/{id}/assign")))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"mailbox": "22"}))
        .send()
        .expect("assign");
    assert!(r.status().is_success(), "{}", r.status());
    let moved = wait_for("delivered to 22", LONG, || {
        d.delivered().into_iter().find(|(mb, _)| mb == "22")
    });
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(moved.1.with_extension("json")).expect("sidecar"))
            .expect("json");
    assert_eq!(sidecar["clerk"]["id"], "hundesteuer", "{sidecar}");
    assert_eq!(sidecar["clerk"]["reason"], "Voreinstellung des Postfachs");
    let shown = api_get(&d, &format!("/api/documents/{id}"));
    assert_eq!(
        shown["explanation"]["clerk"]["id"], "hundesteuer",
        "stored with the document: {shown}"
    );
    d.stop();
}

fn with_clerk(mailbox: &str, id: &str, name: &str) -> poststelle::deliver::DeliveryItem {
    let mut it = item(
        mailbox,
        format!(
            "%PDF-1.4 {id} {}",
            poststelle::domain::DocumentId::new().as_str()
        )
        .as_bytes(),
    );
    it.clerk = Some(ClerkAssignment {
        mailbox: MailboxId::parse(mailbox).expect("id"),
        id: id.into(),
        name: name.into(),
        reason: "Nachnamen A–K: „Mustermann“".into(),
    });
    it
}

#[tokio::test]
async fn dvelop_task_goes_to_the_clerk_instead_of_or_besides_the_mailbox() {
    let srv = dvelop("KEY-1", "R1");
    let block = |mode: &str| {
        format!(
            r#"kind = "dvelop"
base_url = "{}"
repository = "R1"
category = "DPOST"
timeout_secs = 2
properties = {{ document_id = "10", clerk = "11" }}
task_assignees = {{ "63" = ["group-bauordnung"] }}
clerk_assignees = {{ "schmidt" = ["user-schmidt"] }}
clerk_task = "{mode}"
"#,
            srv.url()
        )
    };
    let key = [("POSTSTELLE__DELIVER__TARGETS__T__API_KEY", "KEY-1")];
    let instead = target(&block("instead"), &key);
    let also = target(&block("also"), &key);
    let a = with_clerk("63", "schmidt", "Frau Schmidt");
    instead.deliver(&a).await.expect("delivered");
    let b = with_clerk("63", "schmidt", "Frau Schmidt");
    also.deliver(&b).await.expect("delivered");
    // A clerk without assignees: the mailbox's.
    let c = with_clerk("63", "nowak", "Herr Nowak");
    instead.deliver(&c).await.expect("delivered");
    let tasks = srv.state.tasks.lock().expect("lock").clone();
    let of = |it: &poststelle::deliver::DeliveryItem| {
        tasks
            .iter()
            .find(|t| t["correlationKey"] == it.document_id.as_str())
            .map(|t| t["assignees"].clone())
            .expect("task")
    };
    assert_eq!(of(&a), serde_json::json!(["user-schmidt"]));
    assert_eq!(
        of(&b),
        serde_json::json!(["user-schmidt", "group-bauordnung"])
    );
    assert_eq!(of(&c), serde_json::json!(["group-bauordnung"]));
    let docs = srv.state.docs.lock().expect("lock").clone();
    assert!(
        docs.iter()
            .any(|d| d.properties.get("11") == Some(&vec!["Frau Schmidt".to_string()]))
    );
    let e = poststelle::config::Settings::parse(
        std::path::Path::new("t.toml"),
        &format!(
            "[municipality]\nname = \"T\"\n[review]\nmailbox = \"p\"\nname = \"P\"\n\
             [[mailboxes]]\nid = \"63\"\nname = \"B\"\n[deliver]\ndefault_target = \"t\"\n\
             [deliver.targets.t]\n{}",
            block("sometimes")
        ),
        &[(
            "POSTSTELLE__DELIVER__TARGETS__T__API_KEY".into(),
            "KEY-1".into(),
        )],
    )
    .expect_err("unknown clerk_task");
    assert!(e.to_string().contains("clerk_task"), "{e}");
}

#[tokio::test]
async fn cmis_files_into_the_clerks_subfolder_and_moves_on_a_new_clerk() {
    let srv = cmis("poststelle", "pw");
    let t = target(
        &format!(
            r#"kind = "cmis"
root_url = "{}/cmis/browser/repo1/root"
username = "poststelle"
timeout_secs = 2
folder = "/Posteingang/{{mailbox}} {{mailbox_name}}"
clerk_folders = {{ "nowak" = "SB Nowak" }}
"#,
            srv.url()
        ),
        &[("POSTSTELLE__DELIVER__TARGETS__T__PASSWORD", "pw")],
    );
    let it = with_clerk("63", "schmidt", "Frau Schmidt");
    t.deliver(&it).await.expect("delivered");
    let name = format!("{}.pdf", it.document_id.as_str());
    let docs = srv.state.documents();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0].path,
        format!("/Posteingang/63 Bauordnung/Frau Schmidt/{name}")
    );
    // Another clerk (a person assigned it anew): moved into that clerk's folder, not copied.
    let mut again = it.clone();
    again.clerk = Some(ClerkAssignment {
        id: "nowak".into(),
        name: "Herr Nowak".into(),
        ..it.clerk.clone().expect("clerk")
    });
    assert!(t.deliver(&again).await.expect("moved").already_present);
    let docs = srv.state.documents();
    assert_eq!(docs.len(), 1, "moved, not copied");
    assert_eq!(
        docs[0].path,
        format!("/Posteingang/63 Bauordnung/SB Nowak/{name}")
    );
    // No clerk: the mailbox's folder, as without tables.
    let plain = item("63", b"%PDF-1.4 plain");
    t.deliver(&plain).await.expect("plain");
    assert!(srv.state.documents().iter().any(|d| d.path
        == format!(
            "/Posteingang/63 Bauordnung/{}.pdf",
            plain.document_id.as_str()
        )));
}

#[tokio::test]
async fn paperless_gives_the_document_to_the_clerks_owner() {
    let srv = paperless("TOK");
    let t = target(
        &format!(
            r#"kind = "paperless"
base_url = "{}"
timeout_secs = 2
poll_interval_ms = 20
poll_timeout_secs = 5
tags = [1]
document_id_field = 7
clerk_owners = {{ "schmidt" = 3, "nowak" = 4, "ghost" = 42 }}
"#,
            srv.url()
        ),
        &[("POSTSTELLE__DELIVER__TARGETS__T__TOKEN", "TOK")],
    );
    let it = with_clerk("63", "schmidt", "Frau Schmidt");
    t.deliver(&it).await.expect("delivered");
    let owner = |srv: &Server<Paperless>| srv.state.docs.lock().expect("lock")[0].owner;
    assert_eq!(owner(&srv), Some(3), "set by PATCH after the upload");
    let log = srv.state.log.lock().expect("lock").clone();
    assert!(
        log.contains(&"PATCH /api/documents/1/".to_string()),
        "{log:?}"
    );
    // A new clerk: the owner follows on the next delivery.
    let mut again = it.clone();
    again.clerk = Some(ClerkAssignment {
        id: "nowak".into(),
        ..it.clerk.clone().expect("clerk")
    });
    assert!(t.deliver(&again).await.expect("again").already_present);
    assert_eq!(owner(&srv), Some(4));
    // Unchanged: no PATCH.
    let before = srv.state.log.lock().expect("lock").len();
    t.deliver(&again).await.expect("unchanged");
    let log = srv.state.log.lock().expect("lock")[before..].to_vec();
    assert!(!log.iter().any(|l| l.starts_with("PATCH")), "{log:?}");
    // An owner Paperless does not know is refused for good.
    let mut ghost = with_clerk("63", "ghost", "Gespenst");
    ghost.document_id = poststelle::domain::DocumentId::new();
    let e = t.deliver(&ghost).await.expect_err("unknown user");
    assert!(!e.is_retriable(), "{e}");
}

#[test]
fn the_example_config_s_clerk_tables_are_valid_when_uncommented() {
    let path = repo().join("config/musterstadt.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let start = text.find("# [[clerks.").expect("commented clerk tables");
    let block: String = text[start..]
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let env: Vec<(String, String)> = Install::new()
        .env()
        .into_iter()
        .filter(|(k, _)| k.starts_with(poststelle::config::ENV_PREFIX))
        .collect();
    let s = Settings::parse(&path, &format!("{text}\n{block}\n"), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    let m = poststelle::domain::DocumentMetadata {
        sender_name: Some("Jana Nowak".into()),
        ..Default::default()
    };
    let c = s
        .clerks
        .assign(&MailboxId::parse("63").expect("id"), &m)
        .expect("clerk");
    assert_eq!(
        c.sentence(),
        "Sachbearbeitung: Herr Nowak (Nachnamen L–Z: „Nowak“)"
    );
    // An unknown mailbox is refused in German.
    let e = Settings::parse(
        &path,
        &format!("{text}\n[[clerks.\"99\"]]\nid = \"x\"\nname = \"X\"\n"),
        &env,
    )
    .expect_err("unknown mailbox");
    assert!(
        e.to_string()
            .contains("Postfach \"99\" ist nicht als Fachbereich konfiguriert"),
        "{e}"
    );
}
