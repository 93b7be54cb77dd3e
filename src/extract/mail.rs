//! E-mail (`message/rfc822`): headers, body text (HTML turned into text) and the text of every
//! readable attachment, read with the same functions as scans (PDF text layer or OCR, images,
//! `.txt`, forwarded messages). Runs inside the extraction worker (time and memory limits).
//!
//! Page 1 is the message itself, starting with German header lines (`Von:`, `An:`, `Cc:`,
//! `Datum:`, `Betreff:`), so the address zone of an e-mail is its `An:` line and the subject
//! zone its `Betreff:`. Each attachment follows as pages of its own, headed by its name.

use super::{ExtractError, ExtractOptions, Extraction, MediaType, Method, Page};
use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use std::fmt::Write as _;

/// Limits on the structure of one e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailLimits {
    /// Attachments at most (those of forwarded messages included).
    pub max_attachments: u32,
    /// Nesting depth of forwarded messages at most.
    pub max_depth: u32,
    /// Decoded bytes of all parts at most.
    pub max_decoded_bytes: u64,
}

impl Default for MailLimits {
    fn default() -> Self {
        Self {
            max_attachments: 20,
            max_depth: 3,
            max_decoded_bytes: 50 * 1024 * 1024,
        }
    }
}

/// Addresses of a header as `Name <addr>` strings and the bare, lower-case addresses.
fn addresses(a: Option<&Address<'_>>) -> (Vec<String>, Vec<String>) {
    let mut shown = Vec::new();
    let mut bare = Vec::new();
    for addr in a.into_iter().flat_map(|a| a.iter()) {
        let mail = addr.address().map(|s| s.trim().to_lowercase());
        match (addr.name(), &mail) {
            (Some(n), Some(m)) if !n.trim().is_empty() => shown.push(format!("{} <{m}>", n.trim())),
            (_, Some(m)) => shown.push(m.clone()),
            (Some(n), None) => shown.push(n.trim().to_string()),
            (None, None) => {}
        }
        if let Some(m) = mail {
            bare.push(m);
        }
    }
    (shown, bare)
}

/// The German header block of a message (one line per field that is present).
pub fn header_block(m: &Message<'_>) -> String {
    let mut out = String::new();
    let (from, _) = addresses(m.from());
    let (to, _) = addresses(m.to());
    let (cc, _) = addresses(m.cc());
    if !from.is_empty() {
        let _ = writeln!(out, "Von: {}", from.join(", "));
    }
    if !to.is_empty() {
        let _ = writeln!(out, "An: {}", to.join(", "));
    }
    if !cc.is_empty() {
        let _ = writeln!(out, "Cc: {}", cc.join(", "));
    }
    if let Some(d) = m.date() {
        let _ = writeln!(out, "Datum: {}", d.to_rfc3339());
    }
    let subject = m.subject().map(one_line).unwrap_or_default();
    let _ = writeln!(out, "Betreff: {subject}");
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Recipient addresses (`To` and `Cc`), lower case, as written in the header block of page 1.
pub fn recipients_in_text(page1: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in page1.lines() {
        if line.trim().is_empty() {
            break;
        }
        let Some(rest) = line
            .strip_prefix("An:")
            .or_else(|| line.strip_prefix("Cc:"))
        else {
            continue;
        };
        for part in rest.split(',') {
            let part = part.trim();
            let addr = match (part.rfind('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => &part[a + 1..b],
                _ => part,
            };
            let addr = addr.trim().to_lowercase();
            if addr.contains('@') && !addr.contains(char::is_whitespace) {
                out.push(addr);
            }
        }
    }
    out
}

struct Walk<'o> {
    opts: &'o ExtractOptions,
    pages: Vec<Page>,
    attachments: u32,
    /// The first e-invoice found among the attachments (XRechnung XML or ZUGFeRD PDF).
    invoice: Option<crate::domain::InvoiceInfo>,
}

fn text_page(number: u32, text: String) -> Page {
    Page {
        number,
        text,
        words: Vec::new(),
        width: 0.0,
        height: 0.0,
        units_per_mm: 0.0,
    }
}

/// Parses a message; bytes without a single header field are no e-mail.
fn parse_message(bytes: &[u8]) -> Result<Message<'_>, ExtractError> {
    MessageParser::default()
        .parse(bytes)
        .filter(|m| {
            m.from().is_some()
                || m.to().is_some()
                || m.subject().is_some()
                || m.date().is_some()
                || m.message_id().is_some()
                || m.content_type().is_some()
        })
        .ok_or_else(|| ExtractError::BrokenMail("no header fields".into()))
}

