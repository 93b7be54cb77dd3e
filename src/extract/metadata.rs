//! Metadata of a letter, read from its text: sender, date, subject, references (Aktenzeichen,
//! Kassenzeichen, customer numbers), IBANs (checksum-validated) and amounts.
//!
//! Pure functions over the extracted text and its zones; nothing is guessed: a field that
//! cannot be read with confidence stays empty.

use super::zones::Zones;
use crate::domain::{DocumentMetadata, InvoiceInfo};
use regex::Regex;
use std::sync::LazyLock;

/// Lines of page 1 looked at for the letterhead, sender block and date.
const HEAD_LINES: usize = 45;

static POSTCODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|\s)(?:D-?\s?)?\d{5}\s+\p{L}").expect("static regex"));
static POSTCODE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:D-?\s?)?\d{5}\s+\p{L}").expect("static regex"));
static RETURN_SEP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*(?:[·•|*«»]|\s[-–:]\s)\s*").expect("static regex"));
static SALUTATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(sehr geehrte|guten tag|hallo|liebe|lieber|moin|servus|grüß gott)")
        .expect("static regex")
});
static EMAIL_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^\s*(?:von|from)\s*:\s*(.*?)\s*<([^>\s]+@[^>\s]+)>\s*$|^\s*(?:von|from)\s*:\s*([^\s<>]+@[^\s<>]+)\s*$")
        .expect("static regex")
});
/// "Eva Schmitz <eva@example.org>" or a bare address.
static MAILBOX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(.*?)\s*<?([^\s<>]+@[^\s<>]+\.[^\s<>]+)>?\s*$").expect("static regex")
});
static NUMERIC_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^\d.])(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4}|\d{2})(?:$|[^\d])")
        .expect("static regex")
});
static WORD_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^\d])(\d{1,2})\.\s*(januar|jänner|februar|märz|maerz|april|mai|juni|juli|august|september|oktober|november|dezember|jan|feb|mär|apr|jun|jul|aug|sep|sept|okt|nov|dez)\.?\s+(\d{4})")
        .expect("static regex")
});
static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").expect("static regex"));
/// "Musterstadt, den 12.03.2026", "Musterstadt, 12. März 2026", "Datum: 12.03.2026".
static DATE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:\p{L}[\p{L} .\-/]{1,40},\s*(?:den\s+|am\s+)?|datum\s*[:.]?\s*|den\s+)\d",
    )
    .expect("static regex")
});
static REF_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(ihr\s+zeichen|ihr\s+az\.?|ihr\s+aktenzeichen|unser\s+zeichen|unser\s+az\.?|unser\s+aktenzeichen|mein\s+zeichen|aktenzeichen|geschäftszeichen|gesch\.-?\s?z\.?|az\.)\s*[:.]?",
    )
    .expect("static regex")
});
static KASSENZEICHEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bkassen(?:zeichen|-?nr\.?|nummer)\s*[:.]?\s*([0-9][0-9./\- ]{2,30}[0-9])")
        .expect("static regex")
});
static CUSTOMER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:kunden-?\s?nummer|kunden-?\s?nr\.?|kd\.?-?\s?nr\.?|vertrags-?\s?nummer|vertrags-?\s?nr\.?|vertragskonto(?:nummer)?|mitglieds-?\s?nummer|mitglieds-?\s?nr\.?|versicherungs-?\s?nummer|versicherungsschein-?\s?nr\.?)\s*[:.]?\s*([A-Z0-9][A-Z0-9./\-]{2,30})",
    )
    .expect("static regex")
});
static IBAN_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([A-Z]{2}\s?\d{2}(?:\s?[A-Z0-9]){10,30})").expect("static regex")
});
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:(?:€|eur)\s*(\d{1,3}(?:\.\d{3})+|\d+),(\d{2})\b)|(?:\b(\d{1,3}(?:\.\d{3})+|\d+),(\d{2})\s*(?:€|eur\b|euro\b))",
    )
    .expect("static regex")
});
static TOTAL_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)gesamtbetrag|rechnungsbetrag|endbetrag|zahlbetrag|zu\s+zahlen|gesamtsumme|bruttobetrag|summe\s+brutto|offener\s+betrag")
        .expect("static regex")
});

