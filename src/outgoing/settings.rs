//! The `[outgoing]` section and its `[outgoing.smtp]`, `[outgoing.acknowledgements]` and
//! `[outgoing.digest]` tables. The SMTP password follows the one secret rule of
//! [`crate::config::secret`] (`POSTSTELLE__OUTGOING__SMTP__PASSWORD` or `password_file`).

use crate::config::check::is_loopback_host;
use crate::config::problem::{Problems, suggest};
use crate::config::secret::{Secret, SecretSource};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[outgoing]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutgoing {
    enabled: bool,
    from_address: String,
    from_name: String,
    desk_url: Option<String>,
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
            desk_url: None,
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
    templates: std::collections::BTreeMap<String, String>,
}

impl Default for RawAcknowledgements {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_sender_per_hour: 3,
            max_per_sender_per_day: 10,
            templates: Default::default(),
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
    pub timeout: Duration,
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
    /// The text: a default and per-mailbox overrides.
    pub templates: AckTemplates,
}

/// The acknowledgement's text (the body), with placeholders ([`PLACEHOLDERS`]): a default for
/// every e-mail and overrides per mailbox (chosen by the mailbox the e-mail was routed to).
#[derive(Debug, Clone)]
pub struct AckTemplates {
    /// The default text (`templates.default`, else [`DEFAULT_TEMPLATE`]).
    pub default: String,
    /// Mailbox id -> text.
    pub per_mailbox: std::collections::BTreeMap<String, String>,
}

impl Default for AckTemplates {
    fn default() -> Self {
        Self {
            default: DEFAULT_TEMPLATE.to_string(),
            per_mailbox: Default::default(),
        }
    }
}

impl AckTemplates {
    /// The text for an e-mail routed to `mailbox` (`None`: in review, or not decided), and the
    /// name of the template (`default` or the mailbox id).
    pub fn for_mailbox(&self, mailbox: Option<&str>) -> (&str, &str) {
        match mailbox.and_then(|m| self.per_mailbox.get_key_value(m)) {
            Some((id, t)) => (id.as_str(), t.as_str()),
            None => ("default", self.default.as_str()),
        }
    }
}

/// The placeholders of an acknowledgement template, with what they stand for.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("anrede", "„Guten Tag <Name>,“"),
    ("eingang", "Datum und Uhrzeit des Eingangs (deutsche Zeit)"),
    ("vorgangsnummer", "die Vorgangsnummer PS-…"),
    ("betreff", "der Betreff der E-Mail"),
    ("postfach", "das Postfach, dem die E-Mail zugeordnet ist"),
    ("stadt", "der Name der Stadt"),
    ("absender", "der Name der Poststelle (from_name)"),
    ("kennung", "die interne Kennung des Dokuments"),
];

/// The text of the acknowledgement unless configured.
pub const DEFAULT_TEMPLATE: &str = "{anrede}

wir bestätigen den Eingang Ihrer E-Mail bei der Stadtverwaltung {stadt}.

Eingegangen am:  {eingang} (deutsche Zeit)
Betreff:         {betreff}
Vorgangsnummer:  {vorgangsnummer}

Ihre Nachricht wird an die zuständige Stelle weitergeleitet und dort bearbeitet.
Bitte geben Sie die Vorgangsnummer an, wenn Sie sich zu dieser Nachricht an uns wenden.

Diese Bestätigung wurde automatisch erstellt. Bitte antworten Sie nicht auf diese E-Mail.

Mit freundlichen Grüßen
{absender}
Stadtverwaltung {stadt}

(Interne Kennung: {kennung})
";

/// Checks an acknowledgement template: every placeholder known, `{eingang}` and
/// `{vorgangsnummer}` present. `Err` with the German reason.
pub fn check_ack_template(t: &str) -> Result<(), String> {
    let allowed = || {
        PLACEHOLDERS
            .iter()
            .map(|(p, _)| format!("{{{p}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "eine geschweifte Klammer „{{“ ist nicht geschlossen; erlaubt sind {}",
                allowed()
            ));
        };
        let name = &after[..end];
        if !PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
            return Err(format!(
                "unbekannter Platzhalter {{{name}}}; erlaubt sind {}",
                allowed()
            ));
        }
        rest = &after[end + 1..];
    }
    for needed in ["eingang", "vorgangsnummer"] {
        if !t.contains(&format!("{{{needed}}}")) {
            return Err(format!(
                "der Platzhalter {{{needed}}} fehlt; die Bestätigung muss Eingang (Datum und \
                 Uhrzeit) und Vorgangsnummer nennen"
            ));
        }
    }
    Ok(())
}