/// Extracts an e-mail.
pub fn extract(bytes: &[u8], opts: &ExtractOptions) -> Result<Extraction, ExtractError> {
    let limits = opts.mail;
    let message = parse_message(bytes)?;
    check_decoded(&message, limits)?;
    let mut walk = Walk {
        opts,
        pages: Vec::new(),
        attachments: 0,
        invoice: None,
    };
    let mut page1 = header_block(&message);
    page1.push('\n');
    page1.push_str(&body_text(&message));
    walk.pages.push(text_page(1, page1));
    walk.message_attachments(&message, 0, limits)?;
    let count = walk.pages.len() as u32;
    Ok(Extraction {
        media_type: MediaType::Eml,
        method: Method::PlainText,
        pages: walk.pages,
        page_count: count,
        invoice: walk.invoice,
    })
}

/// The bytes of every decoded part of a message: its bodies (text, HTML), its attachments
/// and, for a forwarded message, its parts in turn (to `max_depth` levels; the walk refuses
/// deeper ones, here such a message counts as its raw bytes).
fn decoded_bytes(m: &Message<'_>, depth: u32, max_depth: u32) -> u64 {
    m.parts
        .iter()
        .map(|p| match &p.body {
            PartType::Message(nested) if depth < max_depth => {
                decoded_bytes(nested, depth + 1, max_depth)
            }
            _ => p.contents().len() as u64,
        })
        .fold(0, u64::saturating_add)
}

/// Refuses a message whose decoded parts, bodies included, exceed the limit.
fn check_decoded(m: &Message<'_>, limits: MailLimits) -> Result<(), ExtractError> {
    if decoded_bytes(m, 0, limits.max_depth) > limits.max_decoded_bytes {
        return Err(ExtractError::MailLimit(format!(
            "Die E-Mail ist entpackt (Text und Anhänge) größer als die erlaubten {} MB.",
            limits.max_decoded_bytes / (1024 * 1024)
        )));
    }
    Ok(())
}

/// The message's body as text: its text parts, or its HTML parts turned into text.
fn body_text(m: &Message<'_>) -> String {
    let mut out = Vec::new();
    for i in 0..m.text_body_count().max(1) {
        if let Some(t) = m.body_text(i) {
            out.push(t.replace("\r\n", "\n"));
        }
    }
    out.join("\n\n")
}

