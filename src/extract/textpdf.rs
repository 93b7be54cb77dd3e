//! A small, deterministic writer of born-digital text PDFs (A4, the standard Helvetica fonts with
//! WinAnsiEncoding, so German umlauts, `ß` and `€` render and `pdftotext` reads them back).
//!
//! Lines are wrapped at word boundaries to the text width (Helvetica's metrics), words longer
//! than a line are split, and text flows onto as many pages as it needs (up to a limit; what is
//! beyond it is cut with a German note). No timestamps or ids are written: the same blocks always
//! give the same bytes.

use std::fmt::Write as _;

/// One block of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A bold heading (larger type).
    Heading(String),
    /// A field: bold label in a column of its own, the value wrapped beside it.
    Field(String, String),
    /// Running text; each `\n` starts a new line, empty lines are kept.
    Text(String),
    /// Vertical space of one line.
    Space,
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
const SIZE: f32 = 10.0;
const LEADING: f32 = 13.0;
const HEADING_SIZE: f32 = 14.0;
const HEADING_LEADING: f32 = 20.0;
const LABEL_W: f32 = 60.0;
/// Where the footer (page number) sits.
const FOOTER_Y: f32 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
        }
    }
}

/// One placed line of text: parts in their fonts, set one after the other.
struct Run {
    size: f32,
    x: f32,
    y: f32,
    parts: Vec<(Font, Vec<u8>)>,
}

/// Maps a character to its WinAnsiEncoding byte (`?` for characters the font cannot show).
fn win_ansi(c: char) -> u8 {
    let u = c as u32;
    match u {
        0x20..=0x7e | 0xa0..=0xff => u as u8,
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            '\u{2212}' => b'-',
            '\u{2010}' | '\u{2011}' => b'-',
            '\u{2009}' | '\u{202f}' | '\u{2007}' => b' ',
            _ => b'?',
        },
    }
}

/// Helvetica widths (1/1000 em) of the printable ASCII characters 0x20..=0x7e.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // 0x70
];

/// Width of one WinAnsi byte in 1/1000 em. Bold text is estimated 10 % wider, and characters
/// outside ASCII as wide as the widest common letters, so wrapped lines never overrun.
fn width(b: u8, font: Font) -> f32 {
    let w = match b {
        0x20..=0x7e => HELVETICA[(b - 0x20) as usize] as f32,
        0x80 => 556.0,
        0xc0..=0xdf => 778.0,
        _ => 611.0,
    };
    match font {
        Font::Regular => w,
        Font::Bold => w * 1.1,
    }
}

fn text_width(bytes: &[u8], font: Font, size: f32) -> f32 {
    bytes.iter().map(|&b| width(b, font)).sum::<f32>() * size / 1000.0
}

/// Encodes a line: tabs become four spaces, other control characters are dropped.
fn encode(line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => out.extend_from_slice(b"    "),
            c if c.is_control() => {}
            c => out.push(win_ansi(c)),
        }
    }
    out
}

/// Wraps one encoded line to `max` points: at spaces where possible, else inside a word.
fn wrap(line: &[u8], font: Font, size: f32, max: f32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_w = 0.0f32;
    // Words with the spaces before them, so indentation is kept.
    let mut words: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for i in 1..line.len() {
        if line[i] == b' ' && line[i - 1] != b' ' {
            words.push(&line[start..i]);
            start = i;
        }
    }
    if start < line.len() {
        words.push(&line[start..]);
    }
    for word in words {
        let w = text_width(word, font, size);
        if cur_w + w <= max {
            cur.extend_from_slice(word);
            cur_w += w;
            continue;
        }
        // A new line starts without the spaces that separated the word.
        let word = if cur.is_empty() {
            word
        } else {
            out.push(std::mem::take(&mut cur));
            let trimmed = word.iter().position(|&b| b != b' ').unwrap_or(word.len());
            &word[trimmed..]
        };
        cur_w = 0.0;
        for &b in word {
            let bw = width(b, font) * size / 1000.0;
            if cur_w + bw > max && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                cur_w = 0.0;
            }
            cur.push(b);
            cur_w += bw;
        }
    }
    out.push(cur);
    out
}

struct Layout {
    pages: Vec<Vec<Run>>,
    y: f32,
    max_pages: usize,
    truncated: bool,
}

