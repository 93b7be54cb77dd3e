//! The `[intake]` section: `[intake.hot_folder]`, `[intake.upload]` and `[intake.imap]` with its
//! `[[intake.imap.accounts]]`. Raw structs (with their defaults) and their validation.

use crate::config::check::is_loopback_host;
use crate::config::problem::Problems;
use crate::config::secret::{Secret, SecretSource};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[intake]` as it stands in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawIntake {
    hot_folder: RawHotFolder,
    upload: RawUpload,
    imap: RawImap,
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
    batch_folder: String,
    separator_barcode: String,
    drop_blank_pages: bool,
    split_min_confidence: f64,
    station: String,
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
            batch_folder: "stapel".into(),
            separator_barcode: "POSTSTELLE-TRENNBLATT".into(),
            drop_blank_pages: true,
            split_min_confidence: 0.7,
            station: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpload {
    max_file_mb: u64,
    max_concurrent: usize,
    timeout_secs: u64,
}

impl Default for RawUpload {
    fn default() -> Self {
        Self {
            max_file_mb: 100,
            max_concurrent: 4,
            timeout_secs: 300,
        }
    }
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
    /// Only from the environment (refused in the file).
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
    #[serde(default = "default_retry_base")]
    retry_base_secs: u64,
    #[serde(default = "default_retry_max")]
    retry_max_secs: u64,
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
fn default_retry_base() -> u64 {
    1
}
fn default_retry_max() -> u64 {
    3600
}

/// The validated `[intake]` section.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    /// Scanner hot folder.
    pub hot_folder: HotFolderSettings,
    /// Uploads over the API and the web desk.
    pub upload: UploadSettings,
    /// IMAP e-mail intake.
    pub imap: ImapSettings,
}

/// Upload settings (`[intake.upload]`).
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Largest upload accepted, in bytes; a larger one is refused (413) while it streams in.
    pub max_bytes: u64,
    /// Uploads received at once at most; further ones wait for a slot (within `timeout`).
    pub max_concurrent: usize,
    /// Time limit of one upload request, the wait for a slot included.
    pub timeout: Duration,
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
    pub settle: Duration,
    /// Periodic rescan (catches events a watcher misses, e.g. on network shares).
    pub rescan: Duration,
    /// Largest file taken, in bytes.
    pub max_file_bytes: u64,
    /// The subfolder of the inbox for stacks (`batch_folder`, default `stapel`): a file there
    /// is a stack of letters and is split; `None` when switched off (`batch_folder = ""`).
    pub batch_folder: Option<PathBuf>,
    /// Value of a separator sheet's barcode (Code 128 or QR).
    pub separator_barcode: String,
    /// Blank pages of a stack are left out of the delivered PDFs.
    pub drop_blank_pages: bool,
    /// A split decided with less confidence than this goes to review (0..1).
    pub split_min_confidence: f64,
    /// The scan station the folder's scanner stands at (`station`, e.g. `Poststelle EG`), for
    /// the capture record; `None` when not configured.
    pub station: Option<String>,
}

/// IMAP intake settings.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// Whether the daemon polls the accounts.
    pub enabled: bool,
    /// Largest message taken (RFC822.SIZE), in bytes; larger ones go to quarantine.
    pub max_message_bytes: u64,
    /// Time limit of one IMAP command (connect, login, fetch, ...).
    pub timeout: Duration,
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
    pub poll: Duration,
    /// Failed attempts before a message goes to quarantine.
    pub max_failures: u32,
    /// Delay after a message's first failed attempt (doubling, with jitter).
    pub retry_base: Duration,
    /// Longest delay between attempts at one message.
    pub retry_max: Duration,
}

/// Validates `[intake]`.
pub fn validate(raw: RawIntake, problems: &mut Problems) -> IntakeSettings {
    let h = raw.hot_folder;
    let batch = batch_folder(&h.inbox, &h.batch_folder, problems);
    IntakeSettings {
        hot_folder: HotFolderSettings {
            enabled: h.enabled,
            inbox: h.inbox,
            processed: h.processed,
            quarantine: h.quarantine,
            settle: Duration::from_millis(h.settle_ms),
            rescan: Duration::from_secs(h.rescan_secs.max(1)),
            max_file_bytes: h.max_file_mb * 1024 * 1024,
            batch_folder: batch,
            separator_barcode: h.separator_barcode,
            drop_blank_pages: h.drop_blank_pages,
            split_min_confidence: if (0.0..=1.0).contains(&h.split_min_confidence) {
                h.split_min_confidence
            } else {
                problems.push_key(
                    &["intake", "hot_folder", "split_min_confidence"],
                    "intake.hot_folder.split_min_confidence must be between 0 and 1".to_string(),
                    None,
                );
                0.7
            },
            station: Some(h.station.trim().to_string()).filter(|s| !s.is_empty()),
        },
        upload: UploadSettings {
            max_bytes: raw.upload.max_file_mb * 1024 * 1024,
            max_concurrent: raw.upload.max_concurrent.max(1),
            timeout: Duration::from_secs(raw.upload.timeout_secs.max(1)),
        },
        imap: validate_imap(raw.imap, problems),
    }
}

/// The stacks' folder inside the inbox: one plain folder name (no path), or none.
fn batch_folder(inbox: &std::path::Path, name: &str, problems: &mut Problems) -> Option<PathBuf> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if name.contains(['/', '\\']) || name.starts_with('.') {
        problems.push_key(
            &["intake", "hot_folder", "batch_folder"],
            format!(
                "intake.hot_folder.batch_folder: \"{name}\" must be a folder name inside the inbox"
            ),
            None,
        );
        return None;
    }
    Some(inbox.join(name))
}

fn validate_imap(raw: RawImap, problems: &mut Problems) -> ImapSettings {
    let mut accounts = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, a) in raw.accounts.into_iter().enumerate() {
        let at = format!("intake.imap.accounts[{i}] ({})", a.name);
        let index = i.to_string();
        let table = ["intake", "imap", "accounts", index.as_str()];
        if a.name.is_empty() || !names.insert(a.name.clone()) {
            problems.push_key(
                &[&table[..], &["name"]].concat(),
                format!("{at}: name is empty or appears twice"),
                None,
            );
        }
        let tls = match a.tls.as_str() {
            "tls" => ImapTls::Tls,
            "starttls" => ImapTls::StartTls,
            "plain" => ImapTls::Plain,
            other => {
                problems.push_in(
                    &table,
                    "tls",
                    format!("{at}: tls = \"{other}\" is not known"),
                    Some("use \"tls\", \"starttls\" or \"plain\" (loopback only)".into()),
                );
                ImapTls::Tls
            }
        };
        if tls == ImapTls::Plain && !is_loopback_host(&a.host) {
            problems.push_in(
                &table,
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
            && let Err(e) = super::imap::ca_certificates(file)
        {
            problems.push_in(
                &table,
                "ca_file",
                format!("{at}: ca_file {e}"),
                Some("name a readable PEM file with the CA certificate(s)".into()),
            );
        }
        let key = [&table[..], &["password"]].concat();
        let source = SecretSource::new(&key, a.password.as_deref(), a.password_file.as_deref());
        let password = source.resolve(problems);
        if raw.enabled && password.is_none() && a.password_file.is_none() {
            problems.push_key(&table, format!("{at}: no password"), Some(source.hint()));
        }
        if a.folders.is_empty() {
            problems.push_in(&table, "folders", format!("{at}: no folders to read"), None);
        }
        for f in a
            .folders
            .iter()
            .chain([&a.processed_folder, &a.quarantine_folder])
        {
            if f.is_empty() || f.contains(['"', '\\', '\r', '\n']) {
                problems.push_in(
                    &table,
                    "folder",
                    format!("{at}: folder name \"{f}\" is not allowed"),
                    None,
                );
            }
        }
        accounts.push(ImapAccount {
            name: a.name,
            host: a.host,
            port: a
                .port
                .unwrap_or(if tls == ImapTls::Tls { 993 } else { 143 }),
            tls,
            ca_file: a.ca_file,
            user: a.user,
            password: password.unwrap_or_default(),
            folders: a.folders,
            processed_folder: a.processed_folder,
            quarantine_folder: a.quarantine_folder,
            acknowledge: a.acknowledge,
            poll: Duration::from_secs(a.poll_secs.max(1)),
            max_failures: a.max_failures.max(1),
            retry_base: Duration::from_secs(a.retry_base_secs),
            retry_max: Duration::from_secs(a.retry_max_secs.max(1)),
        });
    }
    let deliver_as = match raw.deliver_as.as_str() {
        "eml" => MailDelivery::Eml,
        "pdf" => MailDelivery::Pdf,
        other => {
            problems.push_key(
                &["intake", "imap", "deliver_as"],
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
        timeout: Duration::from_secs(raw.timeout_secs.max(1)),
        accounts,
    }
}
