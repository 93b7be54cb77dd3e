//! Stacks (Stapel): how the analysed pages of one scanned stack become letters. Pure logic
//! over [`PageAnalysis`] (measured in the sandbox): which page is blank, which is a separator
//! sheet, which begins a letter, and how sure the split is. The pipeline stores the plan and
//! makes one document per part (`Pipeline::split_batch`).
//!
//! A part begins
//! - after a separator sheet (patch T, or a barcode with the configured value): sure;
//! - at the first page of the stack: sure;
//! - at a page that reads like the first page of a letter ([`letter_start`]: address field,
//!   date line, Betreff, salutation, "Seite 1 von n") and not like a continuation ("Seite 2
//!   von 3", no address block, a first line that continues a sentence), with a confidence;
//!   a boundary (split or no split) whose confidence is below the setting sends both parts
//!   next to it to review.

pub mod sheet;

use crate::extract::batch::PageAnalysis;
use crate::extract::letter;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Settings of the separation (`[intake.hot_folder]` batch keys).
#[derive(Debug, Clone)]
pub struct SplitSettings {
    /// Value of a separator sheet's barcode (Code 128 or QR).
    pub separator_barcode: String,
    /// Blank pages (back sides, blank sheets) are left out of the delivered PDF.
    pub drop_blank_pages: bool,
    /// A split (or no split) decided with less confidence than this goes to review.
    pub min_confidence: f64,
    /// Words that name the town (address markers), for reading a page's address field.
    pub address_markers: Vec<String>,
}

/// What one page of a stack is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum PageKind {
    /// A page with content.
    Content,
    /// A blank page (back side, blank sheet), whatever the scanner's noise.
    Blank,
    /// A separator sheet: patch T or the separator barcode.
    Separator(String),
    /// A page that could not be read, with the German reason.
    Broken(String),
}

/// One page as the plan sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedPage {
    /// Page number in the stack.
    pub number: u32,
    /// What it is.
    pub kind: PageKind,
    /// How much it reads like the first page of a letter (0..1; content pages only).
    pub start_score: Option<f64>,
    /// The cues that made the score, for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cues: Vec<String>,
}

/// Why a part begins where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartedBy {
    /// The first page of the stack.
    StackStart,
    /// A separator sheet before it.
    Separator,
    /// A page that reads like a letter's first page.
    LetterStart,
    /// A person set the split points.
    Person,
}

/// One letter of the stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The stack's pages that make the part's PDF, in order (blank pages left out when so
    /// configured; separator sheets always).
    pub pages: Vec<u32>,
    /// First page of the part in the stack.
    pub first: u32,
    /// Last page of the part in the stack (blank back sides included).
    pub last: u32,
    /// Pages of the range left out (blank).
    pub dropped: Vec<u32>,
    /// Why it begins where it does.
    pub started_by: StartedBy,
    /// How sure the boundaries next to it are (the lower of the two, 0..1).
    pub confidence: f64,
    /// When set, the part goes to review with this German reason (an uncertain split).
    pub review_reason: Option<String>,
    /// When set, a page of the part is broken: the part is quarantined with this reason.
    pub broken: Option<String>,
}

impl Part {
    /// The range as people write it: `3-5`, or `4` for one page.
    pub fn range(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.last)
        }
    }
}

/// The split of a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The pages as seen.
    pub pages: Vec<PlannedPage>,
    /// The letters.
    pub parts: Vec<Part>,
}

impl Plan {
    /// Whether a part of the plan waits for a person because of the split.
    pub fn uncertain(&self) -> bool {
        self.parts.iter().any(|p| p.review_reason.is_some())
    }
}

/// Blank: nearly no ink, or little ink and no words OCR reads with confidence (specks that
/// survived, bleed-through a scanner darkened, a punch-hole shadow).
pub fn is_blank(a: &PageAnalysis) -> bool {
    if a.ocr.is_none() {
        return a.ink < crate::extract::batch::NO_OCR_INK;
    }
    if a.ink >= 0.02 {
        return false;
    }
    let words = a.ocr.as_ref().map_or(0, |p| {
        p.words
            .iter()
            .filter(|w| w.conf >= 60.0 && crate::extract::count_alnum(&w.text) >= 3)
            .count()
    });
    words < 2
}

