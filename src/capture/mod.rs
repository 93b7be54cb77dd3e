//! The capture record (Erfassungsprotokoll, after BSI TR-03138 "RESISCAN"): how and when a
//! document was taken in, made once per document before its first delivery and delivered with
//! it (sidecar `capture`, DMS fields `capture_*`), sealed in the audit trail (event
//! `capture_recorded` with the record's SHA-256).
//!
//! - **Receipt** (`received_at`) is the commit of the intake: for a letter of a stack the
//!   stack's commit, not the split; for an e-mail the message's commit. It is the time that
//!   counts for deadlines (§ 31 VwVfG), not when the document was read or routed.
//! - **Channel and source**: a scan (the hot folder; its `station`), a letter of a stack (the
//!   station, the stack's file and the letter's pages there), an upload (the signed-in person),
//!   an e-mail (the IMAP account).
//! - **Scan parameters** are read from the file (resolution, colour mode, pages), not from the
//!   settings it was later read at ([`crate::extract::scan`]).
//! - **Hashes** of the original and of the delivered rendition (the searchable PDF of a scan).
//! - **Quality checks**: blank pages a stack's split left out, and pages with too little
//!   legible text (OCR word confidences, the measures of [`crate::classify::router`]).
//!
//! A configurable share of the scans also goes to the **Sichtkontrolle**
//! ([`is_visual_check`]): a person in the Poststelle looks whether the scan is complete and
//! legible, or marks it for a new scan. It never holds up delivery: the DMS has the document
//! while the check waits, and a re-scan is a new document.

pub mod settings;

use crate::extract::scan::{ColourMode, ScanParameters};
use crate::extract::{Page, count_alnum};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version of the record's layout (bumped when fields change meaning).
pub const RECORD_VERSION: u32 = 1;

/// A page with fewer letters and digits than this in words read with confidence is flagged.
pub const MIN_LEGIBLE_CHARS: usize = 20;

/// How a document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A file in the scanner's hot folder.
    Scan,
    /// A letter split from a stack (the hot folder's batch folder).
    Stack,
    /// An upload (API or the desk's Hochladen page).
    Upload,
    /// An e-mail (IMAP).
    Email,
    /// Anything else (a source this version does not know).
    Other,
}

impl Channel {
    /// The channel of a document's `source` (`hot_folder`, `upload`, `imap:<account>`).
    pub fn of(source: &str, from_stack: bool) -> Channel {
        match source {
            "hot_folder" if from_stack => Channel::Stack,
            "hot_folder" => Channel::Scan,
            "upload" => Channel::Upload,
            s if s.starts_with("imap:") => Channel::Email,
            _ => Channel::Other,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Scan => "scan",
            Channel::Stack => "stack",
            Channel::Upload => "upload",
            Channel::Email => "email",
            Channel::Other => "other",
        }
    }

    /// The channel as people read it (German).
    pub fn german(self) -> &'static str {
        match self {
            Channel::Scan => "Scanner",
            Channel::Stack => "Scanner (Stapel)",
            Channel::Upload => "Hochgeladen",
            Channel::Email => "E-Mail",
            Channel::Other => "Andere",
        }
    }
}

/// The stack a letter was split from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackOrigin {
    /// The stack's id.
    pub id: String,
    /// The stack's file name.
    pub file: String,
    /// The letter's pages in the stack (`3-5`).
    pub pages: String,
    /// SHA-256 of the stack's original.
    pub sha256: String,
}

/// The quality checks of the capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityChecks {
    /// Pages whose text was checked (pages read by OCR).
    pub pages_checked: u32,
    /// Blank pages left out of the delivered PDF (their numbers in the stack).
    pub blank_pages_removed: Vec<u32>,
    /// Pages with too little legible text (numbers in the delivered document).
    pub poorly_read_pages: Vec<u32>,
}