impl Walk<'_> {
    fn message_attachments(
        &mut self,
        m: &Message<'_>,
        depth: u32,
        limits: super::mail::MailLimits,
    ) -> Result<(), ExtractError> {
        for part in m.attachments() {
            self.attachments += 1;
            if self.attachments > limits.max_attachments {
                return Err(ExtractError::MailLimit(format!(
                    "Die E-Mail hat mehr als die erlaubten {} Anhänge.",
                    limits.max_attachments
                )));
            }
            let name = part
                .attachment_name()
                .map(one_line)
                .unwrap_or_else(|| format!("anhang-{}", self.attachments));
            let number = self.pages.len() as u32 + 1;
            match &part.body {
                PartType::Message(nested) => {
                    if depth + 1 > limits.max_depth {
                        return Err(ExtractError::MailLimit(format!(
                            "Die E-Mail enthält weitergeleitete Nachrichten in mehr als {} Ebenen.",
                            limits.max_depth
                        )));
                    }
                    let mut text = format!("Weitergeleitete Nachricht:\n{}", header_block(nested));
                    text.push('\n');
                    text.push_str(&body_text(nested));
                    self.pages.push(text_page(number, text));
                    self.message_attachments(nested, depth + 1, limits)?;
                }
                PartType::Text(t) | PartType::Html(t) if !name.ends_with(".txt") => {
                    // Text shown inline by mail programs but sent as an attachment.
                    let text = if matches!(part.body, PartType::Html(_)) {
                        html_to_text(t)
                    } else {
                        t.to_string()
                    };
                    self.pages
                        .push(text_page(number, format!("Anhang: {name}\n{text}")));
                }
                _ => self.attachment(number, &name, part.contents()),
            }
        }
        Ok(())
    }

    /// One attachment, read like a scan; what cannot be read is noted, not fatal: the message
    /// itself still carries text to route by.
    fn attachment(&mut self, number: u32, name: &str, bytes: &[u8]) {
        let result = super::sniff(bytes, name).and_then(|media| self.read(media, bytes));
        match result {
            Ok(ex) => {
                if self.invoice.is_none() {
                    self.invoice = ex.invoice;
                }
                let mut first = true;
                for mut p in ex.pages {
                    p.number = self.pages.len() as u32 + 1;
                    if first {
                        p.text = format!("Anhang: {name}\n{}", p.text);
                        first = false;
                    }
                    self.pages.push(p);
                }
            }
            Err(e) => self.pages.push(text_page(
                number,
                format!("Anhang: {name}\n[nicht gelesen: {}]", e.reason_de()),
            )),
        }
    }

    fn read(&self, media: MediaType, bytes: &[u8]) -> Result<Extraction, ExtractError> {
        match media {
            MediaType::Text => Ok(super::plain_text(bytes)),
            MediaType::Xml => super::xml_invoice(bytes),
            MediaType::Pdf => {
                let dir = tempfile::tempdir().map_err(|e| ExtractError::Io(e.to_string()))?;
                let path = dir.path().join("anhang.pdf");
                std::fs::write(&path, bytes).map_err(|e| ExtractError::Io(e.to_string()))?;
                super::pdf::extract(bytes, &path, self.opts)
            }
            MediaType::Png | MediaType::Jpeg | MediaType::Tiff => {
                super::image::extract(bytes, media, self.opts)
            }
            MediaType::Eml => match MessageParser::default().parse(bytes) {
                Some(m) => Ok(Extraction {
                    media_type: MediaType::Eml,
                    method: Method::PlainText,
                    page_count: 1,
                    pages: vec![text_page(
                        1,
                        format!("{}\n{}", header_block(&m), body_text(&m)),
                    )],
                    invoice: None,
                }),
                None => Err(ExtractError::BrokenMail("attached message".into())),
            },
        }
    }
}

/// Pages of the delivered PDF of one e-mail at most; longer text is cut with a note.
pub const PDF_MAX_PAGES: usize = 500;

/// A German date as shown in the PDF: `01.12.2026 15:43:00 +01:00`.
fn german_date(d: &mail_parser::DateTime) -> String {
    format!(
        "{:02}.{:02}.{:04} {:02}:{:02}:{:02} {}{:02}:{:02}",
        d.day,
        d.month,
        d.year,
        d.hour,
        d.minute,
        d.second,
        if d.tz_before_gmt { '-' } else { '+' },
        d.tz_hour,
        d.tz_minute
    )
}

/// Human-readable size of an attachment.
fn size_de(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} Bytes")
    } else if bytes < 1024 * 1024 {
        format!("{} KB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0)).replace('.', ",")
    }
}

