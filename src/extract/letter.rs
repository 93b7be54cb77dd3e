//! Letter segmentation: page 1 cut into text blocks by layout, and the blocks labelled as the
//! parts of a letter (sender, recipient, date line, subject, salutation).
//!
//! With word positions (OCR word boxes, or the boxes of a PDF text layer) the page's lines are
//! cut where words stand far apart (two columns side by side: a letterhead on the right, the
//! address on the left) and stacked into blocks by vertical gaps and horizontal overlap. Without
//! positions (plain text, e-mail) blocks are the runs between blank lines. Either way the blocks
//! are then cut once more where a line starts a new part (after a postcode line, before a
//! salutation, around a date line, a Betreff line or a one-line return address), so that lost
//! blank lines and OCR specks do not merge the parts.
//!
//! The labels come from cues, none of which decides alone: the recipient block is address-like
//! (it ends in a postcode line), names the town ([`read_page`]'s `markers`), starts with "An
//! die", or stands where DIN 5008 form A or B puts the address field; the sender is an e-mail's
//! `Von:`, a labelled field ("Absender:", "Name:"), the return-address line above the address
//! field, an address block above the recipient (top left or top right), a letterhead, or, as a
//! fallback, an address in the footer or the name below the closing.

use super::metadata::parse_date;
use super::zones::strip_ocr_specks;
use super::{Page, Word};
use regex::Regex;
use std::sync::LazyLock;

/// A box on the page in millimetres from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl Rect {
    fn union(self, o: Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    /// Horizontal overlap in mm (negative: the gap between them).
    fn h_overlap(&self, o: &Rect) -> f32 {
        self.x1.min(o.x1) - self.x0.max(o.x0)
    }
}

/// One line of text (OCR specks stripped), with its box when positions are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The text.
    pub text: String,
    /// Where it stands on the page.
    pub bbox: Option<Rect>,
}

/// Lines that belong together by layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    /// The lines, top to bottom.
    pub lines: Vec<Line>,
}

impl Block {
    /// The box around all lines, when positions are known.
    pub fn bbox(&self) -> Option<Rect> {
        self.lines.iter().filter_map(|l| l.bbox).reduce(Rect::union)
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }
}

/// The labelled parts of a letter's first page. Empty vectors and `None` mean "not found".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Letter {
    /// The sender block, its first line the name (an e-mail's `Von:` value).
    pub sender: Vec<String>,
    /// The recipient block (an e-mail's `An:` value).
    pub recipient: Vec<String>,
    /// The date line as written ("Musterstadt, den 03.02.2025").
    pub date: Option<String>,
    /// The subject, without a "Betreff:" prefix.
    pub subject: Option<String>,
    /// The salutation line.
    pub salutation: Option<String>,
}

/// Reads page 1 of a letter: by the word boxes when the page has them, else by its text.
/// `markers` are words that identify the town (e.g. "Stadt Musterstadt").
pub fn read_page(page: &Page, markers: &[String]) -> Letter {
    if !page.words.is_empty() && page.units_per_mm > 0.0 {
        let blocks = blocks_from_words(&page.words, page.units_per_mm);
        if !blocks.is_empty() {
            return label(&refine(blocks), markers);
        }
    }
    read_text(&page.text, markers)
}

/// Reads a letter from its text alone (blocks are the runs between blank lines).
pub fn read_text(text: &str, markers: &[String]) -> Letter {
    label(&refine(blocks_from_text(text)), markers)
}