/// Fills an acknowledgement template; `value` gives each placeholder's text.
pub fn fill_ack_template(t: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(t.len() + 64);
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&value(&after[..end]));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
    /// The web desk's address as staff reach it (e.g. `https://poststelle.musterstadt.local`):
    /// digests link to the Eingang and the Prüfkorb there. None: no links.
    pub desk_url: Option<String>,
    /// Send attempts before a mail is given up (state `dead`).
    pub max_attempts: u32,
    /// First retry delay (doubles per attempt).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
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

/// Validates `[outgoing.acknowledgements.templates]`: every text's placeholders (German
/// problems naming the template). Whether the mailbox ids exist is checked across sections.
fn ack_templates(
    raw: std::collections::BTreeMap<String, String>,
    problems: &mut Problems,
) -> AckTemplates {
    let mut out = AckTemplates::default();
    for (name, text) in raw {
        if let Err(reason) = check_ack_template(&text) {
            problems.push_key(
                &["outgoing", "acknowledgements", "templates", &name],
                format!("outgoing.acknowledgements.templates.{name}: {reason}"),
                Some(
                    "z. B. \"{anrede} … Eingegangen am {eingang}, Vorgangsnummer {vorgangsnummer} …\""
                        .to_string(),
                ),
            );
            continue;
        }
        if name == "default" {
            out.default = text;
        } else {
            out.per_mailbox.insert(name, text);
        }
    }
    out
}

/// Validates `[outgoing]` and its tables.
pub fn validate(raw: RawOutgoing, problems: &mut Problems) -> OutgoingSettings {
    let tls = match raw.smtp.tls.as_str() {
        "tls" => SmtpTls::Tls,
        "starttls" => SmtpTls::StartTls,
        "plain" => SmtpTls::Plain,
        other => {
            problems.push_key(
                &["outgoing", "smtp", "tls"],
                format!("outgoing.smtp.tls \"{other}\" is not one of tls, starttls, plain"),
                suggest(other, &["tls", "starttls", "plain"]),
            );
            SmtpTls::StartTls
        }
    };
    if raw.enabled {
        if !valid_address(&raw.from_address) {
            problems.push_key(
                &["outgoing", "from_address"],
                format!(
                    "outgoing.from_address \"{}\" is not an e-mail address",
                    raw.from_address
                ),
                Some("e.g. poststelle@musterstadt.de".into()),
            );
        }
        if tls == SmtpTls::Plain && !is_loopback_host(&raw.smtp.host) {
            problems.push_key(
                &["outgoing", "smtp", "tls"],
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
        problems.push_key(
            &["outgoing", "smtp", "user"],
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
            problems.push_key(
                &["outgoing", "digest", "time"],
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
    let desk_url = raw
        .desk_url
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty());
    if let Some(u) = &desk_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        problems.push_key(
            &["outgoing", "desk_url"],
            format!("outgoing.desk_url \"{u}\" is not an http(s) address"),
            Some("e.g. \"https://poststelle.musterstadt.local\"".into()),
        );
    }
    OutgoingSettings {
        enabled: raw.enabled,
        from_address: raw.from_address,
        from_name: raw.from_name,
        desk_url,
        max_attempts: raw.max_attempts.max(1),
        retry_base: Duration::from_secs(raw.retry_base_secs.max(1)),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(1)),
        smtp: SmtpSettings {
            host: raw.smtp.host,
            port,
            tls,
            user: raw.smtp.user,
            password,
            ca_file: raw.smtp.ca_file,
            timeout: Duration::from_secs(raw.smtp.timeout_secs.max(1)),
        },
        acknowledgements: AcknowledgementSettings {
            enabled: raw.acknowledgements.enabled,
            max_per_sender_per_hour: raw.acknowledgements.max_per_sender_per_hour,
            max_per_sender_per_day: raw.acknowledgements.max_per_sender_per_day,
            templates: ack_templates(raw.acknowledgements.templates, problems),
        },
        digest: DigestSettings {
            enabled: raw.digest.enabled,
            hour,
            minute,
        },
    }
}
