//! Zones of a letter's first page: the recipient's address field, the subject (Betreff), the
//! sender block, the date line and the salutation.
//!
//! The parts come from the letter segmentation ([`super::letter`]): page 1 cut into text blocks
//! by layout (word boxes of OCR or of the PDF text layer; blank lines for plain text and
//! e-mail), the blocks labelled by cues (address-like, names the town, "An die", DIN 5008
//! geometry, "Betreff:", the line before the salutation, an e-mail's `An:`). Only where no
//! block is address-like does the DIN 5008 window itself (85 x 45 mm at 20-25 mm from the left
//! and 27 mm (form A) or 45 mm (form B) from the top, with a margin) give the address field.

use super::{Extraction, Page, letter};

/// The zones of a document's text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Zones {
    /// The recipient address field of page 1.
    pub address: Option<String>,
    /// The subject line.
    pub subject: Option<String>,
    /// The sender block (lines separated by `\n`, the name first), when found.
    pub sender: Option<String>,
    /// The date line as written ("Musterstadt, den 03.02.2025").
    pub date_line: Option<String>,
    /// The salutation line.
    pub salutation: Option<String>,
    /// All of page 1.
    pub page1: String,
    /// All text read.
    pub all: String,
}

/// Address-field window in millimetres: (left, top, right, bottom), forms A and B together.
const ADDRESS_MM: (f32, f32, f32, f32) = (12.0, 22.0, 115.0, 95.0);

/// Finds the zones of an extraction. `markers` are words that identify the town (e.g.
/// "Musterstadt"); they pick the recipient block among several address-like blocks.
pub fn find(ex: &Extraction, markers: &[String]) -> Zones {
    let page1 = ex.pages.first();
    let page1_text = page1.map(|p| p.text.clone()).unwrap_or_default();
    let letter = page1
        .map(|p| letter::read_page(p, markers))
        .unwrap_or_default();
    let fallback = || page1.and_then(address_by_geometry);
    zones_of(letter, fallback, page1_text, ex.text())
}

/// Zones of a bare text (used by the CLI and training, where no boxes exist).
pub fn from_text(text: &str, markers: &[String]) -> Zones {
    let letter = letter::read_text(text, markers);
    zones_of(letter, || None, text.to_string(), text.to_string())
}

fn zones_of(
    letter: letter::Letter,
    geometry: impl FnOnce() -> Option<String>,
    page1: String,
    all: String,
) -> Zones {
    let join = |v: &[String]| (!v.is_empty()).then(|| v.join("\n"));
    Zones {
        address: join(&letter.recipient).or_else(geometry),
        subject: letter.subject,
        sender: join(&letter.sender),
        date_line: letter.date,
        salutation: letter.salutation,
        page1,
        all,
    }
}

