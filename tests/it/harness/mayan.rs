//! The real Mayan EDMS 4.12 of the tests (installed from PyPI and started by
//! `tests/services/mayan.sh start`, which writes `POSTSTELLE_TEST_MAYAN_*` to
//! `/var/tmp/poststelle-mayan/run/env`; `deploy/test.sh` exports them): a client that reads back
//! through Mayan's own REST API, and targets configured the way an operator would.

use poststelle::config::Settings;
use poststelle::deliver::Delivery;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The server is shared by every test of the run: tests that use it take this lock, so that
/// one stopping the web server ([`Mayan::control`]) cannot break another.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the test Mayan runs and how to sign in.
pub struct Mayan {
    /// Base URL (without `/api/v4`).
    pub url: String,
    /// Admin user.
    pub user: String,
    /// Its password.
    pub password: String,
    control: Option<String>,
    http: reqwest::Client,
}

/// The running Mayan, or `None` (with a loud message) outside CI; in CI its absence fails.
pub fn mayan() -> Option<Mayan> {
    let Ok(url) = std::env::var("POSTSTELLE_TEST_MAYAN_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "POSTSTELLE_TEST_MAYAN_URL is not set: in CI, deploy/test.sh must start Mayan EDMS \
                 with tests/services/mayan.sh start"
            );
        }
        eprintln!(
            "\n!!!!! SKIPPED: no Mayan EDMS. Run `tests/services/mayan.sh start` and export the \
             variables it prints (POSTSTELLE_TEST_MAYAN_URL, ...). !!!!!\n"
        );
        return None;
    };
    Some(Mayan {
        url,
        user: std::env::var("POSTSTELLE_TEST_MAYAN_USER").unwrap_or_else(|_| "admin".into()),
        password: std::env::var("POSTSTELLE_TEST_MAYAN_PASSWORD").expect("password"),
        control: std::env::var("POSTSTELLE_TEST_MAYAN_CONTROL").ok(),
        http: reqwest::Client::new(),
    })
}

impl Mayan {
    /// `GET /api/v4{path}` as JSON; anything but 2xx fails the test.
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v4{path}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// `GET /api/v4{path}` as bytes.
    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{}/api/v4{path}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.bytes().await.expect("bytes").to_vec()
    }

    /// `POST /api/v4{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/api/v4{path}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Every document labelled `label`, straight from the document list (not the search index).
    pub async fn documents_labelled(&self, label: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for page in 1..=50 {
            let p = self
                .get(&format!("/documents/?page={page}&page_size=100"))
                .await;
            out.extend(
                p["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .filter(|d| d["label"] == label)
                    .cloned(),
            );
            if p["next"].is_null() {
                break;
            }
        }
        out
    }

    /// Labels of the cabinets a document is in.
    pub async fn cabinet_labels(&self, document: u64) -> Vec<String> {
        let p = self.get(&format!("/documents/{document}/cabinets/")).await;
        p["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|c| c["label"].as_str().expect("label").to_string())
            .collect()
    }

    /// The files of a document (Mayan's file list).
    pub async fn files(&self, document: u64) -> Vec<Value> {
        let files = self.get(&format!("/documents/{document}/files/")).await;
        files["results"].as_array().expect("files").clone()
    }

    /// A document type of its own for this test run.
    pub async fn document_type(&self, label: &str) -> u64 {
        let t = self
            .post("/document_types/", serde_json::json!({ "label": label }))
            .await;
        t["id"].as_u64().expect("id")
    }

    /// Runs `tests/services/mayan.sh <cmd>` (e.g. `stop-web`, `start-web`).
    pub fn control(&self, cmd: &str) {
        let script = self
            .control
            .as_deref()
            .expect("POSTSTELLE_TEST_MAYAN_CONTROL");
        let st = std::process::Command::new(script)
            .arg(cmd)
            .status()
            .expect("run mayan.sh");
        assert!(st.success(), "mayan.sh {cmd}");
    }

    /// A target configured the way an operator would: through the config file and env.
    pub fn target(&self, extra: &str, password: &str) -> Arc<dyn Delivery> {
        self.target_at(&self.url, extra, password)
    }

    /// Like [`Mayan::target`], reaching Mayan at `url` (e.g. through a
    /// [`super::dms_servers::proxy`]).
    pub fn target_at(&self, url: &str, extra: &str, password: &str) -> Arc<dyn Delivery> {
        let text = format!(
            r#"
[municipality]
name = "Musterstadt"

[deliver]
default_target = "mayan"

[deliver.targets.mayan]
kind = "mayan"
url = "{url}"
user = "{user}"
{timeout}{extra}

[review]
mailbox = "review"
name = "Klärung"

[[mailboxes]]
id = "63"
name = "Bauordnung"

[[mailboxes]]
id = "51"
name = "Jugend"

[[mailboxes]]
id = "22"
name = "Steueramt"
"#,
            user = self.user,
            // The default of these tests, unless `extra` names its own.
            timeout = if extra.contains("timeout_secs") {
                ""
            } else {
                "timeout_secs = 10\n"
            },
        );
        let env = vec![(
            "POSTSTELLE__DELIVER__TARGETS__MAYAN__PASSWORD".to_string(),
            password.to_string(),
        )];
        let s = Settings::parse(Path::new("mayan-test.toml"), &text, &env).expect("config");
        let t = s.deliver.targets.get("mayan").expect("target");
        assert_eq!(t.kind(), "mayan");
        poststelle::deliver::build("mayan", t).expect("target builds")
    }
}