/// Reads the metadata of a document from its zones. `markers` identify the town (so that its
/// own address is never taken for the sender's).
pub fn extract(zones: &Zones, markers: &[String]) -> DocumentMetadata {
    let (sender_name, sender_address) = sender(zones, markers)
        .map(|(n, a)| (Some(n), a))
        .unwrap_or((None, None));
    let (file_references, their_reference) = references(&zones.all);
    DocumentMetadata {
        sender_name,
        sender_address,
        letter_date: zones
            .date_line
            .as_deref()
            .and_then(parse_date)
            .or_else(|| letter_date(&zones.page1)),
        subject: zones.subject.clone().filter(|s| !s.trim().is_empty()),
        file_references,
        their_reference,
        kassenzeichen: kassenzeichen(&zones.all),
        customer_numbers: customer_numbers(&zones.all),
        ibans: ibans(&zones.all),
        amounts: amounts(&zones.all),
        invoice: None,
    }
}

/// Adds what an e-invoice says to metadata read from text: the invoice's facts win where the
/// text is silent, and the invoice itself is attached.
pub fn merge_invoice(meta: &mut DocumentMetadata, inv: &InvoiceInfo) {
    if meta.sender_name.is_none() {
        meta.sender_name = inv.supplier.clone();
    }
    if let Some(d) = &inv.date {
        meta.letter_date = Some(d.clone());
    }
    if meta.subject.is_none() {
        meta.subject = inv.number.as_ref().map(|n| format!("Rechnung {n}"));
    }
    for a in [&inv.due_amount, &inv.gross_amount].into_iter().flatten() {
        if !meta.amounts.contains(a) {
            meta.amounts.insert(0, a.clone());
        }
    }
    meta.invoice = Some(inv.clone());
}

fn names_town(s: &str, markers: &[String]) -> bool {
    let l = s.to_lowercase();
    markers.iter().any(|m| l.contains(&m.to_lowercase()))
}

/// Sender name and address: e-mail `Von:` header, the sender block the letter segmentation
/// found (return-address line, sender block, letterhead, form field, footer, signature), or
/// else the return-address line above the address field ("Erika Mustermann · Lindenweg 4 ·
/// 12345 Musterstadt") or the first address block of the page that is not the recipient's.
fn sender(zones: &Zones, markers: &[String]) -> Option<(String, Option<String>)> {
    let page1 = zones.page1.as_str();
    let recipient = zones.address.as_deref();
    let head: Vec<&str> = page1.lines().take(HEAD_LINES).collect();
    let top = head.iter().take(10).copied().collect::<Vec<_>>().join("\n");
    if let Some(c) = EMAIL_FROM.captures(&top) {
        if let Some(addr) = c.get(2) {
            let name = c.get(1).map(|m| m.as_str().trim().trim_matches('"').trim());
            let name = name.filter(|n| !n.is_empty()).unwrap_or(addr.as_str());
            return Some((name.to_string(), Some(addr.as_str().to_string())));
        }
        if let Some(addr) = c.get(3) {
            return Some((addr.as_str().to_string(), Some(addr.as_str().to_string())));
        }
    }
    if let Some(block) = &zones.sender {
        let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(name) = lines.next() {
            if let Some(c) = MAILBOX.captures(name) {
                let addr = c.get(2).map(|m| m.as_str().to_string());
                let display = c.get(1).map(|m| m.as_str().trim().trim_matches('"').trim());
                let display = display.filter(|d| !d.is_empty()).map(str::to_string);
                return display.or_else(|| addr.clone()).map(|n| (n, addr));
            }
            let rest: Vec<&str> = lines.collect();
            return Some((
                name.to_string(),
                (!rest.is_empty()).then(|| rest.join(", ")),
            ));
        }
    }
    // Return-address line: short, separators, ends in a postcode and place.
    for line in &head {
        let l = line.trim();
        if l.len() > 140 || !POSTCODE.is_match(l) || names_town(l, markers) {
            continue;
        }
        let parts: Vec<&str> = RETURN_SEP
            .split(l)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() >= 3
            && POSTCODE_LINE.is_match(parts[parts.len() - 1])
            && !POSTCODE_LINE.is_match(parts[0])
        {
            return Some((parts[0].to_string(), Some(parts[1..].join(", "))));
        }
    }
    // Address blocks: lines ending in a postcode line, not the recipient's, not the town's.
    let recipient_lines: Vec<String> = recipient
        .map(|r| r.lines().map(|l| l.trim().to_lowercase()).collect())
        .unwrap_or_default();
    for (i, line) in head.iter().enumerate() {
        if !POSTCODE_LINE.is_match(line) {
            continue;
        }
        let mut start = i;
        while start > 0 && i - start < 5 && !head[start - 1].trim().is_empty() {
            start -= 1;
        }
        let block: Vec<&str> = head[start..=i].iter().map(|l| l.trim()).collect();
        if block.len() < 2 {
            continue;
        }
        let is_recipient = block
            .iter()
            .any(|l| recipient_lines.contains(&l.to_lowercase()));
        if is_recipient || block.iter().any(|l| names_town(l, markers)) {
            continue;
        }
        return Some((block[0].to_string(), Some(block[1..].join(", "))));
    }
    None
}