/// The e-mail as a born-digital PDF: header fields (Von, An, Cc, Datum, Betreff), the body text
/// and the list of attachments by name and size (attachments themselves are not embedded; they
/// stay in the original `.eml`). Deterministic: the same message gives the same bytes. Runs in
/// the extraction worker, like [`extract`], with the same structural limits.
pub fn render_pdf(bytes: &[u8], opts: &ExtractOptions) -> Result<Vec<u8>, ExtractError> {
    use super::textpdf::Block;
    let limits = opts.mail;
    let message = parse_message(bytes)?;
    check_decoded(&message, limits)?;
    let mut blocks = vec![Block::Heading("E-Mail".into()), Block::Space];
    let field = |blocks: &mut Vec<Block>, label: &str, values: Vec<String>| {
        if !values.is_empty() {
            blocks.push(Block::Field(label.into(), values.join(", ")));
        }
    };
    field(&mut blocks, "Von:", addresses(message.from()).0);
    field(&mut blocks, "An:", addresses(message.to()).0);
    field(&mut blocks, "Cc:", addresses(message.cc()).0);
    if let Some(d) = message.date() {
        blocks.push(Block::Field("Datum:".into(), german_date(d)));
    }
    blocks.push(Block::Field(
        "Betreff:".into(),
        message.subject().map(one_line).unwrap_or_default(),
    ));
    blocks.push(Block::Space);
    blocks.push(Block::Text(body_text(&message).trim_end().to_string()));
    let mut listed = Vec::new();
    for (i, part) in message.attachments().enumerate() {
        if i as u32 >= limits.max_attachments {
            return Err(ExtractError::MailLimit(format!(
                "Die E-Mail hat mehr als die erlaubten {} Anhänge.",
                limits.max_attachments
            )));
        }
        let name = part
            .attachment_name()
            .map(one_line)
            .unwrap_or_else(|| format!("anhang-{}", i + 1));
        let kind = match &part.body {
            PartType::Message(_) => ", weitergeleitete Nachricht".to_string(),
            _ => String::new(),
        };
        listed.push(format!(
            "- {name} ({}{kind})",
            size_de(part.contents().len())
        ));
    }
    if !listed.is_empty() {
        blocks.push(Block::Space);
        blocks.push(Block::Field(
            "Anhänge:".into(),
            format!("{} (in der Original-E-Mail enthalten)", listed.len()),
        ));
        blocks.push(Block::Text(listed.join("\n")));
    }
    Ok(super::textpdf::render(&blocks, PDF_MAX_PAGES))
}

