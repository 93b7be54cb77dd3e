//! Configuration: raw TOML -> validated [`Settings`] in one place.
//!
//! Every key can be overridden from the environment as `POSTSTELLE__SECTION__KEY=value`
//! (`__` separates levels, array elements are addressed by index, e.g.
//! `POSTSTELLE__MAILBOXES__0__NAME`). Values are read as TOML literals where they parse as one
//! (`true`, `5`, `"x"`), otherwise as strings (see [`loader`]). Secrets are never accepted from
//! the file itself and follow one rule: the environment wins over `<key>_file` (see [`secret`]).
//! Delivery targets are validated by their connectors through [`crate::deliver::registry`].

use crate::deliver::TargetMailbox;
use crate::deliver::settings::RawDeliver;
use crate::domain::MailboxId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod loader;
pub mod problem;
pub mod secret;

pub use crate::deliver::{DeliverSettings, TargetSettings};
pub use loader::ENV_PREFIX;
pub use problem::{ConfigError, ConfigProblem, Problems, line_of, suggest};
pub use secret::{Secret, SecretSource};

// ----------------------------------------------------------------------------------------------
// Raw (file) structures. `deny_unknown_fields` turns typos into errors with a line number.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    municipality: RawMunicipality,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    extract: RawExtract,
    #[serde(default)]
    classify: RawClassify,
    #[serde(default)]
    deliver: RawDeliver,
    #[serde(default)]
    api: RawApi,
    review: RawReview,
    #[serde(default)]
    mailboxes: Vec<RawMailbox>,
    #[serde(default)]
    outgoing: RawOutgoing,
    #[serde(default)]
    einvoice: RawEinvoice,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawEinvoice {
    /// Mailbox ids as strings; integers are accepted (an environment override `=20` parses
    /// as one).
    routes: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMunicipality {
    name: String,
    #[serde(default)]
    address_markers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    url: String,
    blobs: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://var/poststelle.db".into(),
            blobs: "var/blobs".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawIntake {
    hot_folder: RawHotFolder,
    upload: RawUpload,
    imap: RawImap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawImap {
    enabled: bool,
    max_message_mb: u64,
    timeout_secs: u64,
    deliver_as: String,
    accounts: Vec<RawImapAccount>,
}

impl Default for RawImap {
    fn default() -> Self {
        Self {
            enabled: false,
            max_message_mb: 25,
            timeout_secs: 60,
            deliver_as: "eml".into(),
            accounts: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImapAccount {
    name: String,
    host: String,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    user: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default = "default_folders")]
    folders: Vec<String>,
    #[serde(default = "default_processed")]
    processed_folder: String,
    #[serde(default = "default_quarantine")]
    quarantine_folder: String,
    #[serde(default)]
    acknowledge: bool,
    #[serde(default = "default_poll")]
    poll_secs: u64,
    #[serde(default = "default_max_failures")]
    max_failures: u32,
}

fn default_tls() -> String {
    "tls".into()
}
fn default_folders() -> Vec<String> {
    vec!["INBOX".into()]
}
fn default_processed() -> String {
    "Poststelle/Erledigt".into()
}
fn default_quarantine() -> String {
    "Poststelle/Quarantaene".into()
}
fn default_poll() -> u64 {
    60
}
fn default_max_failures() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHotFolder {
    enabled: bool,
    inbox: PathBuf,
    processed: PathBuf,
    quarantine: PathBuf,
    settle_ms: u64,
    rescan_secs: u64,
    max_file_mb: u64,
}

impl Default for RawHotFolder {
    fn default() -> Self {
        Self {
            enabled: true,
            inbox: "var/inbox".into(),
            processed: "var/processed".into(),
            quarantine: "var/quarantine".into(),
            settle_ms: 1000,
            rescan_secs: 5,
            max_file_mb: 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpload {
    max_file_mb: u64,
}

impl Default for RawUpload {
    fn default() -> Self {
        Self { max_file_mb: 100 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawExtract {
    language: String,
    tessdata: Option<PathBuf>,
    dpi: u32,
    min_text_chars: usize,
    timeout_secs: u64,
    memory_limit_mb: u64,
    max_pages: u32,
    max_image_megapixels: u64,
    workers: usize,
    mail_max_attachments: u32,
    mail_max_depth: u32,
    mail_max_decoded_mb: u64,
    max_attempts: u32,
    retry_base_secs: u64,
    retry_max_secs: u64,
}

impl Default for RawExtract {
    fn default() -> Self {
        Self {
            language: "deu".into(),
            tessdata: None,
            dpi: 300,
            min_text_chars: 60,
            timeout_secs: 120,
            memory_limit_mb: 2048,
            max_pages: 30,
            max_image_megapixels: 80,
            workers: 2,
            mail_max_attachments: 20,
            mail_max_depth: 3,
            mail_max_decoded_mb: 50,
            max_attempts: 5,
            retry_base_secs: 2,
            retry_max_secs: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClassify {
    rules: PathBuf,
    models: PathBuf,
    training_data: PathBuf,
    review_threshold: f64,
}

impl Default for RawClassify {
    fn default() -> Self {
        Self {
            rules: "rules".into(),
            models: "var/models".into(),
            training_data: "training-data".into(),
            review_threshold: 0.8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    enabled: bool,
    listen: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8470".into(),
            token: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    mailbox: String,
    name: String,
    #[serde(default)]
    digest_to: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    id: String,
    name: String,
    target: Option<String>,
    #[serde(default)]
    digest_to: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
}

// ----------------------------------------------------------------------------------------------
// Validated settings.

/// Validated settings for every component; built only by [`Settings::load`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file the settings came from.
    pub source: PathBuf,
    /// Name of the town.
    pub municipality: String,
    /// Lines that identify the town in an address field (used to find the recipient block).
    pub address_markers: Vec<String>,
    /// Store settings.
    pub store: StoreSettings,
    /// Scanner hot folder.
    pub hot_folder: HotFolderSettings,
    /// Largest upload accepted over the API, in bytes.
    pub upload_max_bytes: u64,
    /// IMAP e-mail intake.
    pub imap: ImapSettings,
    /// Extraction limits and OCR settings.
    pub extract: ExtractSettings,
    /// Classification settings.
    pub classify: ClassifySettings,
    /// Delivery settings.
    pub deliver: DeliverSettings,
    /// HTTP API settings.
    pub api: ApiSettings,
    /// The review mailbox (a person in the Poststelle decides).
    pub review: MailboxSettings,
    /// The department mailboxes, in config order.
    pub mailboxes: Vec<MailboxSettings>,
    /// Outgoing e-mail (acknowledgements and digests over SMTP).
    pub outgoing: OutgoingSettings,
    /// E-invoice routing.
    pub einvoice: EinvoiceSettings,
}

/// E-invoice routing: a known Leitweg-ID (the buyer reference of an XRechnung / ZUGFeRD
/// invoice) decides the mailbox without the model.
#[derive(Debug, Clone, Default)]
pub struct EinvoiceSettings {
    /// Leitweg-ID (upper case) → department mailbox.
    pub routes: BTreeMap<String, MailboxId>,
}

/// Normalises a Leitweg-ID for lookups: trimmed, upper case.
pub fn normalize_leitweg_id(s: &str) -> String {
    s.trim().to_uppercase()
}

/// True for the shape of a Leitweg-ID: coarse address (2–12 digits), optional fine address
/// (1–30 letters/digits), two check digits, separated by `-`.
pub fn is_leitweg_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let digits = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit())
    };
    match parts.as_slice() {
        [grob, check] => digits(grob, 2, 12) && digits(check, 2, 2),
        [grob, fein, check] => {
            digits(grob, 2, 12)
                && (1..=30).contains(&fein.len())
                && fein.chars().all(|c| c.is_ascii_alphanumeric())
                && digits(check, 2, 2)
        }
        _ => false,
    }
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Database URL (`sqlite://path`).
    pub url: String,
    /// Directory of the content-addressed blob store.
    pub blobs: PathBuf,
}

/// Scanner hot-folder settings.
#[derive(Debug, Clone)]
pub struct HotFolderSettings {
    /// Whether the daemon watches the folder.
    pub enabled: bool,
    /// Where scanners drop files.
    pub inbox: PathBuf,
    /// Where taken files are moved after their bytes are committed.
    pub processed: PathBuf,
    /// Where unreadable files go, each with a `<name>.reason.txt`.
    pub quarantine: PathBuf,
    /// How long size and mtime must stay unchanged before a file is taken.
    pub settle: std::time::Duration,
    /// Periodic rescan (catches events a watcher misses, e.g. on network shares).
    pub rescan: std::time::Duration,
    /// Largest file taken, in bytes.
    pub max_file_bytes: u64,
}

/// Extraction settings and limits.
#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// Tesseract language(s), e.g. `deu`.
    pub language: String,
    /// Tesseract data directory, when not the system default.
    pub tessdata: Option<PathBuf>,
    /// Rendering resolution for scanned PDFs.
    pub dpi: u32,
    /// A PDF text layer with fewer characters than this counts as "no text" and is OCR'd.
    pub min_text_chars: usize,
    /// Wall-clock limit for extracting one document.
    pub timeout: std::time::Duration,
    /// Address-space limit of the extraction process, in bytes.
    pub memory_limit_bytes: u64,
    /// Pages read per document.
    pub max_pages: u32,
    /// Largest image accepted, in pixels (image bombs are refused before decoding).
    pub max_image_pixels: u64,
    /// Documents extracted in parallel.
    pub workers: usize,
    /// Attachments per e-mail at most (nested messages count with their own).
    pub mail_max_attachments: u32,
    /// Nesting depth of forwarded messages (`message/rfc822`) at most.
    pub mail_max_depth: u32,
    /// Decoded size of all parts of an e-mail at most, in bytes.
    pub mail_max_decoded_bytes: u64,
    /// Attempts of the extract and classify stages before a document becomes a dead letter
    /// (failures that are not the input's fault: a crashed worker, a full disk, ...).
    pub max_attempts: u32,
    /// First delay before a failed stage is tried again.
    pub retry_base: std::time::Duration,
    /// Longest delay between stage attempts.
    pub retry_max: std::time::Duration,
}

/// IMAP intake settings.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// Whether the daemon polls the accounts.
    pub enabled: bool,
    /// Largest message taken (RFC822.SIZE), in bytes; larger ones go to quarantine.
    pub max_message_bytes: u64,
    /// Time limit of one IMAP command (connect, login, fetch, ...).
    pub timeout: std::time::Duration,
    /// The form in which e-mails are delivered to the DMS.
    pub deliver_as: MailDelivery,
    /// The accounts.
    pub accounts: Vec<ImapAccount>,
}

/// The form in which an e-mail is delivered (`[intake.imap] deliver_as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailDelivery {
    /// The original message (`.eml`, `message/rfc822`).
    #[default]
    Eml,
    /// A PDF made from it: header fields, body text and the list of attachments.
    Pdf,
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain connection upgraded with STARTTLS (port 143).
    StartTls,
    /// No encryption: allowed only to a loopback address.
    Plain,
}

/// One IMAP account.
#[derive(Debug, Clone)]
pub struct ImapAccount {
    /// Name (used in the store and in logs).
    pub name: String,
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security.
    pub tls: ImapTls,
    /// PEM file with the certificate(s) of the town's own CA, trusted in addition to the web
    /// roots (the host name is verified either way).
    pub ca_file: Option<PathBuf>,
    /// Login name.
    pub user: String,
    /// Password (from the environment or `password_file`).
    pub password: Secret,
    /// Folders read.
    pub folders: Vec<String>,
    /// Folder taken messages are moved to.
    pub processed_folder: String,
    /// Folder messages are moved to that failed too often or exceed the limits.
    pub quarantine_folder: String,
    /// Whether acknowledgements are sent for this account's mail.
    pub acknowledge: bool,
    /// Polling interval (IDLE, where offered, wakes earlier).
    pub poll: std::time::Duration,
    /// Failed attempts before a message goes to quarantine.
    pub max_failures: u32,
}

/// Classification settings.
#[derive(Debug, Clone)]
pub struct ClassifySettings {
    /// Directory of rule files.
    pub rules: PathBuf,
    /// Directory of model versions.
    pub models: PathBuf,
    /// The shipped training corpus.
    pub training_data: PathBuf,
    /// Confidence below which a person decides (used when the model stores none).
    pub review_threshold: f64,
}

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Whether the daemon serves the API.
    pub enabled: bool,
    /// Listen address.
    pub listen: String,
    /// Bearer token (from env or file).
    pub token: Secret,
}

/// A mailbox.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    /// Its id.
    pub id: MailboxId,
    /// Its name, shown to people.
    pub name: String,
    /// The delivery target it is filed into.
    pub target: String,
    /// Who gets the daily digest of this mailbox (e-mail addresses; empty: no digest).
    pub digest_to: Vec<String>,
    /// E-mail addresses (lower case) whose mail belongs to this mailbox.
    pub addresses: Vec<String>,
}

impl Settings {
    /// Loads, overrides from the environment and validates a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Self::load_with_env(path, &loader::process_env())
    }

    /// Like [`Settings::load`] with explicit environment pairs (for tests).
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
        let text = loader::read(path)?;
        Self::parse(path, &text, env)
    }

    /// Parses config text (named `path` in messages).
    pub fn parse(
        path: &Path,
        text: &str,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let (table, mut problems) = loader::load(path, text, env)?;
        let Some(raw) =
            loader::deserialize::<RawConfig>(toml::Value::Table(table), &[], &mut problems)
        else {
            return Err(problems.into_error());
        };
        let settings = validate(raw, path, &mut problems);
        problems.into_result(settings)
    }

    /// The mailbox with this id, review mailbox included.
    pub fn mailbox(&self, id: &MailboxId) -> Option<&MailboxSettings> {
        if &self.review.id == id {
            return Some(&self.review);
        }
        self.mailboxes.iter().find(|m| &m.id == id)
    }

    /// Ids of the department mailboxes.
    pub fn mailbox_ids(&self) -> Vec<MailboxId> {
        self.mailboxes.iter().map(|m| m.id.clone()).collect()
    }

    /// The settings rendered for people, secrets redacted.
    pub fn redacted_summary(&self) -> String {
        format!("{self:#?}")
    }
}

fn validate(raw: RawConfig, path: &Path, problems: &mut Problems) -> Settings {
    let target_names = raw.deliver.target_names();
    let default_target = raw.deliver.default_target().to_string();
    let mut deliver = crate::deliver::settings::validate(raw.deliver, problems);
    let target_names: Vec<&str> = target_names.iter().map(String::as_str).collect();
    let mut seen = std::collections::HashSet::new();
    let mut seen_addresses = std::collections::HashSet::new();
    let mut mailboxes = Vec::new();
    for m in &raw.mailboxes {
        let Some(id) = MailboxId::parse(&m.id) else {
            problems.push(
                &format!("\"{}\"", m.id),
                format!("mailbox id \"{}\" is not valid", m.id),
                Some("use letters, digits, '-', '_' or '.' (at most 64)".into()),
            );
            continue;
        };
        if !seen.insert(id.clone()) {
            problems.push(
                &format!("\"{}\"", m.id),
                format!("mailbox id \"{}\" appears twice", m.id),
                None,
            );
        }
        let target = m.target.clone().unwrap_or_else(|| default_target.clone());
        if !target_names.contains(&target.as_str()) {
            problems.push(
                &format!("\"{target}\""),
                format!("mailbox {} names unknown target \"{target}\"", m.id),
                suggest(&target, &target_names),
            );
        }
        for a in &m.digest_to {
            if !valid_address(a) {
                problems.push(
                    &format!("\"{a}\""),
                    format!(
                        "mailbox {}: digest_to \"{a}\" is not an e-mail address",
                        m.id
                    ),
                    None,
                );
            }
        }
        let mut addresses = Vec::new();
        for a in &m.addresses {
            let a = a.trim().to_lowercase();
            if !a.contains('@') || a.contains(char::is_whitespace) {
                problems.push(
                    &a,
                    format!("mailbox {}: \"{a}\" is not an e-mail address", m.id),
                    None,
                );
            } else if !seen_addresses.insert(a.clone()) {
                problems.push(
                    &a,
                    format!("address \"{a}\" is given to more than one mailbox"),
                    None,
                );
            } else {
                addresses.push(a);
            }
        }
        mailboxes.push(MailboxSettings {
            id,
            name: m.name.clone(),
            target,
            digest_to: m.digest_to.clone(),
            addresses,
        });
    }
    if mailboxes.is_empty() {
        problems.push(
            "[[mailboxes]]",
            "no department mailboxes configured",
            Some("add [[mailboxes]] blocks with id and name".into()),
        );
    }
    let review_id = MailboxId::parse(&raw.review.mailbox).unwrap_or_else(|| {
        problems.push(
            "[review]",
            format!("review mailbox id \"{}\" is not valid", raw.review.mailbox),
            None,
        );
        MailboxId::parse("review").expect("literal id is valid")
    });
    if seen.contains(&review_id) {
        problems.push(
            "[review]",
            "the review mailbox must not also be a department mailbox",
            None,
        );
    }
    let t = raw.classify.review_threshold;
    if !(0.0..=1.0).contains(&t) {
        problems.push(
            "review_threshold",
            format!("review_threshold {t} is outside 0..1"),
            Some("e.g. 0.8".into()),
        );
    }
    if raw.extract.workers == 0 {
        problems.push("workers", "extract.workers must be at least 1", None);
    }
    if !raw.store.url.starts_with("sqlite:") {
        problems.push(
            "url",
            format!("store.url \"{}\" is not supported", raw.store.url),
            Some("use sqlite://PATH".into()),
        );
    }
    if raw.api.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(
            "listen",
            format!("api.listen \"{}\" is not an address:port", raw.api.listen),
            Some("e.g. 127.0.0.1:8470".into()),
        );
    }
    // A missing file leaves the API locked (every /api request is refused), not broken.
    let token = SecretSource::new(
        &["api", "token"],
        raw.api.token.as_deref(),
        raw.api.token_file.as_deref(),
    )
    .missing_file_is_unset()
    .resolve(problems)
    .unwrap_or_default();
    let mut einvoice = EinvoiceSettings::default();
    for (lid, value) in &raw.einvoice.routes {
        let mb = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            other => other.to_string(),
        };
        let key = normalize_leitweg_id(lid);
        if !is_leitweg_id(&key) {
            problems.push(
                &format!("\"{lid}\""),
                format!("einvoice.routes: \"{lid}\" is not a Leitweg-ID"),
                Some("e.g. \"05315000-12345-67\" (coarse-fine-check digits)".into()),
            );
            continue;
        }
        match MailboxId::parse(&mb).filter(|m| seen.contains(m)) {
            Some(m) => {
                einvoice.routes.insert(key, m);
            }
            None => {
                let ids: Vec<&str> = mailboxes.iter().map(|m| m.id.as_str()).collect();
                problems.push(
                    &format!("\"{lid}\""),
                    format!("einvoice.routes: Leitweg-ID {lid} names unknown mailbox \"{mb}\""),
                    suggest(&mb, &ids),
                );
            }
        }
    }
    let imap = validate_imap(&raw.intake.imap, problems);
    let review_target = default_target.clone();
    // Connectors complete per-mailbox defaults (e.g. Mayan's cabinet per mailbox).
    deliver.complete(
        mailboxes
            .iter()
            .map(|m| {
                (
                    m.target.as_str(),
                    TargetMailbox {
                        id: &m.id,
                        name: &m.name,
                    },
                )
            })
            .chain(std::iter::once((
                review_target.as_str(),
                TargetMailbox {
                    id: &review_id,
                    name: &raw.review.name,
                },
            ))),
    );
    for a in &raw.review.digest_to {
        if !valid_address(a) {
            problems.push(
                &format!("\"{a}\""),
                format!("review.digest_to \"{a}\" is not an e-mail address"),
                None,
            );
        }
    }
    let outgoing = outgoing_settings(raw.outgoing, problems);
    Settings {
        source: path.to_path_buf(),
        municipality: raw.municipality.name,
        address_markers: raw.municipality.address_markers,
        store: StoreSettings {
            url: raw.store.url,
            blobs: raw.store.blobs,
        },
        hot_folder: HotFolderSettings {
            enabled: raw.intake.hot_folder.enabled,
            inbox: raw.intake.hot_folder.inbox,
            processed: raw.intake.hot_folder.processed,
            quarantine: raw.intake.hot_folder.quarantine,
            settle: std::time::Duration::from_millis(raw.intake.hot_folder.settle_ms),
            rescan: std::time::Duration::from_secs(raw.intake.hot_folder.rescan_secs.max(1)),
            max_file_bytes: raw.intake.hot_folder.max_file_mb * 1024 * 1024,
        },
        upload_max_bytes: raw.intake.upload.max_file_mb * 1024 * 1024,
        imap,
        extract: ExtractSettings {
            language: raw.extract.language,
            tessdata: raw.extract.tessdata,
            dpi: raw.extract.dpi,
            min_text_chars: raw.extract.min_text_chars,
            timeout: std::time::Duration::from_secs(raw.extract.timeout_secs.max(1)),
            memory_limit_bytes: raw.extract.memory_limit_mb * 1024 * 1024,
            max_pages: raw.extract.max_pages.max(1),
            max_image_pixels: raw.extract.max_image_megapixels * 1_000_000,
            workers: raw.extract.workers.max(1),
            mail_max_attachments: raw.extract.mail_max_attachments,
            mail_max_depth: raw.extract.mail_max_depth,
            mail_max_decoded_bytes: raw.extract.mail_max_decoded_mb * 1024 * 1024,
            max_attempts: raw.extract.max_attempts.max(1),
            retry_base: std::time::Duration::from_secs(raw.extract.retry_base_secs),
            retry_max: std::time::Duration::from_secs(raw.extract.retry_max_secs.max(1)),
        },
        classify: ClassifySettings {
            rules: raw.classify.rules,
            models: raw.classify.models,
            training_data: raw.classify.training_data,
            review_threshold: t,
        },
        deliver,
        api: ApiSettings {
            enabled: raw.api.enabled,
            listen: raw.api.listen,
            token,
        },
        review: MailboxSettings {
            id: review_id,
            name: raw.review.name,
            target: review_target,
            digest_to: raw.review.digest_to,
            addresses: Vec::new(),
        },
        mailboxes,
        outgoing,
        einvoice,
    }
}

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn validate_imap(raw: &RawImap, problems: &mut Problems) -> ImapSettings {
    let mut accounts = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, a) in raw.accounts.iter().enumerate() {
        let at = format!("intake.imap.accounts[{i}] ({})", a.name);
        if a.name.is_empty() || !names.insert(a.name.clone()) {
            problems.push(
                "[[intake.imap.accounts]]",
                format!("{at}: name is empty or appears twice"),
                None,
            );
        }
        let tls = match a.tls.as_str() {
            "tls" => ImapTls::Tls,
            "starttls" => ImapTls::StartTls,
            "plain" => ImapTls::Plain,
            other => {
                problems.push(
                    "tls",
                    format!("{at}: tls = \"{other}\" is not known"),
                    Some("use \"tls\", \"starttls\" or \"plain\" (loopback only)".into()),
                );
                ImapTls::Tls
            }
        };
        if tls == ImapTls::Plain && !is_loopback_host(&a.host) {
            problems.push(
                "tls",
                format!(
                    "{at}: tls = \"plain\" to {} would send the password unencrypted",
                    a.host
                ),
                Some(
                    "use \"tls\" or \"starttls\"; \"plain\" is allowed only to 127.0.0.1/localhost"
                        .into(),
                ),
            );
        }
        if let Some(file) = &a.ca_file
            && let Err(e) = crate::intake::imap::ca_certificates(file)
        {
            problems.push(
                "ca_file",
                format!("{at}: ca_file {e}"),
                Some("name a readable PEM file with the CA certificate(s)".into()),
            );
        }
        let index = i.to_string();
        let key = ["intake", "imap", "accounts", index.as_str(), "password"];
        let source = SecretSource::new(&key, a.password.as_deref(), a.password_file.as_deref());
        let password = source.resolve(problems);
        if raw.enabled && password.is_none() && a.password_file.is_none() {
            problems.push(
                "[[intake.imap.accounts]]",
                format!("{at}: no password"),
                Some(source.hint()),
            );
        }
        let password = password.unwrap_or_default();
        if a.folders.is_empty() {
            problems.push("folders", format!("{at}: no folders to read"), None);
        }
        for f in a
            .folders
            .iter()
            .chain([&a.processed_folder, &a.quarantine_folder])
        {
            if f.is_empty() || f.contains(['"', '\\', '\r', '\n']) {
                problems.push(
                    "folders",
                    format!("{at}: folder name \"{f}\" is not allowed"),
                    None,
                );
            }
        }
        accounts.push(ImapAccount {
            name: a.name.clone(),
            host: a.host.clone(),
            port: a
                .port
                .unwrap_or(if tls == ImapTls::Tls { 993 } else { 143 }),
            tls,
            ca_file: a.ca_file.clone(),
            user: a.user.clone(),
            password,
            folders: a.folders.clone(),
            processed_folder: a.processed_folder.clone(),
            quarantine_folder: a.quarantine_folder.clone(),
            acknowledge: a.acknowledge,
            poll: std::time::Duration::from_secs(a.poll_secs.max(1)),
            max_failures: a.max_failures.max(1),
        });
    }
    let deliver_as = match raw.deliver_as.as_str() {
        "eml" => MailDelivery::Eml,
        "pdf" => MailDelivery::Pdf,
        other => {
            problems.push(
                "deliver_as",
                format!("intake.imap: deliver_as = \"{other}\" is not known"),
                Some("use \"eml\" (the original message) or \"pdf\"".into()),
            );
            MailDelivery::Eml
        }
    };
    ImapSettings {
        enabled: raw.enabled,
        deliver_as,
        max_message_bytes: raw.max_message_mb * 1024 * 1024,
        timeout: std::time::Duration::from_secs(raw.timeout_secs.max(1)),
        accounts,
    }
}

// ----------------------------------------------------------------------------------------------
// Outgoing e-mail (`[outgoing]`, `[outgoing.smtp]`, `[outgoing.acknowledgements]`,
// `[outgoing.digest]`).

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOutgoing {
    enabled: bool,
    from_address: String,
    from_name: String,
    max_attempts: u32,
    retry_base_secs: u64,
    retry_max_secs: u64,
    smtp: RawSmtp,
    acknowledgements: RawAcknowledgements,
    digest: RawDigest,
}

impl Default for RawOutgoing {
    fn default() -> Self {
        Self {
            enabled: false,
            from_address: String::new(),
            from_name: "Poststelle".into(),
            max_attempts: 8,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            smtp: RawSmtp::default(),
            acknowledgements: RawAcknowledgements::default(),
            digest: RawDigest::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: String,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout_secs: u64,
}

impl Default for RawSmtp {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: None,
            tls: "starttls".into(),
            user: None,
            password: None,
            password_file: None,
            ca_file: None,
            timeout_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAcknowledgements {
    enabled: bool,
    max_per_sender_per_hour: u32,
    max_per_sender_per_day: u32,
}

impl Default for RawAcknowledgements {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_sender_per_hour: 3,
            max_per_sender_per_day: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDigest {
    enabled: bool,
    time: String,
}

impl Default for RawDigest {
    fn default() -> Self {
        Self {
            enabled: true,
            time: "07:00".into(),
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain connect, then `STARTTLS` (required; usually port 587).
    StartTls,
    /// No encryption: only allowed to a loopback host (tests, a local relay).
    Plain,
}

/// SMTP server settings.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Host name (also the name checked in the server's certificate).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// User for SMTP AUTH; none: no AUTH.
    pub user: Option<String>,
    /// Password for SMTP AUTH (from env or `password_file`).
    pub password: Secret,
    /// Extra CA certificate (PEM) trusted besides the built-in roots, e.g. the town's own CA.
    pub ca_file: Option<PathBuf>,
    /// Connect and command timeout.
    pub timeout: std::time::Duration,
}

/// Acknowledgement (Eingangsbestätigung) settings.
#[derive(Debug, Clone)]
pub struct AcknowledgementSettings {
    /// Whether acknowledgements are sent at all (accounts can switch them off one by one).
    pub enabled: bool,
    /// At most this many acknowledgements to one sender per hour.
    pub max_per_sender_per_hour: u32,
    /// At most this many acknowledgements to one sender per day.
    pub max_per_sender_per_day: u32,
}

/// Daily digest settings.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// Whether the daemon sends daily digests.
    pub enabled: bool,
    /// Local time of day (Europe/Berlin): hour.
    pub hour: u32,
    /// Local time of day (Europe/Berlin): minute.
    pub minute: u32,
}

/// Outgoing e-mail settings.
#[derive(Debug, Clone)]
pub struct OutgoingSettings {
    /// Whether the daemon sends e-mail at all.
    pub enabled: bool,
    /// Sender address of every mail.
    pub from_address: String,
    /// Sender display name.
    pub from_name: String,
    /// Send attempts before a mail is given up (state `dead`).
    pub max_attempts: u32,
    /// First retry delay (doubles per attempt).
    pub retry_base: std::time::Duration,
    /// Longest retry delay.
    pub retry_max: std::time::Duration,
    /// The SMTP server.
    pub smtp: SmtpSettings,
    /// Acknowledgements.
    pub acknowledgements: AcknowledgementSettings,
    /// Daily digests.
    pub digest: DigestSettings,
}

/// True for a syntactically valid e-mail address (`local@domain`).
pub fn valid_address(a: &str) -> bool {
    a.parse::<lettre::Address>().is_ok()
}

fn outgoing_settings(raw: RawOutgoing, problems: &mut Problems) -> OutgoingSettings {
    let tls = match raw.smtp.tls.as_str() {
        "tls" => SmtpTls::Tls,
        "starttls" => SmtpTls::StartTls,
        "plain" => SmtpTls::Plain,
        other => {
            problems.push(
                "tls",
                format!("outgoing.smtp.tls \"{other}\" is not one of tls, starttls, plain"),
                suggest(other, &["tls", "starttls", "plain"]),
            );
            SmtpTls::StartTls
        }
    };
    if raw.enabled {
        if !valid_address(&raw.from_address) {
            problems.push(
                "from_address",
                format!(
                    "outgoing.from_address \"{}\" is not an e-mail address",
                    raw.from_address
                ),
                Some("e.g. poststelle@musterstadt.de".into()),
            );
        }
        if tls == SmtpTls::Plain && !is_loopback_host(&raw.smtp.host) {
            problems.push(
                "tls",
                format!(
                    "outgoing.smtp.tls = \"plain\" is only allowed to a loopback host, not \"{}\"",
                    raw.smtp.host
                ),
                Some("use \"starttls\" or \"tls\"".into()),
            );
        }
    }
    let key = ["outgoing", "smtp", "password"];
    let source = SecretSource::new(
        &key,
        raw.smtp.password.as_deref(),
        raw.smtp.password_file.as_deref(),
    );
    // A switched-off sender reads no secret.
    let password = if raw.enabled {
        source.resolve(problems)
    } else {
        None
    };
    if raw.enabled
        && raw.smtp.user.is_some()
        && password.is_none()
        && raw.smtp.password_file.is_none()
    {
        problems.push(
            "[outgoing.smtp]",
            "outgoing.smtp.user is set but no password is given",
            Some(source.hint()),
        );
    }
    let password = password.unwrap_or_default();
    let (hour, minute) = match raw
        .digest
        .time
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
    {
        Some((h, m)) if h < 24 && m < 60 => (h, m),
        _ => {
            problems.push(
                "time",
                format!(
                    "outgoing.digest.time \"{}\" is not a time of day HH:MM",
                    raw.digest.time
                ),
                Some("e.g. \"07:00\"".into()),
            );
            (7, 0)
        }
    };
    let port = raw.smtp.port.unwrap_or(match tls {
        SmtpTls::Tls => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::Plain => 25,
    });
    OutgoingSettings {
        enabled: raw.enabled,
        from_address: raw.from_address,
        from_name: raw.from_name,
        max_attempts: raw.max_attempts.max(1),
        retry_base: std::time::Duration::from_secs(raw.retry_base_secs.max(1)),
        retry_max: std::time::Duration::from_secs(raw.retry_max_secs.max(1)),
        smtp: SmtpSettings {
            host: raw.smtp.host,
            port,
            tls,
            user: raw.smtp.user,
            password,
            ca_file: raw.smtp.ca_file,
            timeout: std::time::Duration::from_secs(raw.smtp.timeout_secs.max(1)),
        },
        acknowledgements: AcknowledgementSettings {
            enabled: raw.acknowledgements.enabled,
            max_per_sender_per_hour: raw.acknowledgements.max_per_sender_per_hour,
            max_per_sender_per_day: raw.acknowledgements.max_per_sender_per_day,
        },
        digest: DigestSettings {
            enabled: raw.digest.enabled,
            hour,
            minute,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::mayan::{MayanAuth, MayanRef, MayanSettings};

    const MINIMAL: &str = r#"
[municipality]
name = "Teststadt"

[review]
mailbox = "poststelle"
name = "Poststelle"

[[mailboxes]]
id = "63"
name = "Bauordnung"
"#;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Settings::parse(Path::new("test.toml"), text, &env)
    }

    const IMAP: &str = r#"
[intake.imap]
enabled = true

[[intake.imap.accounts]]
name = "poststelle"
host = "HOST"
tls = "TLS"
user = "poststelle@musterstadt.de"
"#;

    fn imap_config(host: &str, tls: &str) -> String {
        format!(
            "{MINIMAL}{}",
            IMAP.replace("HOST", host).replace("TLS", tls)
        )
    }

    #[test]
    fn imap_plain_is_refused_except_to_loopback_and_password_comes_from_env() {
        let pw = [("POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__PASSWORD", "s3cret")];
        let e = parse(&imap_config("imap.musterstadt.de", "plain"), &pw).expect_err("plain");
        assert!(e.to_string().contains("unencrypted"), "{e}");
        let s = parse(&imap_config("127.0.0.1", "plain"), &pw).expect("loopback");
        assert_eq!(s.imap.accounts[0].tls, ImapTls::Plain);
        assert_eq!(s.imap.accounts[0].port, 143);
        assert_eq!(s.imap.accounts[0].password.expose(), "s3cret");
        assert!(!format!("{:?}", s.imap).contains("s3cret"));
        let s = parse(&imap_config("imap.musterstadt.de", "tls"), &pw).expect("tls");
        assert_eq!(s.imap.accounts[0].port, 993);
        let e = parse(&imap_config("imap.musterstadt.de", "tls"), &[]).expect_err("no pw");
        assert!(e.to_string().contains("no password"), "{e}");
        let in_file = imap_config("imap.musterstadt.de", "tls") + "password = \"x\"\n";
        let e = parse(&in_file, &pw).expect_err("password in file");
        assert!(
            e.to_string().contains("must not stand in the config file"),
            "{e}"
        );
    }

    #[test]
    fn mail_delivery_form_defaults_to_eml_and_is_validated() {
        let s = parse(MINIMAL, &[]).expect("default");
        assert_eq!(s.imap.deliver_as, MailDelivery::Eml);
        let env = [("POSTSTELLE__INTAKE__IMAP__DELIVER_AS", "pdf")];
        let s = parse(MINIMAL, &env).expect("pdf from env");
        assert_eq!(s.imap.deliver_as, MailDelivery::Pdf);
        let text = format!("{MINIMAL}\n[intake.imap]\ndeliver_as = \"docx\"\n");
        let e = parse(&text, &[]).expect_err("unknown form");
        assert!(
            e.to_string().contains("deliver_as = \"docx\" is not known"),
            "{e}"
        );
    }

    #[test]
    fn imap_ca_file_must_be_readable_and_hold_a_certificate() {
        let pw = [("POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__PASSWORD", "s3cret")];
        let dir = tempfile::tempdir().expect("tempdir");
        let with = |path: &Path| {
            imap_config("imap.musterstadt.de", "tls")
                + &format!("ca_file = {:?}\n", path.display().to_string())
        };
        let missing = dir.path().join("missing.pem");
        let e = parse(&with(&missing), &pw).expect_err("missing");
        assert!(e.to_string().contains("ca_file"), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let e = parse(&with(&empty), &pw).expect_err("empty");
        assert!(e.to_string().contains("contains no certificate"), "{e}");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = parse(&with(&broken), &pw).expect_err("broken");
        assert!(e.to_string().contains("broken.pem"), "{e}");
        // Any base64 DER body is accepted by the PEM reader; rustls checks it on connect.
        let good = dir.path().join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let s = parse(&with(&good), &pw).expect("good");
        assert_eq!(s.imap.accounts[0].ca_file.as_deref(), Some(good.as_path()));
        let s = parse(&imap_config("imap.musterstadt.de", "tls"), &pw).expect("none");
        assert_eq!(s.imap.accounts[0].ca_file, None);
    }

    #[test]
    fn mailbox_addresses_are_lower_case_and_unique() {
        let text = format!(
            "{MINIMAL}addresses = [\"Bauordnung@Musterstadt.de\"]\n\n[[mailboxes]]\nid = \"22\"\nname = \"Steueramt\"\naddresses = [\"bauordnung@musterstadt.de\"]\n"
        );
        let e = parse(&text, &[]).expect_err("twice");
        assert!(e.to_string().contains("more than one mailbox"), "{e}");
        let ok = format!("{MINIMAL}addresses = [\"Bauordnung@Musterstadt.de\"]\n");
        let s = parse(&ok, &[]).expect("valid");
        assert_eq!(s.mailboxes[0].addresses, vec!["bauordnung@musterstadt.de"]);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let s = parse(MINIMAL, &[]).expect("valid");
        assert_eq!(s.mailboxes.len(), 1);
        assert_eq!(s.mailboxes[0].target, "dms");
        assert_eq!(s.extract.language, "deu");
    }

    #[test]
    fn env_overrides_any_key_including_array_elements() {
        let s = parse(
            MINIMAL,
            &[
                ("POSTSTELLE__EXTRACT__DPI", "200"),
                ("POSTSTELLE__MAILBOXES__0__NAME", "Bauaufsicht"),
                ("POSTSTELLE__INTAKE__HOT_FOLDER__INBOX", "/tmp/in"),
                ("POSTSTELLE__API__TOKEN", "s3cret"),
            ],
        )
        .expect("valid");
        assert_eq!(s.extract.dpi, 200);
        assert_eq!(s.mailboxes[0].name, "Bauaufsicht");
        assert_eq!(s.hot_folder.inbox, PathBuf::from("/tmp/in"));
        assert_eq!(s.api.token.expose(), "s3cret");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secret leaked into Debug"
        );
    }

    #[test]
    fn typo_is_reported_with_line_and_suggestion() {
        let text = MINIMAL.replace(
            "name = \"Teststadt\"",
            "name = \"Teststadt\"\nadress_markers = []",
        );
        let err = parse(&text, &[]).expect_err("typo must fail");
        let p = &err.0[0];
        assert_eq!(p.line, Some(4));
        assert!(p.message.contains("adress_markers"), "{p}");
        assert_eq!(p.hint.as_deref(), Some("did you mean \"address_markers\"?"));
    }

    #[test]
    fn token_in_file_is_refused() {
        let text = format!("{MINIMAL}\n[api]\ntoken = \"abc\"\n");
        let err = parse(&text, &[]).expect_err("must refuse");
        assert!(
            err.to_string()
                .contains("must not stand in the config file")
        );
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn unknown_target_names_line_and_suggests() {
        let text = MINIMAL.replace(
            "name = \"Bauordnung\"",
            "name = \"Bauordnung\"\ntarget = \"dsm\"",
        );
        let err = parse(&text, &[]).expect_err("unknown target");
        let p = &err.0[0];
        assert_eq!(p.line, Some(12));
        assert_eq!(p.hint.as_deref(), Some("did you mean \"dms\"?"));
    }

    #[test]
    fn einvoice_routes_are_validated_against_mailboxes() {
        let ok = parse(
            &format!("{MINIMAL}\n[einvoice]\nroutes = {{ \"05315000-abc12-67\" = \"63\" }}\n"),
            &[],
        )
        .expect("valid");
        assert_eq!(
            ok.einvoice
                .routes
                .get("05315000-ABC12-67")
                .map(|m| m.as_str()),
            Some("63")
        );
        let bad = parse(
            &format!(
                "{MINIMAL}\n[einvoice]\nroutes = {{ \"05315000-12345-67\" = \"64\", \"kein-id\" = \"63\" }}\n"
            ),
            &[],
        )
        .expect_err("unknown mailbox and bad id");
        let text = bad.to_string();
        assert!(text.contains("unknown mailbox \"64\""), "{text}");
        assert!(text.contains("\"kein-id\" is not a Leitweg-ID"), "{text}");
        let env = parse(
            MINIMAL,
            &[("POSTSTELLE__EINVOICE__ROUTES__991-12345-06", "63")],
        )
        .expect("env override");
        assert_eq!(
            env.einvoice.routes.get("991-12345-06").map(|m| m.as_str()),
            Some("63")
        );
        assert!(!is_leitweg_id("05315000-12345-6"));
        assert!(is_leitweg_id("991-33333TEST-33"));
    }

    const MAYAN: &str = r#"
[deliver]
default_target = "mayan"

[deliver.targets.mayan]
kind = "mayan"
url = "https://mayan.example.org/"
user = "poststelle"
document_type = "Eingangspost"
cabinets = { "63" = "Bauordnung 63", "51" = 7 }
"#;

    #[test]
    fn mayan_target_with_password_from_env_and_default_cabinets() {
        let text = format!("{MINIMAL}{MAYAN}");
        let s = parse(
            &text,
            &[("POSTSTELLE__DELIVER__TARGETS__MAYAN__PASSWORD", "geheim")],
        )
        .expect("valid");
        let Some(m) = s.deliver.targets["mayan"].get::<MayanSettings>() else {
            panic!("not a Mayan target");
        };
        assert_eq!(m.url, "https://mayan.example.org");
        assert_eq!(
            m.auth,
            MayanAuth::Basic {
                user: "poststelle".into(),
                password: Secret::new("geheim")
            }
        );
        assert_eq!(m.document_type, MayanRef::Label("Eingangspost".into()));
        let id = |s: &str| MailboxId::parse(s).expect("id");
        assert_eq!(
            m.cabinets[&id("63")],
            MayanRef::Label("Bauordnung 63".into())
        );
        assert_eq!(m.cabinets[&id("51")], MayanRef::Id(7));
        // The review mailbox files into the default target too: a cabinet named after it.
        assert_eq!(
            m.cabinets[&id("poststelle")],
            MayanRef::Label("Poststelle".into())
        );
        assert!(m.create_cabinets);
        assert!(!format!("{s:?}").contains("geheim"));

        // A password that reads like a number stays the exact string.
        let s = parse(
            &text,
            &[("POSTSTELLE__DELIVER__TARGETS__MAYAN__PASSWORD", "1.50")],
        )
        .expect("numeric-looking password");
        let Some(m) = s.deliver.targets["mayan"].get::<MayanSettings>() else {
            panic!("not a Mayan target");
        };
        assert!(
            matches!(&m.auth, MayanAuth::Basic { password, .. } if password.expose() == "1.50")
        );
    }

    #[test]
    fn mayan_password_in_file_is_refused_and_missing_credentials_explained() {
        let text = format!("{MINIMAL}{MAYAN}password = \"geheim\"\n");
        let err = parse(&text, &[]).expect_err("must refuse");
        assert!(
            err.to_string()
                .contains("deliver.targets.mayan.password must not stand")
        );
        assert!(!err.to_string().contains("geheim"));

        let err = parse(&format!("{MINIMAL}{MAYAN}"), &[]).expect_err("no credentials");
        assert!(
            err.to_string().contains("no credentials for Mayan EDMS"),
            "{err}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").expect("write");
        let text = format!("{MINIMAL}{MAYAN}token_file = \"{}\"\n", token.display());
        let s = parse(&text, &[]).expect("token file");
        let Some(m) = s.deliver.targets["mayan"].get::<MayanSettings>() else {
            panic!("not a Mayan target");
        };
        assert_eq!(m.auth, MayanAuth::Token(Secret::new("t0ken")));
    }

    #[test]
    fn outgoing_password_only_from_env_and_plain_only_to_loopback() {
        let text = format!(
            "{MINIMAL}\n[outgoing]\nenabled = true\nfrom_address = \"poststelle@teststadt.de\"\n\
             [outgoing.smtp]\nhost = \"mail.teststadt.de\"\ntls = \"plain\"\nuser = \"u\"\npassword = \"pw1\"\n"
        );
        let err = parse(&text, &[]).expect_err("must refuse");
        let msg = err.to_string();
        assert!(
            msg.contains("outgoing.smtp.password must not stand in the config file"),
            "{msg}"
        );
        assert!(msg.contains("only allowed to a loopback host"), "{msg}");
        assert!(!msg.contains("pw1"), "{msg}");
        let text = text.replace("password = \"pw1\"\n", "");
        let s = parse(
            &text,
            &[
                ("POSTSTELLE__OUTGOING__SMTP__HOST", "127.0.0.1"),
                ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "pw2"),
                (
                    "POSTSTELLE__MAILBOXES__0__DIGEST_TO",
                    "[\"bau@teststadt.de\"]",
                ),
            ],
        )
        .expect("valid");
        assert_eq!(s.outgoing.smtp.password.expose(), "pw2");
        assert_eq!(s.outgoing.smtp.port, 25);
        assert_eq!(s.mailboxes[0].digest_to, ["bau@teststadt.de"]);
        assert!(
            !format!("{s:?}").contains("pw2"),
            "secret leaked into Debug"
        );
        let bad = parse(
            &text,
            &[
                ("POSTSTELLE__OUTGOING__SMTP__HOST", "127.0.0.1"),
                ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "pw2"),
                ("POSTSTELLE__MAILBOXES__0__DIGEST_TO", "[\"kein-at\"]"),
                ("POSTSTELLE__OUTGOING__DIGEST__TIME", "\"25:00\""),
            ],
        )
        .expect_err("invalid");
        let msg = bad.to_string();
        assert!(
            msg.contains("\"kein-at\" is not an e-mail address"),
            "{msg}"
        );
        assert!(msg.contains("not a time of day"), "{msg}");
    }

    /// The one secret rule, for a delivery target, an IMAP account and the SMTP server alike:
    /// the environment wins over `*_file`, the file is read without its final line break, and
    /// the literal in the config file is refused.
    #[test]
    fn one_secret_rule_for_targets_imap_and_smtp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("{name} from file\n")).expect("write");
            p.display().to_string()
        };
        let (target, imap, smtp) = (file("target"), file("imap"), file("smtp"));
        let text = format!(
            "{MINIMAL}\n[deliver]\ndefault_target = \"pl\"\n\n[deliver.targets.pl]\nkind = \"paperless\"\nbase_url = \"http://127.0.0.1:9\"\n\
             token_file = {target:?}\n\n\
             [intake.imap]\nenabled = true\n\n[[intake.imap.accounts]]\nname = \"a\"\nhost = \"127.0.0.1\"\n\
             tls = \"plain\"\nuser = \"u\"\npassword_file = {imap:?}\n\n\
             [outgoing]\nenabled = true\nfrom_address = \"poststelle@teststadt.de\"\n\n\
             [outgoing.smtp]\nhost = \"127.0.0.1\"\ntls = \"plain\"\nuser = \"u\"\npassword_file = {smtp:?}\n"
        );
        let secrets = |s: &Settings| {
            let pl = s.deliver.targets["pl"]
                .get::<crate::deliver::paperless::PaperlessSettings>()
                .expect("paperless");
            (
                pl.token.expose().to_string(),
                s.imap.accounts[0].password.expose().to_string(),
                s.outgoing.smtp.password.expose().to_string(),
            )
        };
        let from_files = parse(&text, &[]).expect("files only");
        assert_eq!(
            secrets(&from_files),
            (
                "target from file".to_string(),
                "imap from file".to_string(),
                "smtp from file".to_string()
            )
        );
        let env = [
            ("POSTSTELLE__DELIVER__TARGETS__PL__TOKEN", "target env"),
            (
                "POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__PASSWORD",
                "imap env",
            ),
            ("POSTSTELLE__OUTGOING__SMTP__PASSWORD", "smtp env"),
        ];
        let both = parse(&text, &env).expect("env and files");
        assert_eq!(
            secrets(&both),
            (
                "target env".to_string(),
                "imap env".to_string(),
                "smtp env".to_string()
            ),
            "the environment wins"
        );
        assert!(!format!("{both:?}").contains(" env"), "secrets redacted");
        let literal = text
            .replace("token_file =", "token = \"t1\"\ntoken_file =")
            .replace(
                "user = \"u\"\npassword_file",
                "user = \"u\"\npassword = \"p1\"\npassword_file",
            );
        let err = parse(&literal, &env).expect_err("literals refused");
        let msg = err.to_string();
        for key in [
            "deliver.targets.pl.token",
            "intake.imap.accounts.0.password",
            "outgoing.smtp.password",
        ] {
            assert!(
                msg.contains(&format!("{key} must not stand in the config file")),
                "{key}: {msg}"
            );
        }
        assert!(!msg.contains("t1") && !msg.contains("p1"), "{msg}");
    }
}