fn address_by_geometry(page: &Page) -> Option<String> {
    if page.words.is_empty() || page.units_per_mm <= 0.0 {
        return None;
    }
    let u = page.units_per_mm;
    let (l, t, r, b) = ADDRESS_MM;
    let mut lines: Vec<(u32, f32, Vec<&str>)> = Vec::new();
    for w in &page.words {
        let cx = (w.x + w.w / 2.0) / u;
        let cy = (w.y + w.h / 2.0) / u;
        if cx >= l && cx <= r && cy >= t && cy <= b {
            match lines.iter_mut().find(|(line, _, _)| *line == w.line) {
                Some((_, _, ws)) => ws.push(&w.text),
                None => lines.push((w.line, w.y, vec![&w.text])),
            }
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.sort_by(|a, b| a.1.total_cmp(&b.1));
    let text: Vec<String> = lines.into_iter().map(|(_, _, ws)| ws.join(" ")).collect();
    Some(text.join("\n"))
}

/// A line without the specks OCR reads from dust and margins: leading and trailing tokens
/// that hold no letter or digit (`;`, `:`, `|`, `‚`), or a lone character standing before or
/// after the real text (`i 12345 Musterstadt`, `59063 Hamm l :`; a trailing digit stays: it is
/// likely a house number). Layout analysis works on
/// these cleaned lines, so a scan's specks do not hide a postcode line or a salutation.
pub fn strip_ocr_specks(line: &str) -> &str {
    let mut s = line.trim();
    loop {
        let mut tokens = s.split_whitespace();
        let (Some(first), Some(last)) = (tokens.next(), tokens.next_back()) else {
            return s;
        };
        if is_speck(first) {
            s = s[first.len()..].trim_start();
        } else if is_speck(last) && !last.chars().all(|c| c.is_ascii_digit()) {
            s = s[..s.len() - last.len()].trim_end();
        } else {
            return s;
        }
    }
}

fn is_speck(token: &str) -> bool {
    !token.chars().any(char::is_alphanumeric) || token.chars().count() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const LETTER: &str = "Erika Mustermann\nLindenweg 4\n12345 Musterstadt\n\nStadt Musterstadt\nBauordnungsamt\nRathausplatz 1\n12345 Musterstadt\n\nMusterstadt, 03.02.2025\n\nBauantrag für einen Carport, Flurstück 12\n\nSehr geehrte Damen und Herren,\nich beantrage ...";

    #[test]
    fn recipient_block_is_the_one_naming_the_town_office() {
        let z = from_text(LETTER, &["Stadt Musterstadt".to_string()]);
        assert_eq!(
            z.address.as_deref(),
            Some("Stadt Musterstadt\nBauordnungsamt\nRathausplatz 1\n12345 Musterstadt")
        );
    }

    #[test]
    fn subject_without_prefix_is_the_line_before_the_salutation() {
        let z = from_text(LETTER, &[]);
        assert_eq!(
            z.subject.as_deref(),
            Some("Bauantrag für einen Carport, Flurstück 12")
        );
    }

    #[test]
    fn subject_with_prefix_and_email_recipient() {
        let mail =
            "Von: a@b.de\nAn: steueramt@musterstadt.de\nBetreff: Hundesteuer Abmeldung\n\nHallo,";
        let z = from_text(mail, &[]);
        assert_eq!(z.subject.as_deref(), Some("Hundesteuer Abmeldung"));
        assert_eq!(z.address.as_deref(), Some("steueramt@musterstadt.de"));
    }

    #[test]
    fn ocr_specks_and_lost_blank_lines_do_not_hide_the_recipient_block() {
        // OCR of a scan: no blank lines, specks at line ends and starts.
        let scan = "Spedition Hellweg GmbH\nPersonalabteilung :\nLogistikpark 1-5\n59063 Hamm l :\n\
                    i Stadt Musterstadt 2 ;\nUnterhaltsvorschusskasse i\n. Rathausplatz 1\n\
                    i 12345 Musterstadt ‚ \\\nAuskunftsersuchen nach UVG\n. Sehr geehrte Damen und Herren,";
        let z = from_text(scan, &["Stadt Musterstadt".to_string()]);
        assert_eq!(
            z.address.as_deref(),
            Some(
                "Stadt Musterstadt 2\nUnterhaltsvorschusskasse\nRathausplatz 1\n12345 Musterstadt"
            )
        );
        assert_eq!(z.subject.as_deref(), Some("Auskunftsersuchen nach UVG"));
        assert_eq!(strip_ocr_specks("Haus 12 A"), "Haus 12");
        assert_eq!(strip_ocr_specks("; :"), ":");
        assert_eq!(strip_ocr_specks("Bauantrag"), "Bauantrag");
    }

    #[test]
    fn geometry_picks_words_inside_the_address_window() {
        let u = 300.0 / 25.4;
        let word = |t: &str, x_mm: f32, y_mm: f32, line: u32| super::super::Word {
            text: t.into(),
            x: x_mm * u,
            y: y_mm * u,
            w: 10.0 * u,
            h: 4.0 * u,
            conf: 90.0,
            line,
        };
        let page = Page {
            number: 1,
            text: String::new(),
            words: vec![
                word("Briefkopf", 140.0, 10.0, 1),
                word("Stadt", 25.0, 50.0, 2),
                word("Musterstadt", 40.0, 50.0, 2),
                word("Standesamt", 25.0, 56.0, 3),
                word("Betreff", 25.0, 110.0, 4),
            ],
            width: 2480.0,
            height: 3508.0,
            units_per_mm: u,
        };
        assert_eq!(
            address_by_geometry(&page).as_deref(),
            Some("Stadt Musterstadt\nStandesamt")
        );
    }
}