/// HTML to plain text (mail-parser's conversion, as used for HTML bodies).
fn html_to_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ExtractOptions {
        ExtractOptions {
            language: "deu".into(),
            tessdata: None,
            dpi: 300,
            min_text_chars: 60,
            max_pages: 30,
            max_image_pixels: 80_000_000,
            mail: MailLimits::default(),
        }
    }

    /// A text body (plain or HTML, in base64 as mail programs send it) over the decoded-size
    /// limit is refused like attachments over it, for the extraction and the delivered PDF.
    #[test]
    fn the_decoded_size_limit_counts_the_mail_body_too() {
        use base64::Engine as _;
        let mut o = opts();
        o.mail.max_decoded_bytes = 1024 * 1024;
        let mail = |subtype: &str, body_len: usize| -> Vec<u8> {
            let body = "Sehr geehrte Damen und Herren, bitte prüfen Sie meinen Antrag. "
                .repeat(body_len / 64 + 1);
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(&body.as_bytes()[..body_len]);
            let mut m = format!(
                "From: a@example.org\r\nTo: bauordnung@musterstadt.de\r\nSubject: Antrag\r\n\
                 MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            );
            for line in b64.as_bytes().chunks(76) {
                m.push_str(std::str::from_utf8(line).expect("ascii"));
                m.push_str("\r\n");
            }
            m.into_bytes()
        };
        for subtype in ["plain", "html"] {
            let big = mail(subtype, 1536 * 1024);
            let e = extract(&big, &o).expect_err("over the limit");
            assert_eq!(
                e,
                ExtractError::MailLimit(
                    "Die E-Mail ist entpackt (Text und Anhänge) größer als die erlaubten 1 MB."
                        .into()
                ),
                "{subtype}"
            );
            assert_eq!(render_pdf(&big, &o).expect_err("over the limit"), e);
            // Below the limit it is read.
            let small = mail(subtype, 512 * 1024);
            let ex = extract(&small, &o).expect("read");
            assert!(ex.pages[0].text.contains("bitte prüfen"), "{subtype}");
        }
    }

    const MAIL: &[u8] = b"From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <JM@example.org>\r\n\
To: Bauordnung <Bauordnung@Musterstadt.de>, info@musterstadt.de\r\n\
Subject: =?UTF-8?B?QmF1YW50cmFnIEdhcmFnZQ==?=\r\n\
Message-ID: <abc@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: multipart/alternative; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Sehr geehrte Damen und Herren, anbei mein Antrag f=FCr die Garage.\r\n\
--b2\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Sehr geehrte Damen und Herren, anbei mein Antrag</p>\r\n\
--b2--\r\n\
--b1\r\n\
Content-Type: text/plain; charset=iso-8859-1; name=\"liste.txt\"\r\n\
Content-Disposition: attachment; filename=\"liste.txt\"\r\n\
\r\n\
Flurst\xfcck 12, Gemarkung Musterstadt\r\n\
--b1--\r\n";

    #[test]
    fn the_delivery_pdf_shows_headers_body_and_attachment_names() {
        let pdf = render_pdf(MAIL, &opts()).expect("pdf");
        assert_eq!(
            pdf,
            render_pdf(MAIL, &opts()).expect("again"),
            "deterministic"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.pdf");
        std::fs::write(&p, &pdf).expect("write");
        let out = std::process::Command::new("pdftotext")
            .arg(&p)
            .arg("-")
            .output()
            .expect("pdftotext");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            "Von: Jürgen Müller <jm@example.org>",
            "An: Bauordnung <bauordnung@musterstadt.de>, info@musterstadt.de",
            "Betreff: Bauantrag Garage",
            "anbei mein Antrag für die Garage.",
            "Anhänge: 1",
            "- liste.txt (",
        ] {
            assert!(flat.contains(want), "missing {want:?} in {text}");
        }
        let e = render_pdf(b"not a mail at all", &opts()).expect_err("no headers");
        assert!(matches!(e, ExtractError::BrokenMail(_)), "{e:?}");
    }

    #[test]
    fn headers_body_and_attachments_become_text() {
        let ex = extract(MAIL, &opts()).expect("mail");
        let p1 = &ex.pages[0].text;
        assert!(
            p1.starts_with("Von: Jürgen Müller <jm@example.org>\n"),
            "{p1}"
        );
        assert!(p1.contains("An: Bauordnung <bauordnung@musterstadt.de>, info@musterstadt.de"));
        assert!(p1.contains("Betreff: Bauantrag Garage"), "{p1}");
        assert!(p1.contains("Antrag für die Garage"), "{p1}");
        assert_eq!(ex.pages.len(), 2);
        assert!(ex.pages[1].text.contains("Anhang: liste.txt"));
        assert!(
            ex.pages[1].text.contains("Flurstück 12"),
            "{}",
            ex.pages[1].text
        );
        assert_eq!(
            recipients_in_text(p1),
            vec!["bauordnung@musterstadt.de", "info@musterstadt.de"]
        );
        let z = super::super::zones::find(&ex, &[]);
        assert_eq!(z.subject.as_deref(), Some("Bauantrag Garage"));
        assert!(
            z.address
                .as_deref()
                .is_some_and(|a| a.contains("bauordnung@"))
        );
    }

    #[test]
    fn too_many_attachments_are_refused_with_a_german_reason() {
        let mut o = opts();
        o.mail.max_attachments = 0;
        let e = extract(MAIL, &o).expect_err("limit");
        assert!(e.reason_de().contains("Anhänge"), "{}", e.reason_de());
    }

    #[test]
    fn bytes_without_headers_are_a_broken_mail() {
        assert!(matches!(
            extract(b"\x00\x01\x02", &opts()),
            Err(ExtractError::BrokenMail(_))
        ));
    }

    #[test]
    fn an_xrechnung_attachment_carries_its_invoice_into_the_mail() {
        let xml = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/einvoice/xrechnung-ubl.xml"
        ))
        .expect("sample invoice");
        let mut mail = b"From: rechnung@lieferant.example\r\nTo: rechnung@musterstadt.de\r\n\
Subject: Rechnung\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nAnbei unsere Rechnung.\r\n\
--b\r\nContent-Type: application/xml; name=\"rechnung.xml\"\r\n\
Content-Disposition: attachment; filename=\"rechnung.xml\"\r\n\r\n"
            .to_vec();
        mail.extend_from_slice(&xml);
        mail.extend_from_slice(b"\r\n--b--\r\n");
        let ex = extract(&mail, &opts()).expect("mail");
        let invoice = ex.invoice.clone().expect("invoice found in the attachment");
        assert!(invoice.leitweg_id.is_some(), "{invoice:?}");
        assert!(ex.text().contains("Anhang: rechnung.xml"));
    }
}