/// The blocks of a text: runs of lines between blank lines (the first 80 lines).
pub fn blocks_from_text(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut cur = Block::default();
    for raw in text.lines().take(80) {
        let t = clean(raw);
        if raw.trim().is_empty() {
            if !cur.lines.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(t) = t {
            cur.lines.push(Line {
                text: t,
                bbox: None,
            });
        }
    }
    if !cur.lines.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// A line without specks; `None` when nothing readable is left.
fn clean(raw: &str) -> Option<String> {
    let t = strip_ocr_specks(raw).trim();
    t.chars()
        .any(char::is_alphanumeric)
        .then(|| t.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The blocks of a page from its word boxes (`units_per_mm` converts the boxes to mm), in
/// reading order (top to bottom, left to right).
pub fn blocks_from_words(words: &[Word], units_per_mm: f32) -> Vec<Block> {
    let segments = segments(words, units_per_mm);
    if segments.is_empty() {
        return Vec::new();
    }
    let mut heights: Vec<f32> = segments.iter().map(|(_, r)| r.height()).collect();
    let h = median(&mut heights).max(1.0);
    // The usual gap between two lines of one paragraph: the median gap to the nearest line
    // above that overlaps horizontally.
    let mut gaps: Vec<f32> = Vec::new();
    for (i, (_, r)) in segments.iter().enumerate() {
        let above = segments[..i]
            .iter()
            .filter(|(_, o)| o.h_overlap(r) > 0.0 && o.y1 <= r.y0 + 0.3 * h)
            .map(|(_, o)| r.y0 - o.y1)
            .fold(f32::INFINITY, f32::min);
        if above.is_finite() && above < 3.0 * h {
            gaps.push(above.max(0.0));
        }
    }
    let line_gap = if gaps.is_empty() {
        0.4 * h
    } else {
        median(&mut gaps)
    };
    let limit = (0.8 * h).max(1.6 * line_gap);
    let mut blocks: Vec<Block> = Vec::new();
    for (text, r) in segments {
        let mut best: Option<(usize, f32)> = None;
        for (bi, b) in blocks.iter().enumerate() {
            let Some(last) = b.lines.last().and_then(|l| l.bbox) else {
                continue;
            };
            let gap = r.y0 - last.y1;
            let lh = last.height().min(r.height()).max(1.0);
            let aligned = last.h_overlap(&r) > 0.0 || (last.x0 - r.x0).abs() < 4.0;
            if aligned && gap <= limit && gap >= -0.6 * lh && best.is_none_or(|(_, g)| gap < g) {
                best = Some((bi, gap));
            }
        }
        let line = Line {
            text,
            bbox: Some(r),
        };
        match best {
            Some((bi, _)) => blocks[bi].lines.push(line),
            None => blocks.push(Block { lines: vec![line] }),
        }
    }
    sort_reading_order(&mut blocks);
    blocks
}

fn sort_reading_order(blocks: &mut [Block]) {
    blocks.sort_by(|a, b| {
        let (Some(ra), Some(rb)) = (a.bbox(), b.bbox()) else {
            return std::cmp::Ordering::Equal;
        };
        // Blocks starting on the same line (within 2 mm) read left to right.
        if (ra.y0 - rb.y0).abs() < 2.0 {
            ra.x0.total_cmp(&rb.x0)
        } else {
            ra.y0.total_cmp(&rb.y0)
        }
    });
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// The page's lines cut at wide horizontal gaps: (text, box in mm), top to bottom. A gap after
/// a label ending in `:` ("Name:      Ewa Nowak") does not cut.
fn segments(words: &[Word], u: f32) -> Vec<(String, Rect)> {
    let mut lines: Vec<(u32, Vec<(&str, Rect)>)> = Vec::new();
    for w in words {
        let text = w.text.trim();
        if text.is_empty() || w.w <= 0.0 || w.h <= 0.0 {
            continue;
        }
        let r = Rect {
            x0: w.x / u,
            y0: w.y / u,
            x1: (w.x + w.w) / u,
            y1: (w.y + w.h) / u,
        };
        match lines.iter_mut().find(|(n, _)| *n == w.line) {
            Some((_, ws)) => ws.push((text, r)),
            None => lines.push((w.line, vec![(text, r)])),
        }
    }
    let mut out = Vec::new();
    for (_, mut ws) in lines {
        ws.sort_by(|a, b| a.1.x0.total_cmp(&b.1.x0));
        let mut hs: Vec<f32> = ws.iter().map(|(_, r)| r.height()).collect();
        let h = median(&mut hs);
        let cut = (2.5 * h).max(7.0);
        let mut cur: Vec<(&str, Rect)> = Vec::new();
        let flush = |cur: &mut Vec<(&str, Rect)>, out: &mut Vec<(String, Rect)>| {
            let text: Vec<&str> = cur.iter().map(|(t, _)| *t).collect();
            let rect = cur.iter().map(|(_, r)| *r).reduce(Rect::union);
            if let (Some(text), Some(rect)) = (clean(&text.join(" ")), rect) {
                out.push((text, rect));
            }
            cur.clear();
        };
        for (t, r) in ws {
            if let Some((prev, pr)) = cur.last() {
                let gap = r.x0 - pr.x1;
                let label = prev.ends_with(':') && gap < 70.0;
                if gap > cut && !label {
                    flush(&mut cur, &mut out);
                }
            }
            cur.push((t, r));
        }
        flush(&mut cur, &mut out);
    }
    // A label and its value that the reader put on two lines ("Name:" ... "Ewa Nowak").
    let mut i = 0;
    while i < out.len() {
        let (text, r) = (&out[i].0, out[i].1);
        let value = text.ends_with(':').then(|| {
            out.iter()
                .enumerate()
                .filter(|(j, (_, o))| {
                    *j != i
                        && o.x0 >= r.x1
                        && o.x0 - r.x1 < 70.0
                        && ((o.y0 + o.y1) - (r.y0 + r.y1)).abs() / 2.0
                            < 0.4 * r.height().min(o.height())
                })
                .min_by(|a, b| a.1.1.x0.total_cmp(&b.1.1.x0))
                .map(|(j, _)| j)
        });
        match value.flatten() {
            Some(j) => {
                let (vt, vr) = out.remove(j);
                let at = if j < i { i - 1 } else { i };
                out[at].0 = format!("{} {vt}", out[at].0);
                out[at].1 = out[at].1.union(vr);
            }
            None => i += 1,
        }
    }
    out.sort_by(|a, b| a.1.y0.total_cmp(&b.1.y0));
    out
}

static POSTCODE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:D-?\s?)?\d{5}\s+\p{L}").expect("static regex"));
static ENDS_IN_POSTCODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s,·•|])(?:D-?\s?)?\d{5}\s+\p{L}[\p{L}\-. ()/]*$").expect("static regex")
});
static COUNTRY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(deutschland|germany)\s*$").expect("static regex"));
static RETURN_SEP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*(?:[·•|*«»,]|\s[-–:.]\s)\s*").expect("static regex"));
static STREET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(.+?)\s+(\S*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|pfad|chaussee|markt|steig|hof|postfach)\s*[\d ]+[a-z]?)\s+((?:D-?\s?)?\d{5}\s+\p{L}.*)$",
    )
    .expect("static regex")
});
static SUBJECT_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:betreff|betr|subject|thema)\s*[:;.]|betreff\b)\s*(.*)$")
        .expect("static regex")
});
static SALUTATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(sehr geehrte|guten tag|hallo|liebe|lieber|moin|servus|grüß gott|hi\b|werte|geehrte)",
    )
    .expect("static regex")
});
static CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(mit freundlichen grü(ß|ss)en|mit freundlichem gru(ß|ss)|freundliche grü(ß|ss)e|viele grü(ß|ss)e|beste grü(ß|ss)e|herzliche grü(ß|ss)e|mit besten grü(ß|ss)en|hochachtungsvoll|mfg\b)",
    )
    .expect("static regex")
});
/// A line that is a date and nothing else, after an optional place ("Musterstadt, den") or
/// label ("Datum:", "Gesendet:") and weekday; a time may follow.
static DATE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*
        (?:(?:datum|date|gesendet|sent|den|am)\s*[:.]?\s*|\p{L}[\p{L}\ .\-/()]{1,40},\s*(?:den\s+|am\s+)?)?
        (?:(?:mo|di|mi|do|fr|sa|so|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag)\.?,?\s*)?
        (?:\d{1,2}\.\s?\d{1,2}\.\s?(?:\d{4}|\d{2})|\d{1,2}\.\s*\p{L}{3,10}\.?\s+\d{4}|\d{4}-\d{2}-\d{2})
        (?:\s*,?\s*(?:um\s+)?\d{1,2}[:.]\d{2}(?::\d{2})?(?:\s*uhr)?)?\s*$",
    )
    .expect("static regex")
});
static EMAIL_TO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:an|to)\s*:\s*(.+)$").expect("static regex"));
static EMAIL_FROM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:von|from)\s*:\s*(.+)$").expect("static regex"));
static TO_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(an\s+(die|das|den)\b|an\s*$|z\.\s?hd)").expect("static regex")
});
/// A labelled sender field: "Absender:", "Antragsteller/in:", "Name:", "Name, Vorname:".
static SENDER_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:absender(?:in)?|antragsteller(?:/?in)?|antragstellende person|einsender(?:in)?|(?:vor-\s*und\s*zu)?name(?:,\s*vorname)?|vorname(?:,|\s+und)\s*(?:nach)?name)\s*:\s*(.*)$",
    )
    .expect("static regex")
});
static ADDRESS_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:anschrift|adresse|wohnanschrift|straße(?:,?\s*(?:haus)?nr\.?|,?\s*hausnummer)?|plz,?\s*(?:und\s*)?(?:ort|wohnort)|wohnort)\s*:\s*(.+)$",
    )
    .expect("static regex")
});
static REMARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(einschreiben|persönlich|vertraulich|eilt|eilsache|rückschein|einwurf|per\s+(fax|e-?mail|boten))")
        .expect("static regex")
});
/// Lines of an information column or a letterhead's contact part, never a name.
static INFO_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(ihr(e)?\s+(zeichen|nachricht|schreiben)|unser(e)?\s+(zeichen|nachricht)|mein\s+zeichen|aktenzeichen|az\.|telefon|tel\.|fax|e-?mail|internet|www\.|durchwahl|zimmer|sachbearbeit|kunden|rechnungs|datum|iban|bic|bank|ust|steuer|sitz|amtsgericht|registergericht|geschäftsführ|vorstand|seite|einschreiben|persönlich|vertraulich|per\s+(fax|e-?mail))",
    )
    .expect("static regex")
});

