//! The `[classify]` section (rules, models, training data, review threshold) and `[einvoice]`
//! (Leitweg-ID routes). That a route names a configured department mailbox is checked across
//! sections by the configuration.

use crate::config::problem::{Problems, suggest};
use crate::domain::MailboxId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[classify]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawClassify {
    rules: PathBuf,
    models: PathBuf,
    training_data: PathBuf,
    review_threshold: f64,
    precision_target: f64,
}

impl Default for RawClassify {
    fn default() -> Self {
        Self {
            rules: "rules".into(),
            models: "var/models".into(),
            training_data: "training-data".into(),
            review_threshold: 0.8,
            precision_target: crate::train::DEFAULT_PRECISION_TARGET,
        }
    }
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
    /// Share of straight-through documents that must be right: training chooses the review
    /// thresholds (one overall, and one per mailbox where the data suffices) to reach it.
    pub precision_target: f64,
}

/// Validates `[classify]`.
pub fn validate(raw: RawClassify, problems: &mut Problems) -> ClassifySettings {
    let t = raw.review_threshold;
    if !(0.0..=1.0).contains(&t) {
        problems.push_key(
            &["classify", "review_threshold"],
            format!("review_threshold {t} is outside 0..1"),
            Some("e.g. 0.8".into()),
        );
    }
    let p = raw.precision_target;
    if !(0.5..1.0).contains(&p) {
        problems.push_key(
            &["classify", "precision_target"],
            format!("precision_target {p} is outside 0.5..1 (1 itself cannot be measured)"),
            Some("e.g. 0.995 (at most 1 in 200 straight-through documents wrong)".into()),
        );
    }
    ClassifySettings {
        precision_target: p,
        rules: raw.rules,
        models: raw.models,
        training_data: raw.training_data,
        review_threshold: t,
    }
}

/// `[einvoice]` as it stands in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawEinvoice {
    /// Mailbox ids as strings; integers are accepted (an environment override `=20` parses
    /// as one).
    routes: BTreeMap<String, toml::Value>,
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

/// Validates `[einvoice]`: Leitweg-IDs and mailbox ids by their form; whether the mailboxes
/// exist is checked against `[[mailboxes]]` by [`EinvoiceSettings::keep_known`].
pub fn validate_einvoice(raw: RawEinvoice, problems: &mut Problems) -> EinvoiceSettings {
    let mut routes = BTreeMap::new();
    for (lid, value) in raw.routes {
        let mb = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => other.to_string(),
        };
        let key = normalize_leitweg_id(&lid);
        if !is_leitweg_id(&key) {
            problems.push_key(
                &["einvoice", "routes", &lid],
                format!("einvoice.routes: \"{lid}\" is not a Leitweg-ID"),
                Some("e.g. \"05315000-12345-67\" (coarse-fine-check digits)".into()),
            );
            continue;
        }
        match MailboxId::parse(&mb) {
            Some(m) => {
                routes.insert(key, m);
            }
            None => unknown_mailbox(problems, &key, &mb, &[]),
        }
    }
    EinvoiceSettings { routes }
}

fn unknown_mailbox(problems: &mut Problems, lid: &str, mb: &str, known: &[&str]) {
    problems.push_key(
        &["einvoice", "routes", lid],
        format!("einvoice.routes: Leitweg-ID {lid} names unknown mailbox \"{mb}\""),
        suggest(mb, known),
    );
}

impl EinvoiceSettings {
    /// Keeps the routes to `known` department mailboxes; each other route is a problem.
    pub fn keep_known(&mut self, known: &[&MailboxId], problems: &mut Problems) {
        let ids: Vec<&str> = known.iter().map(|m| m.as_str()).collect();
        self.routes.retain(|lid, mb| {
            let ok = known.contains(&&*mb);
            if !ok {
                unknown_mailbox(problems, lid, mb.as_str(), &ids);
            }
            ok
        });
    }
}