/// The capture record of one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    /// Layout version ([`RECORD_VERSION`]).
    pub version: u32,
    /// The document.
    pub document_id: String,
    /// Time of receipt: the commit of the intake (RFC 3339, UTC).
    pub received_at: String,
    /// How it came in.
    pub channel: Channel,
    /// From where: the scan station, the uploading person, the IMAP account.
    pub source: String,
    /// For a letter of a stack: the stack and its pages there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackOrigin>,
    /// Resolution in dpi as the file states it (scans only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
    /// Colour mode as the file states it (scans only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<ColourMode>,
    /// Pages of the document (as delivered).
    pub pages: u32,
    /// SHA-256 of the original as received.
    pub sha256_original: String,
    /// SHA-256 of what is delivered (the searchable PDF of a scan, else the original).
    pub sha256_rendition: String,
    /// Media type of what is delivered.
    pub rendition_media_type: String,
    /// Quality checks.
    pub quality: QualityChecks,
    /// Whether the scan went to the Sichtkontrolle.
    pub visual_check: bool,
    /// When the record was made (RFC 3339, UTC).
    pub recorded_at: String,
}

impl CaptureRecord {
    /// SHA-256 (hex) of the record's JSON as stored: what the audit trail seals.
    pub fn seal(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }

    /// What the audit event says: the seal and a summary without personal data (no source
    /// name, no file name).
    pub fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "seal": self.seal(),
            "received_at": self.received_at,
            "channel": self.channel,
            "pages": self.pages,
            "dpi": self.dpi,
            "colour": self.colour,
            "sha256_original": self.sha256_original,
            "sha256_rendition": self.sha256_rendition,
            "blank_pages_removed": self.quality.blank_pages_removed.len(),
            "poorly_read_pages": self.quality.poorly_read_pages,
            "visual_check": self.visual_check,
        })
    }

    /// Whether this is a scan (a paper original: scan, stack or an uploaded scan).
    pub fn is_scan(&self) -> bool {
        self.dpi.is_some()
            || self.colour.is_some()
            || matches!(self.channel, Channel::Scan | Channel::Stack)
    }
}

/// What a record is made of (gathered by the pipeline from the store, the file and the
/// settings).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The document's id.
    pub document_id: &'a str,
    /// Its intake's commit (for a letter of a stack: the stack's).
    pub received_at: &'a str,
    /// Its `source` (`hot_folder`, `upload`, `imap:<account>`).
    pub source: &'a str,
    /// The configured scan station (`[intake.hot_folder] station`).
    pub station: Option<&'a str>,
    /// Who handed in an upload (the `received` event's actor).
    pub uploaded_by: Option<&'a str>,
    /// The stack, for a letter of one.
    pub stack: Option<StackOrigin>,
    /// Blank pages its split left out.
    pub blank_pages_removed: Vec<u32>,
    /// What the file says about its scan (scans only).
    pub scan: Option<ScanParameters>,
    /// Pages of the document, when known otherwise (e-mails, text).
    pub page_count: u32,
    /// The pages as read (OCR words: the quality check), when recognised.
    pub ocr_pages: &'a [Page],
    /// SHA-256 of the original.
    pub sha256_original: &'a str,
    /// SHA-256 and media type of what is delivered.
    pub rendition: (&'a str, &'a str),
    /// The Sichtkontrolle's share (`[capture] visual_check_share`).
    pub visual_check_share: f64,
    /// Now (RFC 3339).
    pub now: &'a str,
}

/// Makes the record. Pure: everything comes in `facts`.
pub fn build(facts: Facts<'_>) -> CaptureRecord {
    let channel = Channel::of(facts.source, facts.stack.is_some());
    let source = match channel {
        Channel::Scan | Channel::Stack => facts.station.unwrap_or("Scan-Eingang").to_string(),
        Channel::Upload => facts.uploaded_by.unwrap_or("unbekannt").to_string(),
        Channel::Email => facts
            .source
            .strip_prefix("imap:")
            .unwrap_or(facts.source)
            .to_string(),
        Channel::Other => facts.source.to_string(),
    };
    let scan = facts.scan.unwrap_or_default();
    let pages = if scan.pages > 0 {
        scan.pages
    } else {
        facts.page_count
    };
    let mut record = CaptureRecord {
        version: RECORD_VERSION,
        document_id: facts.document_id.to_string(),
        received_at: facts.received_at.to_string(),
        channel,
        source,
        stack: facts.stack,
        dpi: scan.dpi,
        colour: scan.colour,
        pages,
        sha256_original: facts.sha256_original.to_string(),
        sha256_rendition: facts.rendition.0.to_string(),
        rendition_media_type: facts.rendition.1.to_string(),
        quality: QualityChecks {
            pages_checked: facts.ocr_pages.len() as u32,
            blank_pages_removed: facts.blank_pages_removed,
            poorly_read_pages: poorly_read_pages(facts.ocr_pages),
        },
        visual_check: false,
        recorded_at: facts.now.to_string(),
    };
    record.visual_check =
        record.is_scan() && is_visual_check(facts.document_id, facts.visual_check_share);
    record
}