/// Parses the first date in `s` (German numeric, German month name, or ISO) to `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for c in NUMERIC_DATE.captures_iter(s) {
        let (Some(d), Some(m), Some(y)) = (c.get(1), c.get(2), c.get(3)) else {
            continue;
        };
        if let Some(iso) = ymd(y.as_str(), m.as_str().parse().ok(), d.as_str()) {
            found.push((d.start(), iso));
        }
    }
    for c in WORD_DATE.captures_iter(s) {
        let (Some(d), Some(m), Some(y)) = (c.get(1), c.get(2), c.get(3)) else {
            continue;
        };
        if let Some(iso) = ymd(y.as_str(), month(m.as_str()), d.as_str()) {
            found.push((d.start(), iso));
        }
    }
    for c in ISO_DATE.captures_iter(s) {
        let (Some(y), Some(m), Some(d)) = (c.get(1), c.get(2), c.get(3)) else {
            continue;
        };
        if let Some(iso) = ymd(y.as_str(), m.as_str().parse().ok(), d.as_str()) {
            found.push((y.start(), iso));
        }
    }
    found
        .into_iter()
        .min_by_key(|(pos, _)| *pos)
        .map(|(_, d)| d)
}

fn month(name: &str) -> Option<u32> {
    let n = name.to_lowercase();
    let n = n.trim_end_matches('.');
    let table = [
        ("jan", 1),
        ("jän", 1),
        ("feb", 2),
        ("mär", 3),
        ("mae", 3),
        ("apr", 4),
        ("mai", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("okt", 10),
        ("nov", 11),
        ("dez", 12),
    ];
    table
        .iter()
        .find(|(p, _)| n.starts_with(p))
        .map(|(_, m)| *m)
}

fn ymd(y: &str, m: Option<u32>, d: &str) -> Option<String> {
    let mut year: i32 = y.parse().ok()?;
    if y.len() == 2 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let date = chrono::NaiveDate::from_ymd_opt(year, m?, d.parse().ok()?)?;
    (1900..=2100)
        .contains(&year)
        .then(|| date.format("%Y-%m-%d").to_string())
}

/// The letter's date: a "Place, den <date>" or "Datum:" line of the head wins; else the first
/// date above the salutation.
fn letter_date(page1: &str) -> Option<String> {
    let head: Vec<&str> = page1.lines().take(HEAD_LINES).collect();
    let sal = head
        .iter()
        .position(|l| SALUTATION.is_match(l))
        .unwrap_or(head.len());
    head.iter()
        .filter(|l| DATE_LINE.is_match(l) || l.to_lowercase().contains("datum"))
        .find_map(|l| parse_date(l))
        .or_else(|| head[..sal].iter().find_map(|l| parse_date(l)))
}

/// Cuts a reference value after its label: the first token, plus following tokens that carry
/// no lower-case letters (so "63 BA 2025/0123" stays whole, "vom 3. März" is dropped).
fn reference_value(rest: &str) -> Option<String> {
    let rest = rest.trim_start_matches([':', '.', ' ', '\t']);
    // Two or more spaces (columns) end the value.
    let rest = rest.split("  ").next().unwrap_or("").trim();
    let mut out: Vec<&str> = Vec::new();
    for tok in rest.split_whitespace() {
        let tok = tok.trim_end_matches([',', ';']);
        let ok_chars = tok
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'));
        if !ok_chars || tok.is_empty() {
            break;
        }
        if !out.is_empty() && (tok.chars().any(char::is_lowercase) || tok.len() > 16) {
            break;
        }
        out.push(tok);
        if out.len() >= 5 {
            break;
        }
    }
    let v = out.join(" ");
    let v = v.trim_end_matches(['.', '-', '/']).to_string();
    (v.chars().any(|c| c.is_ascii_digit()) && (2..=48).contains(&v.len())).then_some(v)
}

/// File references: the town's (our "Aktenzeichen", the sender's "Ihr Zeichen") and the
/// sender's own ("Unser Zeichen").
fn references(text: &str) -> (Vec<String>, Option<String>) {
    let mut ours: Vec<String> = Vec::new();
    let mut theirs: Option<String> = None;
    for line in text.lines() {
        let labels: Vec<regex::Match<'_>> = REF_LABEL.find_iter(line).collect();
        for (i, m) in labels.iter().enumerate() {
            let end = labels.get(i + 1).map(|n| n.start()).unwrap_or(line.len());
            let Some(value) = reference_value(&line[m.end()..end]) else {
                continue;
            };
            let label = m.as_str().to_lowercase();
            if label.starts_with("unser") || label.starts_with("mein") {
                if theirs.is_none() {
                    theirs = Some(value);
                }
            } else if !ours.contains(&value) {
                ours.push(value);
            }
        }
    }
    (ours, theirs)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn kassenzeichen(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in KASSENZEICHEN.captures_iter(text) {
        if let Some(m) = c.get(1) {
            let v = m.as_str().split("  ").next().unwrap_or("").trim();
            if v.chars().filter(char::is_ascii_digit).count() >= 4 {
                push_unique(&mut out, v.to_string());
            }
        }
    }
    out
}

fn customer_numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in CUSTOMER.captures_iter(text) {
        if let Some(m) = c.get(1) {
            let v = m.as_str().trim_end_matches(['.', '-', '/']);
            if v.chars().any(|c| c.is_ascii_digit()) {
                push_unique(&mut out, v.to_string());
            }
        }
    }
    out
}

/// IBAN lengths of the SEPA countries most letters name.
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "DE" => 22,
        "AT" => 20,
        "CH" | "LI" => 21,
        "NL" => 18,
        "BE" => 16,
        "LU" => 20,
        "FR" | "MC" | "IT" | "SM" => 27,
        "ES" | "SE" | "SK" | "CZ" => 24,
        "PL" | "HU" => 28,
        "DK" | "FI" | "FO" | "GL" => 18,
        "IE" | "GB" => 22,
        "PT" => 25,
        "NO" => 15,
        "SI" => 19,
        "HR" | "LV" => 21,
        "EE" => 20,
        "LT" => 20,
        "GR" => 27,
        "MT" => 31,
        "CY" => 28,
        "BG" | "RO" => 24,
        "IS" => 26,
        _ => return None,
    })
}

