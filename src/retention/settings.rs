//! The `[retention]` section: how long each class of personal data is kept (DSGVO).

use crate::config::problem::Problems;
use serde::Deserialize;
use std::time::Duration;

/// `[retention]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    enabled: bool,
    content_days: u32,
    quarantine_days: u32,
    mail_days: u32,
    interval_minutes: u32,
}

impl Default for RawRetention {
    fn default() -> Self {
        let d = RetentionSettings::default();
        Self {
            enabled: d.enabled,
            content_days: d.content_days,
            quarantine_days: d.quarantine_days,
            mail_days: d.mail_days,
            interval_minutes: (d.interval.as_secs() / 60) as u32,
        }
    }
}

/// Retention settings.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Whether the daemon purges on its own (`poststelle purge` works either way).
    pub enabled: bool,
    /// Days a delivered document's content (original, rendition, text, extraction, metadata,
    /// sender keys, file name) is kept after its last change, and files in the hot folder's
    /// `processed/` after they were taken. The DMS holds the record from delivery on.
    pub content_days: u32,
    /// Days a quarantined input (its row's content and the files in the quarantine folder)
    /// is kept.
    pub quarantine_days: u32,
    /// Days the bodies of sent acknowledgements and digests are kept.
    pub mail_days: u32,
    /// How often the daemon purges.
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            content_days: 30,
            quarantine_days: 90,
            mail_days: 30,
            interval: Duration::from_secs(3600),
        }
    }
}

/// The longest period accepted, in days (ten years: the longest usual Aufbewahrungsfrist).
const MAX_DAYS: u32 = 3653;

/// Validates `[retention]`.
pub fn validate(raw: RawRetention, problems: &mut Problems) -> RetentionSettings {
    for (key, v) in [
        ("content_days", raw.content_days),
        ("quarantine_days", raw.quarantine_days),
        ("mail_days", raw.mail_days),
    ] {
        if v > MAX_DAYS {
            problems.push_key(
                &["retention", key],
                format!("retention.{key} {v} is longer than {MAX_DAYS} days"),
                Some("the DMS keeps the record; poststelle only needs days or weeks".into()),
            );
        }
    }
    if raw.interval_minutes == 0 {
        problems.push_key(
            &["retention", "interval_minutes"],
            "retention.interval_minutes must be at least 1",
            Some("e.g. 60".into()),
        );
    }
    RetentionSettings {
        enabled: raw.enabled,
        content_days: raw.content_days.min(MAX_DAYS),
        quarantine_days: raw.quarantine_days.min(MAX_DAYS),
        mail_days: raw.mail_days.min(MAX_DAYS),
        interval: Duration::from_secs(u64::from(raw.interval_minutes.max(1)) * 60),
    }
}