impl Layout {
    /// Makes room for a line of `leading`; false when the page limit is reached.
    fn advance(&mut self, leading: f32) -> bool {
        if self.truncated {
            return false;
        }
        if self.pages.is_empty() || self.y - leading < MARGIN {
            if self.pages.len() >= self.max_pages {
                self.truncated = true;
                return false;
            }
            self.pages.push(Vec::new());
            self.y = PAGE_H - MARGIN;
        }
        self.y -= leading;
        true
    }

    fn put(&mut self, size: f32, x: f32, parts: Vec<(Font, Vec<u8>)>) {
        let y = self.y;
        if let Some(p) = self.pages.last_mut() {
            p.push(Run { size, x, y, parts });
        }
    }
}

/// Renders the blocks as a PDF of at most `max_pages` pages (at least one).
pub fn render(blocks: &[Block], max_pages: usize) -> Vec<u8> {
    let text_w = PAGE_W - 2.0 * MARGIN;
    let mut l = Layout {
        pages: Vec::new(),
        y: 0.0,
        max_pages: max_pages.max(1),
        truncated: false,
    };
    'blocks: for block in blocks {
        match block {
            Block::Heading(t) => {
                for line in wrap(&encode(t), Font::Bold, HEADING_SIZE, text_w) {
                    if !l.advance(HEADING_LEADING) {
                        break 'blocks;
                    }
                    l.put(HEADING_SIZE, MARGIN, vec![(Font::Bold, line)]);
                }
            }
            Block::Field(label, value) => {
                let mut label = encode(label);
                label.push(b' ');
                let indent = LABEL_W.max(text_width(&label, Font::Bold, SIZE));
                let lines = wrap(&encode(value), Font::Regular, SIZE, text_w - indent);
                for (i, line) in lines.into_iter().enumerate() {
                    if !l.advance(LEADING) {
                        break 'blocks;
                    }
                    // The label and the first line form one line of text (so text extraction
                    // reads "Betreff: ..."); continuation lines are indented.
                    if i == 0 {
                        let parts = vec![(Font::Bold, label.clone()), (Font::Regular, line)];
                        l.put(SIZE, MARGIN, parts);
                    } else {
                        l.put(SIZE, MARGIN + indent, vec![(Font::Regular, line)]);
                    }
                }
            }
            Block::Text(t) => {
                for raw in t.split('\n') {
                    let raw = raw.strip_suffix('\r').unwrap_or(raw);
                    for line in wrap(&encode(raw), Font::Regular, SIZE, text_w) {
                        if !l.advance(LEADING) {
                            break 'blocks;
                        }
                        if !line.is_empty() {
                            l.put(SIZE, MARGIN, vec![(Font::Regular, line)]);
                        }
                    }
                }
            }
            Block::Space => {
                if !l.advance(LEADING) {
                    break 'blocks;
                }
            }
        }
    }
    if l.pages.is_empty() {
        l.pages.push(Vec::new());
    }
    if l.truncated {
        // The note goes at the foot of the last page, above the page number.
        let note = encode(&format!(
            "[Gekürzt: mehr als {} Seiten; der vollständige Text steht in der Original-E-Mail.]",
            l.max_pages
        ));
        if let Some(p) = l.pages.last_mut() {
            p.push(Run {
                size: SIZE,
                x: MARGIN,
                y: MARGIN - LEADING,
                parts: vec![(Font::Bold, note)],
            });
        }
    }
    write(&l.pages)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 2);
    s.push('<');
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s.push('>');
    s
}

