//! The `[sample]` section: the share of straight-through documents that enter the Stichprobe,
//! the evidence needed before a threshold is raised, and who is told when it is.

use crate::config::problem::Problems;
use crate::outgoing::settings::valid_address;
use serde::Deserialize;

/// `[sample]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSample {
    share: f64,
    min_judged: u32,
    notify_to: Vec<String>,
}

impl Default for RawSample {
    fn default() -> Self {
        Self {
            share: DEFAULT_SHARE,
            min_judged: DEFAULT_MIN_JUDGED,
            notify_to: Vec::new(),
        }
    }
}

/// The share of straight-through documents sampled unless configured: 2 %.
pub const DEFAULT_SHARE: f64 = 0.02;

/// Judged samples a mailbox needs before its threshold may be raised, unless configured.
pub const DEFAULT_MIN_JUDGED: u32 = 20;

/// Stichprobe settings.
#[derive(Debug, Clone)]
pub struct SampleSettings {
    /// Share (0..=1) of the documents routed straight through that also enter the sample.
    pub share: f64,
    /// Judged samples of a mailbox before its measured precision may raise its threshold.
    pub min_judged: u32,
    /// Who is told by e-mail when a threshold is raised (the admins; needs `[outgoing]`).
    pub notify_to: Vec<String>,
}

impl Default for SampleSettings {
    fn default() -> Self {
        Self {
            share: DEFAULT_SHARE,
            min_judged: DEFAULT_MIN_JUDGED,
            notify_to: Vec::new(),
        }
    }
}

/// Validates `[sample]`.
pub fn validate(raw: RawSample, problems: &mut Problems) -> SampleSettings {
    if !(0.0..=1.0).contains(&raw.share) {
        problems.push_key(
            &["sample", "share"],
            format!("sample.share {} is outside 0..1", raw.share),
            Some("e.g. 0.02 (2 % of the documents routed straight through)".into()),
        );
    }
    if raw.min_judged == 0 {
        problems.push_key(
            &["sample", "min_judged"],
            "sample.min_judged must be at least 1",
            Some(format!("e.g. {DEFAULT_MIN_JUDGED}")),
        );
    }
    for a in &raw.notify_to {
        if !valid_address(a) {
            problems.push_key(
                &["sample", "notify_to"],
                format!("sample.notify_to \"{a}\" is not an e-mail address"),
                None,
            );
        }
    }
    SampleSettings {
        share: raw.share.clamp(0.0, 1.0),
        min_judged: raw.min_judged.max(1),
        notify_to: raw.notify_to,
    }
}