fn is_postcode_line(l: &str) -> bool {
    POSTCODE_LINE.is_match(l)
}

/// True for "Ewa Nowak · Birkenweg 12 · 54321 Musterstadt" (a one-line return address).
fn return_address(l: &str) -> Option<Vec<String>> {
    if l.chars().count() > 140 || is_postcode_line(l) || !ENDS_IN_POSTCODE.is_match(l) {
        return None;
    }
    let parts: Vec<String> = RETURN_SEP
        .split(l)
        .map(str::trim)
        .filter(|p| p.chars().any(char::is_alphanumeric))
        .map(str::to_string)
        .collect();
    if parts.len() >= 3 && parts.last().is_some_and(|p| is_postcode_line(p)) {
        return Some(parts);
    }
    let c = STREET.captures(l)?;
    Some(
        [c.get(1), c.get(2), c.get(3)]
            .iter()
            .flatten()
            .map(|m| m.as_str().trim().to_string())
            .collect(),
    )
}

/// True for a line that is a date line.
pub fn is_date_line(l: &str) -> bool {
    DATE_LINE.is_match(l) && parse_date(l).is_some()
}

fn names_town(s: &str, markers: &[String]) -> bool {
    let l = s.to_lowercase();
    markers
        .iter()
        .any(|m| !m.trim().is_empty() && l.contains(&m.to_lowercase()))
}