/// True when the IBAN (no spaces, upper case) has a valid ISO 13616 mod-97 checksum.
pub fn iban_valid(iban: &str) -> bool {
    if iban.len() < 15 || iban.len() > 34 || !iban.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBANs with a valid checksum, without spaces.
fn ibans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        for c in IBAN_CANDIDATE.captures_iter(line) {
            let Some(m) = c.get(1) else { continue };
            let compact: String = m
                .as_str()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_uppercase();
            let Some(country) = compact.get(..2) else {
                continue;
            };
            if !country.chars().all(|c| c.is_ascii_uppercase()) {
                continue;
            }
            let Some(len) = iban_length(country) else {
                continue;
            };
            if let Some(iban) = compact.get(..len)
                && iban_valid(iban)
            {
                push_unique(&mut out, iban.to_string());
            }
        }
    }
    out
}

/// Amounts with a currency sign, as decimal strings; those on total lines (Gesamtbetrag,
/// Rechnungsbetrag, zu zahlen, ...) first.
fn amounts(text: &str) -> Vec<String> {
    let mut totals = Vec::new();
    let mut others = Vec::new();
    for line in text.lines() {
        let is_total = TOTAL_LABEL.is_match(line);
        for c in AMOUNT.captures_iter(line) {
            let (int, cents) = match (c.get(1), c.get(2), c.get(3), c.get(4)) {
                (Some(i), Some(ct), _, _) | (_, _, Some(i), Some(ct)) => (i.as_str(), ct.as_str()),
                _ => continue,
            };
            let int: String = int.chars().filter(char::is_ascii_digit).collect();
            let int = int.trim_start_matches('0');
            let v = format!("{}.{cents}", if int.is_empty() { "0" } else { int });
            if is_total {
                push_unique(&mut totals, v);
            } else {
                push_unique(&mut others, v);
            }
        }
    }
    for o in others {
        push_unique(&mut totals, o);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::zones::from_text;

    fn markers() -> Vec<String> {
        vec!["Stadt Musterstadt".into(), "Rathausplatz".into()]
    }

    fn meta(text: &str) -> DocumentMetadata {
        extract(&from_text(text, &markers()), &markers())
    }

    const CITIZEN: &str = "Erika Mustermann · Lindenweg 4 · 12345 Musterstadt\n\
        Stadt Musterstadt\nBauordnungsamt\nRathausplatz 1\n12345 Musterstadt\n\n\
        Musterstadt, den 12.03.2026\n\n\
        Ihr Zeichen: 63-BA 2025/0815\n\n\
        Betreff: Widerspruch gegen die Baugenehmigung\n\n\
        Sehr geehrte Damen und Herren,\nhiermit lege ich Widerspruch ein.\n\
        Mit freundlichen Grüßen\nErika Mustermann";

    #[test]
    fn citizen_letter_with_return_address_line() {
        let m = meta(CITIZEN);
        assert_eq!(m.sender_name.as_deref(), Some("Erika Mustermann"));
        assert_eq!(
            m.sender_address.as_deref(),
            Some("Lindenweg 4, 12345 Musterstadt")
        );
        assert_eq!(m.letter_date.as_deref(), Some("2026-03-12"));
        assert_eq!(
            m.subject.as_deref(),
            Some("Widerspruch gegen die Baugenehmigung")
        );
        assert_eq!(m.file_references, ["63-BA 2025/0815"]);
        assert_eq!(m.their_reference, None);
        assert!(m.ibans.is_empty() && m.amounts.is_empty());
    }

    const UTILITY: &str = "Stadtwerke Nordheim GmbH\nWerkstraße 10\n54321 Nordheim\n\n\
        Stadt Musterstadt\nKämmerei\nRathausplatz 1\n12345 Musterstadt\n\n\
        Kundennummer: 4711-0815   Vertragsnummer: V-2024-33\n\
        Unser Zeichen: SW/RE-77   Ihr Zeichen: 20.1-445\n\
        Nordheim, 5. Januar 2026\n\n\
        Rechnung Strom Dezember 2025\n\n\
        Sehr geehrte Damen und Herren,\n\
        Arbeitspreis 1.000,00 EUR\nNetto 1.036,97 €\nUmsatzsteuer 19 % 197,03 €\n\
        Gesamtbetrag: 1.234,00 €\n\
        Bitte überweisen Sie den Betrag auf DE89 3704 0044 0532 0130 00 (Sparkasse).\n\
        Falsche Nummer: DE89 3704 0044 0532 0130 01\n";

    #[test]
    fn company_invoice_letterhead_numbers_iban_and_total() {
        let m = meta(UTILITY);
        assert_eq!(m.sender_name.as_deref(), Some("Stadtwerke Nordheim GmbH"));
        assert_eq!(
            m.sender_address.as_deref(),
            Some("Werkstraße 10, 54321 Nordheim")
        );
        assert_eq!(m.letter_date.as_deref(), Some("2026-01-05"));
        assert_eq!(m.customer_numbers, ["4711-0815", "V-2024-33"]);
        assert_eq!(m.their_reference.as_deref(), Some("SW/RE-77"));
        assert_eq!(m.file_references, ["20.1-445"]);
        assert_eq!(m.ibans, ["DE89370400440532013000"], "bad checksum dropped");
        assert_eq!(m.amounts[0], "1234.00", "the total comes first");
        assert!(m.amounts.contains(&"197.03".to_string()));
        assert!(m.amounts.contains(&"1000.00".to_string()));
    }

    const AUTHORITY: &str = "Landratsamt Südkreis · Postfach 12 34 · 76543 Südstadt\n\
        Stadt Musterstadt\nOrdnungsamt\n12345 Musterstadt\n\n\
        Aktenzeichen: 32-4412/2026   Datum: 02.02.2026\n\
        Kassenzeichen: 5.0123.456789.1\n\n\
        Bußgeldverfahren gegen Max Muster\n\n\
        Sehr geehrte Damen und Herren,\nbitte zahlen Sie EUR 35,00 auf das Konto\n\
        IBAN: AT61 1904 3002 3457 3201, Mitgliedsnummer 99-123.\n";

    #[test]
    fn authority_letter_references_kassenzeichen_foreign_iban() {
        let m = meta(AUTHORITY);
        assert_eq!(m.sender_name.as_deref(), Some("Landratsamt Südkreis"));
        assert_eq!(
            m.sender_address.as_deref(),
            Some("Postfach 12 34, 76543 Südstadt")
        );
        assert_eq!(m.letter_date.as_deref(), Some("2026-02-02"));
        assert_eq!(m.file_references, ["32-4412/2026"]);
        assert_eq!(m.kassenzeichen, ["5.0123.456789.1"]);
        assert_eq!(m.customer_numbers, ["99-123"]);
        assert_eq!(m.ibans, ["AT611904300234573201"]);
        assert_eq!(m.amounts, ["35.00"]);
        assert_eq!(
            m.subject.as_deref(),
            Some("Bußgeldverfahren gegen Max Muster")
        );
    }

    #[test]
    fn email_sender_and_az_abbreviation() {
        let m = meta(
            "Von: Eva Schmitz <eva.schmitz@example.org>\nAn: steueramt@musterstadt.de\n\
             Betreff: Hundesteuer, Az. 22-HS 117\n\nGuten Tag,\nich melde den Hund ab.",
        );
        assert_eq!(m.sender_name.as_deref(), Some("Eva Schmitz"));
        assert_eq!(m.sender_address.as_deref(), Some("eva.schmitz@example.org"));
        assert_eq!(m.file_references, ["22-HS 117"]);
        assert_eq!(m.letter_date, None, "no date is not guessed");
    }

    #[test]
    fn return_line_as_ocr_reads_it() {
        let m = meta(
            "Erika Mustermann : Lindenweg 4 : 12345 Musterstadt\n\nM usterstadt,\n\n\
             Stadt Musterstadt\nBauordnungsamt\nRathausplatz 1\n12345 Musterstadt\n",
        );
        assert_eq!(m.sender_name.as_deref(), Some("Erika Mustermann"));
        assert_eq!(
            m.sender_address.as_deref(),
            Some("Lindenweg 4, 12345 Musterstadt")
        );
    }

    const INSURER: &str = "Kommunale Versicherung Nord\nVersicherungsverein a.G.\n\
        Postfach 10 20 30\n20001 Hamburg\n\n\
        Stadtverwaltung Musterstadt\nPersonalamt\nRathausplatz 1\n12345 Musterstadt\n\n\
        Ihr Zeichen: 11-P/2026-14  Unser Zeichen: KV 55/881  Hamburg, den 12. März 2026\n\
        Mitgliedsnummer: M-778812\n\n\
        Betreff: Beitragsrechnung 2026\n\n\
        Sehr geehrte Damen und Herren,\n\
        der Jahresbeitrag beträgt EUR 12.480,00. Der Rechnungsbetrag von EUR 12.480,00 ist\n\
        zum 01.04.2026 fällig. Bitte geben Sie das Kassenzeichen 7700 1234 5678 an.\n\
        Bankverbindung: IBAN DE02 1203 0000 0000 2020 51, BIC BYLADEM1001\n";

    #[test]
    fn insurer_letter_with_reference_line_and_word_date() {
        let m = meta(INSURER);
        assert_eq!(
            m.sender_name.as_deref(),
            Some("Kommunale Versicherung Nord")
        );
        assert_eq!(
            m.sender_address.as_deref(),
            Some("Versicherungsverein a.G., Postfach 10 20 30, 20001 Hamburg")
        );
        assert_eq!(m.letter_date.as_deref(), Some("2026-03-12"));
        assert_eq!(m.file_references, ["11-P/2026-14"]);
        assert_eq!(m.their_reference.as_deref(), Some("KV 55/881"));
        assert_eq!(m.customer_numbers, ["M-778812"]);
        assert_eq!(m.kassenzeichen, ["7700 1234 5678"]);
        assert_eq!(m.ibans, ["DE02120300000000202051"]);
        assert_eq!(m.amounts, ["12480.00"]);
        assert_eq!(m.subject.as_deref(), Some("Beitragsrechnung 2026"));
    }

    #[test]
    fn german_date_formats() {
        assert_eq!(parse_date("12.03.2026").as_deref(), Some("2026-03-12"));
        assert_eq!(
            parse_date("Musterstadt, den 1. März 2026").as_deref(),
            Some("2026-03-01")
        );
        assert_eq!(parse_date("3.2.25").as_deref(), Some("2025-02-03"));
        assert_eq!(
            parse_date("am 14. Dez. 2025").as_deref(),
            Some("2025-12-14")
        );
        assert_eq!(parse_date("2026-04-30").as_deref(), Some("2026-04-30"));
        assert_eq!(parse_date("31.02.2026"), None, "no such day");
        assert_eq!(parse_date("Version 1.2.3"), None);
    }

    #[test]
    fn iban_checksum() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("DE00370400440532013000"));
        assert_eq!(
            ibans("IBAN DE89 3704 0044 0532 0130 00"),
            ["DE89370400440532013000"]
        );
        assert!(ibans("IBAN DE88 3704 0044 0532 0130 00").is_empty());
    }

    #[test]
    fn date_line_wins_over_earlier_dates() {
        let m = meta(
            "Max Muster · Weg 1 · 12345 Musterstadt\nStadt Musterstadt\n12345 Musterstadt\n\
             Ihr Schreiben vom 01.01.2026\nMusterstadt, 15.01.2026\n\nSehr geehrte Damen und Herren,",
        );
        assert_eq!(m.letter_date.as_deref(), Some("2026-01-15"));
    }

    #[test]
    fn invoice_facts_fill_gaps() {
        let mut m = DocumentMetadata::default();
        merge_invoice(
            &mut m,
            &InvoiceInfo {
                format: "xrechnung-ubl".into(),
                number: Some("R-1".into()),
                date: Some("2026-03-01".into()),
                supplier: Some("Bau GmbH".into()),
                gross_amount: Some("119.00".into()),
                due_amount: Some("119.00".into()),
                ..Default::default()
            },
        );
        assert_eq!(m.sender_name.as_deref(), Some("Bau GmbH"));
        assert_eq!(m.subject.as_deref(), Some("Rechnung R-1"));
        assert_eq!(m.amounts, ["119.00"]);
        assert!(m.invoice.is_some());
    }
}
