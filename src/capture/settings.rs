//! The `[capture]` section: the share of scans that goes to the Sichtkontrolle (a person looks
//! whether the scan is complete and legible).

use crate::config::problem::Problems;
use serde::Deserialize;

/// `[capture]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCapture {
    visual_check_share: f64,
}

impl Default for RawCapture {
    fn default() -> Self {
        Self {
            visual_check_share: DEFAULT_VISUAL_CHECK_SHARE,
        }
    }
}

/// The share of scans checked by eye unless configured: 2 %.
pub const DEFAULT_VISUAL_CHECK_SHARE: f64 = 0.02;

/// Capture settings.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// Share (0..=1) of the scans that go to the Sichtkontrolle.
    pub visual_check_share: f64,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            visual_check_share: DEFAULT_VISUAL_CHECK_SHARE,
        }
    }
}

/// Validates `[capture]`.
pub fn validate(raw: RawCapture, problems: &mut Problems) -> CaptureSettings {
    if !(0.0..=1.0).contains(&raw.visual_check_share) {
        problems.push_key(
            &["capture", "visual_check_share"],
            format!(
                "capture.visual_check_share {} is outside 0..1",
                raw.visual_check_share
            ),
            Some("e.g. 0.02 (2 % of the scans are checked by eye)".into()),
        );
    }
    CaptureSettings {
        visual_check_share: raw.visual_check_share.clamp(0.0, 1.0),
    }
}
