//! The aggregate [`Settings`]: loads the file through the [`loader`](super::loader), has every
//! section validated by the module it belongs to, and runs the checks that need more than one
//! section ([`check_across_sections`]).
//!
//! This is the one place that imports every section; the wiring (application, pipeline, API,
//! command line) uses [`Settings`], components receive only their own section's type.

use super::loader;
use super::mailboxes::{self, MailboxSettings, RawMailbox, RawMunicipality, RawReview};
use super::problem::{ConfigError, Problems, suggest};
use crate::api::settings::{self as api, ApiSettings, RawApi};
use crate::auth::settings::{self as auth, AuthSettings, RawAuth};
use crate::capture::settings::{self as capture, CaptureSettings, RawCapture};
use crate::classify::clerk::{self, ClerkTable, RawClerks};
use crate::classify::settings::{
    self as classify, ClassifySettings, EinvoiceSettings, RawClassify, RawEinvoice,
};
use crate::deliver::TargetMailbox;
use crate::deliver::settings::{self as deliver, DeliverSettings, RawDeliver};
use crate::domain::MailboxId;
use crate::extract::settings::{self as extract, ExtractSettings, RawExtract};
use crate::intake::settings::{self as intake, HotFolderSettings, ImapSettings, RawIntake};
use crate::outgoing::settings::{self as outgoing, OutgoingSettings, RawOutgoing};
use crate::outgoing::{DigestRecipient, Recipients};
use crate::retention::settings::{self as retention, RawRetention, RetentionSettings};
use crate::sample::settings::{self as sample, RawSample, SampleSettings};
use crate::store::settings::{self as store, RawStore, StoreSettings};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Validated settings for every component; built only by [`Settings::load`] / [`Settings::parse`].
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
    /// Uploads over the API and the web desk (size limit, slots, time limit).
    pub upload: intake::UploadSettings,
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
    /// Logins, sessions and the directory.
    pub auth: AuthSettings,
    /// The review mailbox (a person in the Poststelle decides).
    pub review: MailboxSettings,
    /// The department mailboxes, in config order.
    pub mailboxes: Vec<MailboxSettings>,
    /// Outgoing e-mail (acknowledgements and digests over SMTP).
    pub outgoing: OutgoingSettings,
    /// E-invoice routing.
    pub einvoice: EinvoiceSettings,
    /// The Stichprobe (second look at a share of the straight-through documents).
    pub sample: SampleSettings,
    /// The capture record's Sichtkontrolle (a share of the scans checked by eye).
    pub capture: CaptureSettings,
    /// Retention periods of personal data (DSGVO).
    pub retention: RetentionSettings,
    /// The clerks inside departments: per mailbox an assignment table (`[[clerks."63"]]`).
    pub clerks: ClerkTable,
}

/// The top-level sections of a config file.
const SECTIONS: &[&str] = &[
    "municipality",
    "store",
    "intake",
    "extract",
    "classify",
    "deliver",
    "api",
    "auth",
    "review",
    "mailboxes",
    "outgoing",
    "einvoice",
    "sample",
    "capture",
    "retention",
    "clerks",
];

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
        match validate(path, table, &mut problems) {
            Some(settings) => problems.into_result(settings),
            None => Err(problems.into_error()),
        }
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

    /// What outgoing mail needs besides its own section: the town's name and who gets which
    /// digest.
    pub fn outgoing_recipients(&self) -> Recipients {
        let mut digests: Vec<DigestRecipient> = self
            .mailboxes
            .iter()
            .filter(|m| !m.digest_to.is_empty())
            .map(|m| DigestRecipient::department(&m.id, &m.name, &m.digest_to))
            .collect();
        if !self.review.digest_to.is_empty() {
            digests.push(DigestRecipient::review(
                &self.review.id,
                &self.review.name,
                &self.review.digest_to,
            ));
        }
        Recipients {
            municipality: self.municipality.clone(),
            digests,
            mailbox_names: self
                .mailboxes
                .iter()
                .map(|m| (m.id.to_string(), m.name.clone()))
                .collect(),
            review_name: self.review.name.clone(),
        }
    }

    /// The settings rendered for people, secrets redacted.
    pub fn redacted_summary(&self) -> String {
        format!("{self:#?}")
    }
}