/// Cuts blocks where a new part of the letter starts: after a postcode line (unless a
/// country follows), around a date line, a Betreff line and a return-address line, before a
/// salutation and a closing.
fn refine(blocks: Vec<Block>) -> Vec<Block> {
    let mut out = Vec::new();
    for b in blocks {
        let mut cur = Block::default();
        let n = b.lines.len();
        for (i, line) in b.lines.into_iter().enumerate() {
            let t = line.text.as_str();
            let alone = is_date_line(t)
                || SUBJECT_PREFIX.is_match(t)
                || return_address(t).is_some()
                || EMAIL_FROM.is_match(t);
            let starts = alone || SALUTATION.is_match(t) || CLOSING.is_match(t);
            if starts && !cur.lines.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            let ends_address = is_postcode_line(t);
            cur.lines.push(line);
            if alone || (ends_address && i + 1 < n) {
                out.push(std::mem::take(&mut cur));
            }
        }
        if !cur.lines.is_empty() {
            out.push(cur);
        }
    }
    // A country line after an address goes back to it.
    let mut merged: Vec<Block> = Vec::new();
    for b in out {
        let country = b.lines.len() == 1 && COUNTRY.is_match(&b.lines[0].text);
        match merged.last_mut() {
            Some(prev)
                if country && prev.lines.last().is_some_and(|l| is_postcode_line(&l.text)) =>
            {
                prev.lines.extend(b.lines)
            }
            _ => merged.push(b),
        }
    }
    merged
}