/// Writes the objects: catalog, page tree, two fonts, then a page and its content per page.
fn write(pages: &[Vec<Run>]) -> Vec<u8> {
    let n = pages.len();
    let mut objects: Vec<Vec<u8>> = Vec::new();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).into_bytes());
    for base in ["Helvetica", "Helvetica-Bold"] {
        objects.push(
            format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
            )
            .into_bytes(),
        );
    }
    for (i, runs) in pages.iter().enumerate() {
        let mut content = String::new();
        for r in runs {
            let _ = write!(content, "BT {:.2} {:.2} Td", r.x, r.y);
            for (font, bytes) in &r.parts {
                let _ = write!(content, " /{} {} Tf {} Tj", font.name(), r.size, hex(bytes));
            }
            content.push_str(" ET\n");
        }
        let footer = encode(&format!("Seite {} von {n}", i + 1));
        let fw = text_width(&footer, Font::Regular, 8.0);
        let _ = writeln!(
            content,
            "BT /F1 8 Tf {:.2} {FOOTER_Y:.2} Td {} Tj ET",
            PAGE_W - MARGIN - fw,
            hex(&footer)
        );
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                6 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"endstream");
        objects.push(stream);
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        let _ = writeln!(tail, "{off:010} 00000 n ");
    }
    let _ = write!(
        tail,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(tail.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn pdftotext(pdf: &[u8], args: &[&str]) -> String {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("t.pdf");
        std::fs::write(&p, pdf).expect("write");
        let out = Command::new("pdftotext")
            .args(args)
            .arg(&p)
            .arg("-")
            .output()
            .expect("pdftotext");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn page_count(pdf: &[u8]) -> usize {
        lopdf::Document::load_mem(pdf)
            .expect("lopdf")
            .get_pages()
            .len()
    }

    #[test]
    fn umlauts_and_every_line_are_read_back_and_text_flows_onto_pages() {
        let mut body = String::new();
        for i in 1..=150 {
            let _ = writeln!(
                body,
                "Zeile {i:03}: Grüße aus Köln, Maß 3 € – „Prüfung“ ÄÖÜäöüß"
            );
        }
        let long = "Sehr geehrte Damen und Herren, ".repeat(30);
        let blocks = vec![
            Block::Heading("E-Mail".into()),
            Block::Field("Von:".into(), "Jürgen Weiß <j.weiss@example.org>".into()),
            Block::Field("Betreff:".into(), "Straßenreinigung Gebühr".into()),
            Block::Space,
            Block::Text(long.clone()),
            Block::Text(body),
        ];
        let pdf = render(&blocks, 100);
        assert_eq!(pdf, render(&blocks, 100), "deterministic");
        let pages = page_count(&pdf);
        assert!((3..=5).contains(&pages), "{pages} pages");
        let text = pdftotext(&pdf, &[]);
        assert!(text.contains("Jürgen Weiß <j.weiss@example.org>"), "{text}");
        assert!(text.contains("Straßenreinigung Gebühr"), "{text}");
        for i in 1..=150 {
            let line = format!("Zeile {i:03}: Grüße aus Köln, Maß 3 € – „Prüfung“ ÄÖÜäöüß");
            assert!(text.contains(&line), "missing {line}");
        }
        // The long paragraph was wrapped (several lines), no word lost or split.
        let words: Vec<&str> = text
            .split("Straßenreinigung Gebühr")
            .nth(1)
            .expect("after subject")
            .split("Zeile 001")
            .next()
            .expect("before body")
            .split_whitespace()
            .collect();
        assert_eq!(words.join(" "), long.trim_end());
        let p1 = pdftotext(&pdf, &["-f", "1", "-l", "1"]);
        assert!(p1.contains("Seite 1 von"), "{p1}");
        let last = pdftotext(&pdf, &["-f", &pages.to_string(), "-l", &pages.to_string()]);
        assert!(last.contains("Zeile 150"), "{last}");
        assert!(!p1.contains("Zeile 150"));
    }

    #[test]
    fn very_long_words_are_split_and_the_page_limit_cuts_with_a_note() {
        let word = "x".repeat(400);
        let pdf = render(&[Block::Text(word)], 10);
        let text: String = pdftotext(&pdf, &[]).split_whitespace().collect();
        assert!(text.contains(&"x".repeat(400)), "{text}");
        let many = "Zeile\n".repeat(5000);
        let pdf = render(&[Block::Text(many)], 3);
        assert_eq!(page_count(&pdf), 3);
        assert!(pdftotext(&pdf, &[]).contains("[Gekürzt: mehr als 3 Seiten"));
    }

    #[test]
    fn wrapped_lines_fit_the_text_width() {
        let line = encode(&"Wörter und Zahlen 12345 ".repeat(40));
        let max = PAGE_W - 2.0 * MARGIN;
        let lines = wrap(&line, Font::Regular, SIZE, max);
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(text_width(l, Font::Regular, SIZE) <= max);
        }
    }
}