/// The raw sections, each deserialized on its own (so that every section's mistakes are
/// reported, not only the first).
struct RawSections {
    municipality: RawMunicipality,
    store: RawStore,
    intake: RawIntake,
    extract: RawExtract,
    classify: RawClassify,
    deliver: RawDeliver,
    api: RawApi,
    auth: RawAuth,
    review: RawReview,
    mailboxes: Vec<RawMailbox>,
    outgoing: RawOutgoing,
    einvoice: RawEinvoice,
    sample: RawSample,
    capture: RawCapture,
    retention: RawRetention,
    clerks: RawClerks,
}

impl RawSections {
    /// `None` (with the problems pushed) when a section does not deserialize or a required one
    /// is missing; every section is tried, so all of their problems are reported.
    fn take(mut table: toml::Table, problems: &mut Problems) -> Option<RawSections> {
        loader::unknown_keys(&table, &[], SECTIONS, problems);
        let t = &mut table;
        let municipality = required(t, "municipality", "name = \"...\"", problems);
        let store = section(t, "store", problems);
        let intake = section(t, "intake", problems);
        let extract = section(t, "extract", problems);
        let classify = section(t, "classify", problems);
        let deliver = section(t, "deliver", problems);
        let api = section(t, "api", problems);
        let auth = section(t, "auth", problems);
        let review = required(
            t,
            "review",
            "mailbox = \"...\" and name = \"...\"",
            problems,
        );
        let mailboxes = section(t, "mailboxes", problems);
        let outgoing = section(t, "outgoing", problems);
        let einvoice = section(t, "einvoice", problems);
        let sample = section(t, "sample", problems);
        let capture = section(t, "capture", problems);
        let retention = section(t, "retention", problems);
        let clerks = section(t, "clerks", problems);
        Some(RawSections {
            municipality: municipality?,
            store: store?,
            intake: intake?,
            extract: extract?,
            classify: classify?,
            deliver: deliver?,
            api: api?,
            auth: auth?,
            review: review?,
            mailboxes: mailboxes?,
            outgoing: outgoing?,
            einvoice: einvoice?,
            sample: sample?,
            capture: capture?,
            retention: retention?,
            clerks: clerks?,
        })
    }
}

/// A section with defaults: absent means all defaults.
fn section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Problems,
) -> Option<T> {
    match table.remove(key) {
        Some(v) => loader::deserialize(v, &[key], problems),
        None => Some(T::default()),
    }
}

/// A section that must be there.
fn required<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    keys: &str,
    problems: &mut Problems,
) -> Option<T> {
    match table.remove(key) {
        Some(v) => loader::deserialize(v, &[key], problems),
        None => {
            problems.push_at(
                None,
                format!("missing section [{key}]"),
                Some(format!("add [{key}] with {keys}")),
            );
            None
        }
    }
}

/// Validates every section with its own validator, then what spans sections. `None` when a
/// section could not be read at all.
fn validate(path: &Path, table: toml::Table, problems: &mut Problems) -> Option<Settings> {
    let raw = RawSections::take(table, problems)?;
    let target_names = raw.deliver.target_names();
    let default_target = raw.deliver.default_target().to_string();
    let town = mailboxes::validate(
        raw.municipality,
        raw.review,
        raw.mailboxes,
        &default_target,
        problems,
    );
    let intake = intake::validate(raw.intake, problems);
    let mut settings = Settings {
        source: path.to_path_buf(),
        municipality: town.municipality,
        address_markers: town.address_markers,
        store: store::validate(raw.store, problems),
        hot_folder: intake.hot_folder,
        upload: intake.upload,
        imap: intake.imap,
        extract: extract::validate(raw.extract, problems),
        classify: classify::validate(raw.classify, problems),
        deliver: deliver::validate(raw.deliver, problems),
        api: api::validate(raw.api, problems),
        auth: auth::validate(raw.auth, problems),
        review: town.review,
        mailboxes: town.mailboxes,
        outgoing: outgoing::validate(raw.outgoing, problems),
        einvoice: classify::validate_einvoice(raw.einvoice, problems),
        sample: sample::validate(raw.sample, problems),
        capture: capture::validate(raw.capture, problems),
        retention: retention::validate(raw.retention, problems),
        clerks: clerk::validate(raw.clerks, problems),
    };
    check_across_sections(&mut settings, &target_names, problems);
    Some(settings)
}