/// The address part of a block: the lines up to its postcode line (at most six), when the
/// block is address-like (two lines or more, ending in a postcode line and maybe a country).
fn address_lines(b: &Block) -> Option<Vec<String>> {
    let t = b.texts();
    let end = t.iter().rposition(|l| is_postcode_line(l))?;
    if end + 1 < t.len() && !(end + 2 == t.len() && COUNTRY.is_match(t[end + 1])) {
        return None;
    }
    let mut start = (end + 1).saturating_sub(6);
    // Remarks above the address ("Einschreiben", "Persönlich") are not part of it.
    while start < end && REMARK.is_match(t[start]) {
        start += 1;
    }
    let lines: Vec<String> = t[start..].iter().map(|s| s.to_string()).collect();
    (end > start).then_some(lines)
}

struct Candidate {
    block: usize,
    lines: Vec<String>,
    score: i32,
}

fn recipient_candidates(blocks: &[Block], markers: &[String]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        let Some(lines) = address_lines(b) else {
            continue;
        };
        let mut score = 0;
        if lines.iter().any(|l| names_town(l, markers)) {
            score += 4;
        }
        // "An die" / "An" on the first line or as a block of its own just above.
        let prev_to = bi > 0
            && blocks[bi - 1].lines.len() == 1
            && TO_LINE.is_match(&blocks[bi - 1].lines[0].text);
        if lines.first().is_some_and(|l| TO_LINE.is_match(l)) || prev_to {
            score += 3;
        }
        if lines
            .first()
            .is_some_and(|l| SENDER_LABEL.is_match(l) || EMAIL_FROM.is_match(l))
        {
            score -= 5;
        }
        if lines
            .iter()
            .any(|l| INFO_LINE.is_match(l) || l.contains('@'))
        {
            score -= 2;
        }
        if let Some(r) = b.bbox() {
            // DIN 5008: the address field's lines stand 20-25 mm from the left, from 40 mm
            // (form A) to 90 mm (form B) from the top.
            if (12.0..=40.0).contains(&r.x0) && (36.0..=95.0).contains(&r.y0) {
                score += 2;
            }
            if r.x0 > 95.0 {
                score -= 2;
            }
            if r.y0 > 230.0 {
                score -= 4;
            }
        }
        out.push(Candidate {
            block: bi,
            lines,
            score,
        });
    }
    out
}

/// Labels blocks (in reading order) as the parts of a letter.
fn label(blocks: &[Block], markers: &[String]) -> Letter {
    let mut letter = Letter::default();
    let all: Vec<(usize, &str)> = blocks
        .iter()
        .enumerate()
        .flat_map(|(bi, b)| b.lines.iter().map(move |l| (bi, l.text.as_str())))
        .collect();
    let head: Vec<&str> = all.iter().take(10).map(|(_, t)| *t).collect();

    // Salutation.
    let sal = all
        .iter()
        .take(80)
        .position(|(_, t)| SALUTATION.is_match(t));
    letter.salutation = sal.map(|i| all[i].1.to_string());
    let sal_block = sal.map(|i| all[i].0);

    // E-mail header fields.
    let email_to = head.iter().find_map(|l| {
        EMAIL_TO
            .captures(l)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().trim().to_string())
    });
    let email_from = head.iter().find_map(|l| {
        EMAIL_FROM
            .captures(l)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().trim().to_string())
    });

    // Recipient.
    let mut cands = recipient_candidates(blocks, markers);
    let before_sal = |bi: usize| sal_block.is_none_or(|s| bi < s);
    cands.retain(|c| before_sal(c.block) || c.score > 0);
    let best = cands
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (c.score, *i))
        .map(|(_, c)| c);
    let mut recipient_block = None;
    if let Some(to) = &email_to {
        letter.recipient = vec![to.clone()];
    } else if let Some(c) = best {
        letter.recipient = c.lines.clone();
        recipient_block = Some(c.block);
    } else if let Some(bi) = blocks.iter().position(|b| {
        b.bbox().is_some_and(|r| {
            (12.0..=40.0).contains(&r.x0) && (36.0..=95.0).contains(&r.y0) && b.lines.len() >= 2
        })
    }) {
        letter.recipient = blocks[bi].texts().iter().map(|s| s.to_string()).collect();
        recipient_block = Some(bi);
    }
    let rec_top = recipient_block
        .and_then(|bi| blocks[bi].bbox())
        .map(|r| r.y0);
    let above_recipient = |bi: usize| match (recipient_block, rec_top, blocks[bi].bbox()) {
        (Some(_), Some(top), Some(r)) => r.y0 < top - 1.0,
        (Some(rb), _, _) => bi < rb,
        (None, _, _) => sal_block.is_none_or(|s| bi < s),
    };

    // Date line: the first one outside the address blocks, before the salutation.
    letter.date = all
        .iter()
        .filter(|(bi, _)| Some(*bi) != recipient_block && before_sal(*bi))
        .find(|(_, t)| is_date_line(t))
        .map(|(_, t)| t.to_string());

    letter.subject = subject(blocks, &all, sal, recipient_block);
    letter.sender = sender(
        blocks,
        markers,
        email_from,
        recipient_block,
        &above_recipient,
        sal_block,
    );
    letter
}

