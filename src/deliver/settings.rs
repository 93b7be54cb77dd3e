//! The `[deliver]` section: outbox retries, the circuit breaker and the named targets. Each
//! `[deliver.targets.NAME]` block is validated by its connector through the registry.

use super::registry::{self, TargetMailbox, TargetSettings};
use crate::config::problem::{Problems, suggest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[deliver]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDeliver {
    max_attempts: u32,
    retry_base_secs: u64,
    retry_max_secs: u64,
    default_target: String,
    /// Target blocks, validated by their connector (`kind`).
    targets: BTreeMap<String, toml::Value>,
    breaker_threshold: u32,
    breaker_cooldown_secs: u64,
}

impl Default for RawDeliver {
    fn default() -> Self {
        let mut dms = toml::Table::new();
        dms.insert("kind".into(), "filesystem".into());
        dms.insert("root".into(), "var/dms".into());
        Self {
            max_attempts: 10,
            retry_base_secs: 5,
            retry_max_secs: 3600,
            default_target: "dms".into(),
            targets: BTreeMap::from([("dms".to_string(), toml::Value::Table(dms))]),
            breaker_threshold: 5,
            breaker_cooldown_secs: 60,
        }
    }
}

impl RawDeliver {
    /// The names of the target blocks, valid or not (for checks of names that refer to them).
    pub fn target_names(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }

    /// The target of mailboxes that name none.
    pub fn default_target(&self) -> &str {
        &self.default_target
    }
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliverSettings {
    /// Attempts before a document becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Target used by mailboxes that name none.
    pub default_target: String,
    /// Named delivery targets.
    pub targets: BTreeMap<String, TargetSettings>,
    /// Consecutive temporary failures after which a target is paused (circuit breaker).
    pub breaker_threshold: u32,
    /// How long a paused target rests before one probe delivery is tried.
    pub breaker_cooldown: Duration,
}

/// Validates `[deliver]`: every target through its connector, and `default_target`.
pub fn validate(raw: RawDeliver, problems: &mut Problems) -> DeliverSettings {
    // A block with problems is left out, but its name still counts as configured.
    let names = raw.target_names();
    let mut targets = BTreeMap::new();
    for (name, block) in raw.targets {
        if let Some(t) = registry::parse_target(&name, block, problems) {
            targets.insert(name, t);
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if !names.contains(&raw.default_target.as_str()) {
        problems.push(
            "default_target",
            format!(
                "deliver.default_target \"{}\" is not a configured target",
                raw.default_target
            ),
            suggest(&raw.default_target, &names),
        );
    }
    DeliverSettings {
        max_attempts: raw.max_attempts.max(1),
        retry_base: Duration::from_secs(raw.retry_base_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(1)),
        default_target: raw.default_target,
        targets,
        breaker_threshold: raw.breaker_threshold.max(1),
        breaker_cooldown: Duration::from_secs(raw.breaker_cooldown_secs),
    }
}

impl DeliverSettings {
    /// The names of the configured targets.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.keys().map(String::as_str).collect()
    }

    /// Gives every target the mailboxes filed into it (`(target name, mailbox)` pairs), so that
    /// connectors can complete per-mailbox defaults (e.g. Mayan's cabinet per mailbox).
    pub fn complete<'a>(
        &mut self,
        mailboxes: impl IntoIterator<Item = (&'a str, TargetMailbox<'a>)>,
    ) {
        let mut by_target: BTreeMap<&str, Vec<TargetMailbox<'a>>> = BTreeMap::new();
        for (target, m) in mailboxes {
            by_target.entry(target).or_default().push(m);
        }
        for (name, t) in &mut self.targets {
            t.complete(by_target.get(name.as_str()).map_or(&[], Vec::as_slice));
        }
    }
}