/// The checks and completions that need more than one section:
/// - every mailbox is filed into a configured target (`target_names`: every target block,
///   valid or not, so a broken block is reported once, not once per mailbox);
/// - the review mailbox is not also a department mailbox;
/// - e-invoice routes and clerk tables name department mailboxes;
/// - connectors complete their per-mailbox defaults with the mailboxes filed into them (e.g.
///   Mayan's cabinet named after each mailbox).
fn check_across_sections(s: &mut Settings, target_names: &[String], problems: &mut Problems) {
    let names: Vec<&str> = target_names.iter().map(String::as_str).collect();
    for m in &s.mailboxes {
        if !names.contains(&m.target.as_str()) {
            problems.push(
                &format!("\"{}\"", m.target),
                format!("mailbox {} names unknown target \"{}\"", m.id, m.target),
                suggest(&m.target, &names),
            );
        }
    }
    if s.mailboxes.iter().any(|m| m.id == s.review.id) {
        problems.push(
            "[review]",
            "the review mailbox must not also be a department mailbox",
            None,
        );
    }
    for id in s.outgoing.acknowledgements.templates.per_mailbox.keys() {
        if !s.mailboxes.iter().any(|m| m.id.as_str() == id) {
            let ids: Vec<&str> = s.mailboxes.iter().map(|m| m.id.as_str()).collect();
            problems.push(
                &format!("\"{id}\""),
                format!(
                    "outgoing.acknowledgements.templates.{id}: es gibt kein Postfach \"{id}\" \
                     (Vorlagen gelten je Postfach, dazu \"default\")"
                ),
                suggest(id, &ids),
            );
        }
    }
    let departments: Vec<&MailboxId> = s.mailboxes.iter().map(|m| &m.id).collect();
    s.einvoice.keep_known(&departments, problems);
    s.clerks.keep_known(&departments, problems);
    let filed = s
        .mailboxes
        .iter()
        .chain(std::iter::once(&s.review))
        .map(|m| {
            (
                m.target.as_str(),
                TargetMailbox {
                    id: &m.id,
                    name: &m.name,
                },
            )
        });
    s.deliver.complete(filed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::settings::is_leitweg_id;
    use crate::config::Secret;
    use crate::deliver::mayan::{MayanAuth, MayanRef, MayanSettings};
    use crate::intake::settings::{ImapTls, MailDelivery};

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
    fn imap_message_backoff_defaults_and_overrides() {
        let pw = ("POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__PASSWORD", "s3cret");
        let s = parse(&imap_config("127.0.0.1", "plain"), &[pw]).expect("defaults");
        let a = &s.imap.accounts[0];
        assert_eq!((a.retry_base.as_secs(), a.retry_max.as_secs()), (1, 3600));
        let env = [
            pw,
            (
                "POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__RETRY_BASE_SECS",
                "7",
            ),
            ("POSTSTELLE__INTAKE__IMAP__ACCOUNTS__0__RETRY_MAX_SECS", "0"),
        ];
        let s = parse(&imap_config("127.0.0.1", "plain"), &env).expect("overrides");
        let a = &s.imap.accounts[0];
        assert_eq!((a.retry_base.as_secs(), a.retry_max.as_secs()), (7, 1));
    }

    #[test]
    fn the_stichprobe_share_defaults_to_two_percent_and_is_validated() {
        let s = parse(MINIMAL, &[]).expect("default");
        assert_eq!(s.sample.share, 0.02);
        assert_eq!(s.capture.visual_check_share, 0.02);
        assert_eq!(s.hot_folder.station, None);
        assert_eq!(s.sample.min_judged, 20);
        assert!(s.sample.notify_to.is_empty());
        let text = format!(
            "{MINIMAL}\n[sample]\nshare = 0.1\nmin_judged = 5\nnotify_to = [\"it@musterstadt.de\"]\n"
        );
        let s = parse(&text, &[]).expect("configured");
        assert_eq!(
            (
                s.sample.share,
                s.sample.min_judged,
                s.sample.notify_to.len()
            ),
            (0.1, 5, 1)
        );
        let s = parse(MINIMAL, &[("POSTSTELLE__SAMPLE__SHARE", "1.0")]).expect("env");
        assert_eq!(s.sample.share, 1.0);
        for bad in [
            "share = 1.5",
            "share = -0.1",
            "min_judged = 0",
            "notify_to = [\"it\"]",
        ] {
            let e = parse(&format!("{MINIMAL}\n[sample]\n{bad}\n"), &[]).expect_err(bad);
            assert!(e.to_string().contains("sample."), "{bad}: {e}");
        }
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
    fn acknowledgement_templates_are_checked_at_load_in_german() {
        let ok = parse(
            &format!(
                "{MINIMAL}\n[outgoing.acknowledgements.templates]\n\
                 default = \"Eingang {{eingang}}, {{vorgangsnummer}}\"\n\
                 \"63\" = \"{{anrede}} Bauordnung: {{eingang}} {{vorgangsnummer}} {{postfach}} {{betreff}}\"\n"
            ),
            &[],
        )
        .expect("valid templates");
        let t = &ok.outgoing.acknowledgements.templates;
        assert_eq!(t.for_mailbox(Some("63")).0, "63");
        assert!(t.for_mailbox(Some("63")).1.contains("Bauordnung"));
        assert_eq!(t.for_mailbox(Some("20")).0, "default");
        assert_eq!(t.for_mailbox(None).1, "Eingang {eingang}, {vorgangsnummer}");
        let unknown = parse(
            &format!(
                "{MINIMAL}\n[outgoing.acknowledgements.templates]\n\"63\" = \"{{eingang}} {{vorgangsnummer}} {{aktenzeichen}}\"\n"
            ),
            &[],
        )
        .expect_err("unknown placeholder")
        .to_string();
        assert!(
            unknown.contains("templates.63: unbekannter Platzhalter {aktenzeichen}")
                && unknown.contains("erlaubt sind {anrede}"),
            "{unknown}"
        );
        let missing = parse(
            &format!(
                "{MINIMAL}\n[outgoing.acknowledgements.templates]\ndefault = \"Danke, {{vorgangsnummer}}\"\n"
            ),
            &[],
        )
        .expect_err("no time of receipt")
        .to_string();
        assert!(missing.contains("{eingang} fehlt"), "{missing}");
        let no_mailbox = parse(
            &format!(
                "{MINIMAL}\n[outgoing.acknowledgements.templates]\n\"99\" = \"{{eingang}} {{vorgangsnummer}}\"\n"
            ),
            &[],
        )
        .expect_err("unknown mailbox")
        .to_string();
        assert!(
            no_mailbox.contains("es gibt kein Postfach \"99\""),
            "{no_mailbox}"
        );
        // The default text passes its own check.
        assert_eq!(
            crate::outgoing::settings::check_ack_template(
                crate::outgoing::settings::DEFAULT_TEMPLATE
            ),
            Ok(())
        );
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

    #[test]
    fn extract_stage_retries_have_defaults_types_and_a_minimum() {
        let s = parse(MINIMAL, &[]).expect("defaults");
        assert_eq!(s.extract.max_attempts, 5);
        assert_eq!(s.extract.retry_base, std::time::Duration::from_secs(2));
        assert_eq!(s.extract.retry_max, std::time::Duration::from_secs(300));
        let s = parse(
            MINIMAL,
            &[
                ("POSTSTELLE__EXTRACT__MAX_ATTEMPTS", "3"),
                ("POSTSTELLE__EXTRACT__RETRY_BASE_SECS", "7"),
                ("POSTSTELLE__EXTRACT__RETRY_MAX_SECS", "70"),
            ],
        )
        .expect("overridden");
        assert_eq!(s.extract.max_attempts, 3);
        assert_eq!(s.extract.retry_base, std::time::Duration::from_secs(7));
        assert_eq!(s.extract.retry_max, std::time::Duration::from_secs(70));
        let e = parse(&format!("{MINIMAL}\n[extract]\nmax_attempts = 0\n"), &[])
            .expect_err("zero attempts");
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].line, Some(14), "{e}");
        assert!(
            e.0[0].message.contains("max_attempts must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn every_section_reports_its_own_mistakes_with_their_lines() {
        let text = format!(
            "{MINIMAL}\n[store]\nurl = 5\n\n[extract]\ndpii = 300\n\n[outgoin]\nenabled = false\n"
        );
        let e = parse(&text, &[]).expect_err("three mistakes");
        let lines: Vec<(Option<usize>, &str)> =
            e.0.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines.contains(&(Some(19), "unknown field `outgoin`")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(14) && m.starts_with("store.url: invalid type")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(17) && m.starts_with("extract: unknown field `dpii`")),
            "{lines:?}"
        );
        let missing = parse("[municipality]\nname = \"x\"\n", &[]).expect_err("no review");
        assert!(
            missing.to_string().contains("missing section [review]"),
            "{missing}"
        );
    }
}