fn subject(
    blocks: &[Block],
    all: &[(usize, &str)],
    sal: Option<usize>,
    recipient_block: Option<usize>,
) -> Option<String> {
    for (i, (_, t)) in all.iter().enumerate().take(80) {
        if let Some(c) = SUBJECT_PREFIX.captures(t) {
            let v = c.get(1).map(|m| m.as_str().trim()).unwrap_or_default();
            if !v.is_empty() {
                return Some(v.to_string());
            }
            if let Some((_, next)) = all.get(i + 1) {
                return Some(next.to_string());
            }
        }
    }
    let plausible = |bi: usize, t: &str| {
        Some(bi) != recipient_block
            && !is_date_line(t)
            && !is_postcode_line(t)
            && !INFO_LINE.is_match(t)
            && return_address(t).is_none()
            && t.chars().count() < 160
    };
    if let Some(s) = sal {
        let (bi, t) = *all.get(s.checked_sub(1)?)?;
        return plausible(bi, t).then(|| t.to_string());
    }
    // No salutation (a form): a short block of one or two lines after the recipient that
    // more text follows, e.g. "Antrag auf Erteilung einer Sondernutzungserlaubnis".
    let start = recipient_block? + 1;
    blocks
        .iter()
        .enumerate()
        .skip(start)
        .take_while(|(bi, _)| bi + 1 < blocks.len())
        .find(|(bi, b)| {
            let t = b.texts();
            !t.iter().any(|l| is_date_line(l))
                && (1..=2).contains(&t.len())
                && t.iter().all(|l| plausible(*bi, l) && !l.contains(':'))
        })
        .map(|(_, b)| b.texts().join(" "))
}