/// Whether a page was read too poorly to be sure it is legible: fewer than
/// [`MIN_LEGIBLE_CHARS`] letters and digits in words read with confidence, or a word
/// confidence the router would not trust for page 1 either.
pub fn poorly_read(page: &Page) -> bool {
    use crate::classify::router::{LOW_OCR_MEAN, LOW_OCR_SHARE};
    use crate::extract::OcrConfidence;
    let (mut sum, mut total, mut low, mut legible) = (0.0f64, 0usize, 0usize, 0usize);
    for w in &page.words {
        let n = count_alnum(&w.text);
        if n < 2 {
            continue;
        }
        total += n;
        sum += f64::from(w.conf.clamp(0.0, 100.0)) * n as f64;
        if w.conf < OcrConfidence::LOW_WORD {
            low += n;
        } else {
            legible += n;
        }
    }
    if legible < MIN_LEGIBLE_CHARS {
        return true;
    }
    let mean = sum / total as f64;
    mean < LOW_OCR_MEAN || low as f64 / total as f64 > LOW_OCR_SHARE
}

/// The numbers of the pages read too poorly ([`poorly_read`]), in order.
pub fn poorly_read_pages(pages: &[Page]) -> Vec<u32> {
    let mut out: Vec<u32> = pages
        .iter()
        .filter(|p| poorly_read(p))
        .map(|p| p.number)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether a scan goes to the Sichtkontrolle at `share` (0..=1): like the Stichprobe's
/// [`crate::sample::is_sampled`], a hash of the document id (with its own prefix, so the two
/// shares are independent), deterministic across restarts.
pub fn is_visual_check(id: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    if share >= 1.0 {
        return true;
    }
    let digest = Sha256::digest(format!("sichtkontrolle:{id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0) < share
}

/// The blank pages a stack's plan left out of the letter with pages `range` (`3-5`).
pub fn blank_pages_of(plan: &serde_json::Value, range: &str) -> Vec<u32> {
    let parts = plan
        .get("parts")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let (first, last) = match range.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok(), b.trim().parse().ok()),
        None => {
            let n = range.trim().parse().ok();
            (n, n)
        }
    };
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    let get = |p: &serde_json::Value, k: &str| p.get(k).and_then(|v| v.as_u64());
    parts
        .iter()
        .find(|p| get(p, "first") == Some(first) && get(p, "last") == Some(last))
        .and_then(|p| p.get("dropped"))
        .and_then(|d| serde_json::from_value::<Vec<u32>>(d.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Word;

    fn page(number: u32, words: &[(&str, f32)]) -> Page {
        Page {
            number,
            text: words.iter().map(|w| w.0).collect::<Vec<_>>().join(" "),
            words: words
                .iter()
                .map(|(t, c)| Word {
                    text: t.to_string(),
                    x: 0.0,
                    y: 0.0,
                    w: 10.0,
                    h: 10.0,
                    conf: *c,
                    line: 0,
                })
                .collect(),
            width: 2480.0,
            height: 3508.0,
            units_per_mm: 300.0 / 25.4,
        }
    }

    fn letter(number: u32, conf: f32) -> Page {
        page(
            number,
            &[
                ("Sehr", conf),
                ("geehrte", conf),
                ("Damen", conf),
                ("und", conf),
                ("Herren,", conf),
                ("hiermit", conf),
                ("beantrage", conf),
                ("ich", conf),
            ],
        )
    }

    fn facts<'a>(source: &'a str, pages: &'a [Page]) -> Facts<'a> {
        Facts {
            document_id: "0190aaaa-0000-7000-8000-000000000001",
            received_at: "2026-12-07T08:15:00.000Z",
            source,
            station: Some("Poststelle EG"),
            uploaded_by: None,
            stack: None,
            blank_pages_removed: Vec::new(),
            scan: Some(ScanParameters {
                dpi: Some(300),
                colour: Some(ColourMode::Gray),
                pages: 2,
            }),
            page_count: 0,
            ocr_pages: pages,
            sha256_original: "aa",
            rendition: ("bb", "application/pdf"),
            visual_check_share: 0.0,
            now: "2026-12-07T08:16:00.000Z",
        }
    }

    #[test]
    fn a_scan_records_station_parameters_hashes_and_poorly_read_pages() {
        let pages = [letter(1, 93.0), page(2, &[("xx", 30.0), ("ab", 40.0)])];
        let r = build(facts("hot_folder", &pages));
        assert_eq!(r.channel, Channel::Scan);
        assert_eq!(r.source, "Poststelle EG");
        assert_eq!(r.received_at, "2026-12-07T08:15:00.000Z");
        assert_eq!(
            (r.dpi, r.colour, r.pages),
            (Some(300), Some(ColourMode::Gray), 2)
        );
        assert_eq!(
            (r.sha256_original.as_str(), r.sha256_rendition.as_str()),
            ("aa", "bb")
        );
        assert_eq!(r.quality.pages_checked, 2);
        assert_eq!(r.quality.poorly_read_pages, vec![2]);
        assert!(!r.visual_check);
        // The seal changes with any field.
        let mut other = r.clone();
        other.pages = 3;
        assert_ne!(r.seal(), other.seal());
        assert_eq!(r.seal().len(), 64);
        let detail = r.audit_detail();
        assert_eq!(detail["seal"], r.seal().as_str());
        assert!(!detail.to_string().contains("Poststelle EG"), "{detail}");
    }

    #[test]
    fn channels_name_their_source() {
        let mut f = facts("upload", &[]);
        f.uploaded_by = Some("m.meier");
        f.scan = None;
        f.page_count = 1;
        let r = build(f);
        assert_eq!((r.channel, r.source.as_str()), (Channel::Upload, "m.meier"));
        assert!(!r.is_scan());
        let mut f = facts("imap:poststelle", &[]);
        f.scan = None;
        f.page_count = 1;
        f.visual_check_share = 1.0;
        let r = build(f);
        assert_eq!(
            (r.channel, r.source.as_str()),
            (Channel::Email, "poststelle")
        );
        assert!(!r.visual_check, "an e-mail is no scan");
        let mut f = facts("hot_folder", &[]);
        f.stack = Some(StackOrigin {
            id: "s1".into(),
            file: "stapel.pdf".into(),
            pages: "3-5".into(),
            sha256: "cc".into(),
        });
        f.blank_pages_removed = vec![4];
        f.visual_check_share = 1.0;
        let r = build(f);
        assert_eq!(r.channel, Channel::Stack);
        assert_eq!(r.quality.blank_pages_removed, vec![4]);
        assert!(r.visual_check);
    }

    #[test]
    fn legible_pages_pass_and_thin_or_unsure_ones_are_flagged() {
        assert!(!poorly_read(&letter(1, 92.0)));
        assert!(poorly_read(&letter(1, 50.0)));
        assert!(poorly_read(&page(1, &[("Seite", 95.0)])));
        assert!(poorly_read(&page(1, &[])));
    }

    #[test]
    fn the_visual_check_share_is_deterministic_and_roughly_kept() {
        let ids: Vec<String> = (0..2000).map(|i| format!("doc-{i}")).collect();
        let n = ids.iter().filter(|i| is_visual_check(i, 0.1)).count();
        assert!((120..=280).contains(&n), "{n} of 2000 at 10 %");
        assert!(ids.iter().all(|i| is_visual_check(i, 1.0)));
        assert!(!ids.iter().any(|i| is_visual_check(i, 0.0)));
        assert_eq!(is_visual_check("x", 0.5), is_visual_check("x", 0.5));
    }

    #[test]
    fn blank_pages_come_from_the_letters_part_of_the_plan() {
        let plan = serde_json::json!({"pages": [], "parts": [
            {"pages": [1, 3], "first": 1, "last": 3, "dropped": [2]},
            {"pages": [4], "first": 4, "last": 4, "dropped": []},
        ]});
        assert_eq!(blank_pages_of(&plan, "1-3"), vec![2]);
        assert!(blank_pages_of(&plan, "4").is_empty());
        assert!(blank_pages_of(&plan, "9-12").is_empty());
    }
}