/// Whether the page is a separator sheet; the German name of the sheet.
pub fn separator(a: &PageAnalysis, value: &str) -> Option<String> {
    if a.patch.as_deref() == Some("T") {
        return Some("Patch-T-Trennblatt".into());
    }
    let value = value.trim();
    a.barcodes
        .iter()
        .find(|b| !value.is_empty() && b.value.trim() == value)
        .map(|b| match b.format.as_str() {
            "QR_CODE" => "Trennblatt (QR-Code)".to_string(),
            _ => "Trennblatt (Barcode)".to_string(),
        })
}

static PAGE_N_OF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bseite\s+(\d{1,3})(?:\s*(?:von|/)\s*(\d{1,3}))?\b").expect("regex")
});
static DASH_PAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*[-–]\s*(\d{1,3})\s*[-–]\s*$").expect("regex"));
static SALUTATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(sehr\s+geehrte[rn]?|guten\s+tag|hallo|liebe[rs]?)\b").expect("regex")
});
static POSTCODE_TOWN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{5}\s+\p{Lu}\p{Ll}+").expect("regex"));
static BETREFF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(betreff|betr\.|ihr zeichen|unser zeichen|aktenzeichen|kassenzeichen)\b")
        .expect("regex")
});

/// How much page `page` reads like the first page of a letter (0..1) and the cues seen.
pub fn letter_start(page: &crate::extract::Page, markers: &[String]) -> (f64, Vec<String>) {
    let mut score: f64 = 0.0;
    let mut cues = Vec::new();
    let mut cue = |s: &mut f64, w: f64, what: &str| {
        *s += w;
        cues.push(what.to_string());
    };
    let text = page.text.as_str();
    // The top half of the page: where an address field, date and Betreff stand.
    let top: String = if !page.words.is_empty() && page.height > 0.0 {
        let mut lines: Vec<(u32, String)> = Vec::new();
        for w in page.words.iter().filter(|w| w.y < page.height * 0.5) {
            match lines.last_mut() {
                Some((l, s)) if *l == w.line => {
                    s.push(' ');
                    s.push_str(&w.text);
                }
                _ => lines.push((w.line, w.text.clone())),
            }
        }
        lines
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.lines().take(25).collect::<Vec<_>>().join("\n")
    };
    let read = letter::read_page(page, markers);
    // An address field has a postcode and town (a block the segmentation calls the recipient
    // is not enough: a date or a salutation alone can be taken for one).
    if read.recipient.iter().any(|l| POSTCODE_TOWN.is_match(l)) || POSTCODE_TOWN.is_match(&top) {
        cue(&mut score, 0.3, "Anschriftfeld");
    }
    if read.date.is_some() || top.lines().any(letter::is_date_line) {
        cue(&mut score, 0.15, "Datumszeile");
    }
    if read.subject.is_some() || BETREFF.is_match(&top) {
        cue(&mut score, 0.15, "Betreff");
    }
    if read.salutation.is_some() || SALUTATION.is_match(&top) {
        cue(&mut score, 0.3, "Anrede");
    }
    if !read.sender.is_empty() {
        cue(&mut score, 0.1, "Absender");
    }
    for c in PAGE_N_OF.captures_iter(text) {
        match c.get(1).and_then(|n| n.as_str().parse::<u32>().ok()) {
            Some(1) => cue(&mut score, 0.3, "„Seite 1“"),
            Some(_) => cue(&mut score, -0.8, "Seitenzahl ab 2 („Seite n von m“)"),
            None => {}
        }
    }
    if text.lines().take(3).any(|l| {
        DASH_PAGE
            .captures(l)
            .and_then(|c| c.get(1)?.as_str().parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
    }) {
        cue(&mut score, -0.5, "Seitenzahl „- n -“");
    }
    let first = text
        .lines()
        .find(|l| l.chars().any(char::is_alphabetic))
        .unwrap_or("");
    if first
        .trim_start()
        .chars()
        .next()
        .is_some_and(char::is_lowercase)
    {
        cue(&mut score, -0.2, "beginnt mitten im Satz");
    }
    (score.clamp(0.0, 1.0), cues)
}

/// Plans the split of a stack from its analysed pages (in page order; a page that could not be
/// read is `Err` with its German reason). With `starts` (a person's split points: the stack's
/// page numbers where letters begin), those decide and the plan is sure.
pub fn plan(
    pages: &[(u32, Result<PageAnalysis, String>)],
    settings: &SplitSettings,
    starts: Option<&[u32]>,
) -> Plan {
    let mut planned = Vec::new();
    for (n, a) in pages {
        let (kind, score, cues) = match a {
            Err(reason) => (PageKind::Broken(reason.clone()), None, Vec::new()),
            Ok(a) => match separator(a, &settings.separator_barcode) {
                Some(s) => (PageKind::Separator(s), None, Vec::new()),
                None if is_blank(a) => (PageKind::Blank, None, Vec::new()),
                None => {
                    let (s, cues) = a
                        .ocr
                        .as_ref()
                        .map(|p| letter_start(p, &settings.address_markers))
                        .unwrap_or((0.0, Vec::new()));
                    (PageKind::Content, Some(s), cues)
                }
            },
        };
        planned.push(PlannedPage {
            number: *n,
            kind,
            start_score: score,
            cues,
        });
    }
    // Walk the pages: (part being built, the confidence of its opening boundary).
    struct Building {
        part: Part,
        has_content: bool,
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut cur: Option<Building> = None;
    let mut after_separator = false;
    // Uncertain boundaries: (index of the part before, index of the part after) by page.
    let mut uncertain_before_page: Vec<(u32, f64)> = Vec::new();
    let finish = |b: Option<Building>, parts: &mut Vec<Part>| {
        if let Some(b) = b
            && (b.has_content || b.part.broken.is_some())
        {
            parts.push(b.part);
        }
    };
    for p in &planned {
        match &p.kind {
            PageKind::Separator(_) => {
                finish(cur.take(), &mut parts);
                after_separator = true;
            }
            PageKind::Blank => {
                if let Some(b) = cur.as_mut() {
                    b.part.last = p.number;
                    if settings.drop_blank_pages {
                        b.part.dropped.push(p.number);
                    } else {
                        b.part.pages.push(p.number);
                    }
                }
            }
            PageKind::Content | PageKind::Broken(_) => {
                let broken = match &p.kind {
                    PageKind::Broken(r) => Some(r.clone()),
                    _ => None,
                };
                let (begins, started_by, confidence) = match (&cur, starts) {
                    (None, _) => (
                        true,
                        if after_separator {
                            StartedBy::Separator
                        } else if starts.is_some() {
                            StartedBy::Person
                        } else {
                            StartedBy::StackStart
                        },
                        1.0,
                    ),
                    (Some(_), Some(s)) => (s.contains(&p.number), StartedBy::Person, 1.0),
                    (Some(b), None) if !b.has_content => (false, StartedBy::LetterStart, 1.0),
                    (Some(_), None) => match p.start_score {
                        Some(s) if s >= 0.5 => (true, StartedBy::LetterStart, s),
                        Some(s) => (false, StartedBy::LetterStart, 1.0 - s),
                        // A broken page continues the part it stands in.
                        None => (false, StartedBy::LetterStart, 1.0),
                    },
                };
                if confidence < settings.min_confidence {
                    uncertain_before_page.push((p.number, confidence));
                }
                if begins {
                    finish(cur.take(), &mut parts);
                    cur = Some(Building {
                        part: Part {
                            pages: Vec::new(),
                            first: p.number,
                            last: p.number,
                            dropped: Vec::new(),
                            started_by,
                            confidence,
                            review_reason: None,
                            broken: None,
                        },
                        has_content: false,
                    });
                }
                if let Some(b) = cur.as_mut() {
                    b.part.pages.push(p.number);
                    b.part.last = p.number;
                    b.has_content = b.has_content || broken.is_none();
                    if let Some(r) = broken {
                        b.part.broken.get_or_insert(format!(
                            "Seite {} des Stapels ist beschädigt: {r}",
                            p.number
                        ));
                    }
                }
                after_separator = false;
            }
        }
    }
    finish(cur.take(), &mut parts);
    // An uncertain boundary at page n: the part that holds n goes to review, and when n
    // begins it (an uncertain split), the part before too.
    for (page, confidence) in uncertain_before_page {
        let Some(i) = parts.iter().position(|p| p.first <= page && page <= p.last) else {
            continue;
        };
        let from = if parts[i].first == page {
            i.saturating_sub(1)
        } else {
            i
        };
        let reason = format!(
            "Stapel: unsicher, ob auf Seite {page} ein neuer Brief beginnt (Sicherheit {:.0} %). \
             Bitte die Trennung prüfen und Trennstellen bei Bedarf verschieben.",
            confidence * 100.0
        );
        for part in &mut parts[from..=i] {
            part.confidence = part.confidence.min(confidence);
            part.review_reason.get_or_insert(reason.clone());
        }
    }
    Plan {
        pages: planned,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::batch::Barcode;
    use crate::extract::{Page, Word};

    fn settings() -> SplitSettings {
        SplitSettings {
            separator_barcode: "POSTSTELLE-TRENNBLATT".into(),
            drop_blank_pages: true,
            min_confidence: 0.7,
            address_markers: vec!["Stadt Musterstadt".into()],
        }
    }

    /// A page with `text` (one OCR line per text line, laid out from the top).
    fn content(n: u32, text: &str) -> (u32, Result<PageAnalysis, String>) {
        let mut words = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut x = 200.0;
            for w in line.split_whitespace() {
                words.push(Word {
                    text: w.into(),
                    x,
                    y: 300.0 + i as f32 * 50.0,
                    w: 20.0 * w.len() as f32,
                    h: 30.0,
                    conf: 90.0,
                    line: i as u32 + 1,
                });
                x += 20.0 * w.len() as f32 + 20.0;
            }
        }
        (
            n,
            Ok(PageAnalysis {
                number: n,
                page_count: 0,
                ink: 0.05,
                specks: 0,
                barcodes: Vec::new(),
                patch: None,
                ocr: Some(Page {
                    number: n,
                    text: text.into(),
                    words,
                    width: 2480.0,
                    height: 3508.0,
                    units_per_mm: 11.8,
                }),
                width: 2480,
                height: 3508,
                units_per_mm: 11.8,
            }),
        )
    }

    fn blank(n: u32) -> (u32, Result<PageAnalysis, String>) {
        let (n, a) = content(n, "");
        let mut a = a.expect("page");
        a.ocr = None;
        a.ink = 0.0001;
        (n, Ok(a))
    }

    fn barcode_sheet(n: u32, value: &str) -> (u32, Result<PageAnalysis, String>) {
        let (n, a) = blank(n);
        let mut a = a.expect("page");
        a.ink = 0.01;
        a.barcodes = vec![Barcode {
            format: "CODE_128".into(),
            value: value.into(),
        }];
        (n, Ok(a))
    }

    fn patch_t(n: u32) -> (u32, Result<PageAnalysis, String>) {
        let (n, a) = blank(n);
        let mut a = a.expect("page");
        a.ink = 0.03;
        a.patch = Some("T".into());
        (n, Ok(a))
    }

    const FIRST: &str = "Erika Mustermann · Lindenweg 4 · 12345 Musterstadt\n\
        Stadt Musterstadt\nOrdnungsamt\nMarktplatz 1\n12345 Musterstadt\n\
        Musterstadt, 03.02.2025\nHundesteuer für Bello\nSehr geehrte Damen und Herren,\n\
        hiermit melde ich meinen Hund an.";
    const NEXT: &str = "und bitte um einen Bescheid über die Steuer.\nSeite 2 von 2\n\
        Mit freundlichen Grüßen\nErika Mustermann";

    fn ranges(plan: &Plan) -> Vec<String> {
        plan.parts.iter().map(Part::range).collect()
    }

    #[test]
    fn separators_blank_back_sides_and_letter_starts_split_a_stack() {
        let pages = vec![
            content(1, FIRST),
            blank(2),
            content(3, NEXT),
            blank(4),
            patch_t(5),
            blank(6),
            content(7, FIRST),
            blank(8),
            barcode_sheet(9, "POSTSTELLE-TRENNBLATT"),
            content(10, FIRST),
            content(11, NEXT),
            // No separator: the letter's first page tells.
            content(12, FIRST),
            blank(13),
        ];
        let plan = plan(&pages, &settings(), None);
        assert_eq!(ranges(&plan), ["1-4", "7-8", "10-11", "12-13"]);
        assert_eq!(plan.parts[0].pages, [1, 3]);
        assert_eq!(plan.parts[0].dropped, [2, 4]);
        assert_eq!(plan.parts[1].started_by, StartedBy::Separator);
        assert_eq!(plan.parts[3].started_by, StartedBy::LetterStart);
        assert!(!plan.uncertain(), "{plan:#?}");
    }

    #[test]
    fn a_barcode_with_another_value_is_no_separator() {
        let pages = vec![
            content(1, FIRST),
            barcode_sheet(2, "GIROCODE"),
            content(3, NEXT),
        ];
        let plan = plan(&pages, &settings(), None);
        // The page with the foreign barcode is no separator: the letter stays whole.
        assert_eq!(ranges(&plan), ["1-3"]);
    }

    #[test]
    fn an_uncertain_continuation_sends_its_part_to_review() {
        // Salutation and date, but no address field: maybe a new letter, maybe not.
        let unsure =
            "Musterstadt, 05.02.2025\nLiebe Frau Schmidt,\nwie besprochen schicke ich Ihnen";
        let pages = vec![
            content(1, FIRST),
            content(2, unsure),
            patch_t(3),
            content(4, FIRST),
        ];
        let plan = plan(&pages, &settings(), None);
        assert_eq!(ranges(&plan), ["1-2", "4"]);
        let reason = plan.parts[0].review_reason.clone().unwrap_or_default();
        assert!(reason.contains("Seite 2"), "{reason}");
        assert!(plan.parts[1].review_reason.is_none());
    }

    #[test]
    fn an_uncertain_split_sends_the_parts_on_both_sides_to_review() {
        // An address field and a date, no salutation: more likely a new letter, not sure.
        let unsure = "Stadt Musterstadt\nMarktplatz 1\n12345 Musterstadt\n\
            Musterstadt, 05.02.2025\nBetreff: Unterlagen";
        let pages = vec![
            content(1, FIRST),
            patch_t(2),
            content(3, FIRST),
            content(4, unsure),
        ];
        let plan = plan(&pages, &settings(), None);
        assert_eq!(ranges(&plan), ["1", "3", "4"], "{plan:#?}");
        assert!(plan.parts[0].review_reason.is_none());
        assert!(plan.parts[1].review_reason.is_some() && plan.parts[2].review_reason.is_some());
    }

    #[test]
    fn a_broken_page_marks_only_its_part() {
        let pages = vec![
            content(1, FIRST),
            patch_t(2),
            content(3, FIRST),
            (4, Err("Das PDF ist beschädigt.".into())),
            patch_t(5),
            content(6, FIRST),
        ];
        let plan = plan(&pages, &settings(), None);
        assert_eq!(ranges(&plan), ["1", "3-4", "6"]);
        assert!(plan.parts[0].broken.is_none() && plan.parts[2].broken.is_none());
        let reason = plan.parts[1].broken.clone().unwrap_or_default();
        assert!(reason.contains("Seite 4"), "{reason}");
    }

    #[test]
    fn a_person_s_split_points_decide() {
        let pages = vec![
            content(1, FIRST),
            content(2, NEXT),
            content(3, FIRST),
            blank(4),
        ];
        let plan = plan(&pages, &settings(), Some(&[1, 2, 3]));
        assert_eq!(ranges(&plan), ["1", "2", "3-4"]);
        assert!(plan.parts.iter().all(|p| p.started_by == StartedBy::Person));
        assert!(!plan.uncertain());
    }

    #[test]
    fn continuation_cues_outweigh_a_salutation() {
        let p = content(1, "- 2 -\nSeite 2 von 3\nSehr geehrte Damen und Herren").1;
        let (score, cues) = letter_start(&p.expect("page").ocr.expect("ocr"), &[]);
        assert!(score < 0.2, "{score} {cues:?}");
        let first = content(1, FIRST).1.expect("page").ocr.expect("ocr");
        assert!(letter_start(&first, &[]).0 >= 0.8);
    }
}