fn sender(
    blocks: &[Block],
    markers: &[String],
    email_from: Option<String>,
    recipient_block: Option<usize>,
    above_recipient: &dyn Fn(usize) -> bool,
    sal_block: Option<usize>,
) -> Vec<String> {
    if let Some(from) = email_from {
        return vec![from];
    }
    let not_recipient = |bi: usize| Some(bi) != recipient_block;
    // "Absender:" labels its block (or the next one).
    for (bi, b) in blocks
        .iter()
        .enumerate()
        .filter(|(bi, _)| not_recipient(*bi))
    {
        let t = b.texts();
        let Some(c) = t.first().and_then(|l| SENDER_LABEL.captures(l)) else {
            continue;
        };
        if !t[0].to_lowercase().trim_start().starts_with("absender") {
            continue;
        }
        let v = c.get(1).map(|m| m.as_str().trim()).unwrap_or_default();
        let mut lines: Vec<String> = Vec::new();
        if !v.is_empty() {
            lines.push(v.to_string());
        }
        lines.extend(t[1..].iter().map(|s| s.to_string()));
        if lines.is_empty()
            && let Some(next) = blocks.get(bi + 1)
        {
            lines.extend(next.texts().iter().map(|s| s.to_string()));
        }
        if !lines.is_empty() {
            return lines;
        }
    }
    // The return-address line above (or on top of) the recipient.
    for (bi, b) in blocks.iter().enumerate() {
        if !(above_recipient(bi) || Some(bi + 1) == recipient_block) {
            continue;
        }
        if let Some(parts) = b.lines.first().and_then(|l| return_address(&l.text))
            && !parts.iter().any(|p| names_town(p, markers))
        {
            return parts;
        }
    }
    // An address block above the recipient (top left or top right), not the town's.
    let usable = |bi: usize, lines: &[String]| {
        not_recipient(bi) && !lines.iter().any(|l| names_town(l, markers))
    };
    for (bi, b) in blocks.iter().enumerate() {
        if let Some(lines) = address_lines(b)
            && above_recipient(bi)
            && usable(bi, &lines)
            && !lines.first().is_some_and(|l| TO_LINE.is_match(l))
        {
            return lines;
        }
    }
    // A form's labelled fields: "Name: ...", "Anschrift: ...".
    for (bi, b) in blocks
        .iter()
        .enumerate()
        .filter(|(bi, _)| not_recipient(*bi))
    {
        for (li, l) in b.lines.iter().enumerate() {
            let Some(c) = SENDER_LABEL.captures(&l.text) else {
                continue;
            };
            let v = c.get(1).map(|m| m.as_str().trim()).unwrap_or_default();
            if v.is_empty() {
                continue;
            }
            let mut lines = vec![v.to_string()];
            let rest = b.lines[li + 1..].iter().chain(
                blocks
                    .get(bi + 1)
                    .map(|n| n.lines.as_slice())
                    .unwrap_or(&[]),
            );
            for r in rest.take(3) {
                if let Some(a) = ADDRESS_LABEL.captures(&r.text).and_then(|c| c.get(1)) {
                    lines.push(a.as_str().trim().to_string());
                }
            }
            return lines;
        }
    }
    // A letterhead: the first block above the recipient that is no date, information line or
    // part of the address field. A lone word (a logo) gives way to an address in the footer.
    let mut logo: Option<Vec<String>> = None;
    for (bi, b) in blocks.iter().enumerate() {
        if !above_recipient(bi) || recipient_block.is_none() {
            break;
        }
        let t = b.texts();
        let first = t.first().copied().unwrap_or_default();
        if is_date_line(first)
            || INFO_LINE.is_match(first)
            || TO_LINE.is_match(first)
            || SUBJECT_PREFIX.is_match(first)
            || first.contains(':')
            || names_town(&t.join(" "), markers)
        {
            continue;
        }
        let lines: Vec<String> = t.iter().map(|s| s.to_string()).collect();
        if t.len() == 1 && !first.contains(' ') {
            logo = Some(lines);
            break;
        }
        return lines;
    }
    // Fallbacks: an address in the footer, the logo, then the name under the closing.
    let after_sal = |bi: usize| sal_block.is_some_and(|s| bi > s);
    for (bi, b) in blocks.iter().enumerate() {
        if let Some(lines) = address_lines(b)
            && after_sal(bi)
            && usable(bi, &lines)
        {
            return lines;
        }
    }
    if let Some(logo) = logo {
        return logo;
    }
    for (bi, b) in blocks.iter().enumerate() {
        let t = b.texts();
        if let Some(ci) = t.iter().position(|l| CLOSING.is_match(l)) {
            let next = t.get(ci + 1).map(|s| s.to_string()).or_else(|| {
                blocks
                    .get(bi + 1)
                    .and_then(|n| n.texts().first().map(|s| s.to_string()))
            });
            if let Some(name) = next.filter(|n| n.chars().count() < 60 && !INFO_LINE.is_match(n)) {
                return vec![name];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers() -> Vec<String> {
        vec!["Stadt Musterstadt".into(), "Rathausplatz".into()]
    }

    const NOWAK: &str = "Ewa Nowak\nBirkenweg 12\n54321 Musterstadt\n\nAn die\nStadt Musterstadt\n\
        Marktplatz 1\n54321 Musterstadt\n\nMusterstadt, 03.02.2025\n\n\
        Betreff: Anmeldung zum Sperrmüll\n\nSehr geehrte Damen und Herren,\n\
        ich möchte Sperrmüll anmelden.\n\nMit freundlichen Grüßen\nEwa Nowak";

    #[test]
    fn a_citizen_letter_as_text_is_cut_into_its_parts() {
        let l = read_text(NOWAK, &markers());
        assert_eq!(l.sender, ["Ewa Nowak", "Birkenweg 12", "54321 Musterstadt"]);
        assert_eq!(
            l.recipient,
            [
                "An die",
                "Stadt Musterstadt",
                "Marktplatz 1",
                "54321 Musterstadt"
            ]
        );
        assert_eq!(l.date.as_deref(), Some("Musterstadt, 03.02.2025"));
        assert_eq!(l.subject.as_deref(), Some("Anmeldung zum Sperrmüll"));
        assert_eq!(
            l.salutation.as_deref(),
            Some("Sehr geehrte Damen und Herren,")
        );
    }

    #[test]
    fn lost_blank_lines_and_specks_do_not_merge_the_parts() {
        let scan = NOWAK
            .replace("\n\n", "\n")
            .replace("Birkenweg 12", "Birkenweg 12 ;");
        let l = read_text(&format!(": |\n{scan}"), &markers());
        assert_eq!(l.sender.first().map(String::as_str), Some("Ewa Nowak"));
        assert_eq!(l.recipient.len(), 4, "{:?}", l.recipient);
        assert_eq!(l.recipient[1], "Stadt Musterstadt");
        assert_eq!(l.subject.as_deref(), Some("Anmeldung zum Sperrmüll"));
        assert!(l.date.is_some());
    }

    #[test]
    fn without_a_sender_block_the_footer_then_the_signature_names_the_sender() {
        let text = "Stadt Musterstadt\nJugendamt\nRathausplatz 1\n12345 Musterstadt\n\n\
            Kita-Platz für unsere Tochter\n\nSehr geehrte Damen und Herren,\nbitte ...\n\n\
            Mit freundlichen Grüßen\nJonas Berger";
        let l = read_text(text, &markers());
        assert_eq!(l.sender, ["Jonas Berger"]);
        assert_eq!(l.subject.as_deref(), Some("Kita-Platz für unsere Tochter"));
        assert_eq!(l.date, None);
    }

    #[test]
    fn columns_side_by_side_are_separate_blocks() {
        let u = 300.0 / 25.4;
        let mut words = Vec::new();
        let mut line = 0;
        let mut put = |text: &str, x: f32, y: f32| {
            line += 1;
            let mut x = x;
            for t in text.split(' ') {
                let w = t.chars().count() as f32 * 2.0;
                words.push(Word {
                    text: t.into(),
                    x: x * u,
                    y: y * u,
                    w: w * u,
                    h: 3.5 * u,
                    conf: 90.0,
                    // Tesseract put both columns on one line.
                    line: (y * 10.0) as u32,
                });
                x += w + 1.0;
            }
        };
        put("Sonnenschein GmbH", 125.0, 20.0);
        put("Gartenstraße 5", 125.0, 25.0);
        put("12345 Musterstadt", 125.0, 30.0);
        put("Stadt Musterstadt", 25.0, 50.0);
        put("Ihr Zeichen: 4711", 125.0, 50.0);
        put("Stadtkasse", 25.0, 55.0);
        put("Datum: 03.02.2025", 125.0, 55.0);
        put("Rathausplatz 1", 25.0, 60.0);
        put("12345 Musterstadt", 25.0, 65.0);
        let _ = line;
        let blocks = blocks_from_words(&words, u);
        let texts: Vec<Vec<&str>> = blocks.iter().map(Block::texts).collect();
        assert!(
            texts.contains(&vec![
                "Stadt Musterstadt",
                "Stadtkasse",
                "Rathausplatz 1",
                "12345 Musterstadt"
            ]),
            "{texts:?}"
        );
        let l = label(&refine(blocks), &markers());
        assert_eq!(
            l.sender.first().map(String::as_str),
            Some("Sonnenschein GmbH")
        );
        assert_eq!(
            l.recipient.first().map(String::as_str),
            Some("Stadt Musterstadt")
        );
        assert_eq!(l.date.as_deref(), Some("Datum: 03.02.2025"));
    }

    #[test]
    fn date_lines() {
        for yes in [
            "Musterstadt, den 03.02.2025",
            "Datum: 3.2.25",
            "12. März 2025",
            "Gesendet: Montag, 3. Februar 2025 10:12",
            "M usterstadt, 03.02.2025",
        ] {
            assert!(is_date_line(yes), "{yes}");
        }
        for no in [
            "Ihr Schreiben vom 01.02.2025",
            "Rechnung 03.02.2025 bis 04.03.2025",
        ] {
            assert!(!is_date_line(no), "{no}");
        }
    }
}
