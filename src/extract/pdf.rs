//! PDF: text layer first; pages without usable text are rendered (`pdftoppm`) and OCR'd.

use super::{ExtractError, ExtractOptions, Extraction, MediaType, Method, Page, count_alnum};
use std::path::Path;
use std::process::Command;

/// Extracts a PDF. Runs inside the worker process (time and memory limits come from there).
pub fn extract(
    bytes: &[u8],
    path: &Path,
    opts: &ExtractOptions,
) -> Result<Extraction, ExtractError> {
    let (page_count, encrypted, invoice) = match lopdf::Document::load_mem(bytes) {
        Ok(doc) => (
            doc.get_pages().len() as u32,
            doc.is_encrypted(),
            embedded_invoice(&doc),
        ),
        // Damaged structure: poppler may still reconstruct it; the renderer decides below.
        Err(_) => (0, looks_encrypted(bytes), None),
    };
    if let Ok(pages) = pdf_extract::extract_text_from_mem_by_pages(bytes) {
        let first_ok = pages
            .first()
            .map(|p| count_alnum(p) >= opts.min_text_chars)
            .unwrap_or(false);
        if first_ok {
            let pages: Vec<Page> = pages
                .into_iter()
                .take(opts.max_pages as usize)
                .enumerate()
                .map(|(i, text)| Page {
                    number: i as u32 + 1,
                    text: tidy(&text),
                    words: Vec::new(),
                    width: 0.0,
                    height: 0.0,
                    units_per_mm: 0.0,
                })
                .collect();
            return Ok(Extraction {
                media_type: MediaType::Pdf,
                method: Method::TextLayer,
                page_count: page_count.max(pages.len() as u32),
                pages,
                invoice,
            });
        }
    }
    // No usable text layer: a scan. Page 1 first; more pages only while text is missing.
    let last = if page_count == 0 {
        1
    } else {
        page_count.min(opts.max_pages)
    };
    let mut pages = Vec::new();
    for n in 1..=last {
        let gray = match render_page(path, n, opts.dpi) {
            Ok(g) => g,
            Err(e) if n == 1 => {
                return Err(if encrypted {
                    ExtractError::Encrypted(e)
                } else {
                    ExtractError::BrokenPdf(e)
                });
            }
            Err(_) => break,
        };
        let img = super::image::decode_pnm_gray(&gray, opts.max_image_pixels)?;
        let page = super::ocr::with_engine(opts, |e| e.recognize(&img, n, opts.dpi))?;
        let enough = count_alnum(&page.text) >= opts.min_text_chars;
        pages.push(page);
        if enough {
            break;
        }
    }
    Ok(Extraction {
        media_type: MediaType::Pdf,
        method: Method::Ocr,
        page_count: page_count.max(pages.len() as u32),
        pages,
        invoice,
    })
}

/// The ZUGFeRD / Factur-X invoice embedded in the PDF, when there is one that can be read.
/// A broken embedded XML does not make the PDF unreadable: it is then read as a letter.
fn embedded_invoice(doc: &lopdf::Document) -> Option<crate::domain::InvoiceInfo> {
    let xml = super::einvoice::embedded_xml(doc)?;
    super::einvoice::parse(&xml, Some("zugferd"))
        .ok()
        .map(|(info, _)| info)
}

/// Renders one page to an 8-bit grayscale PGM with poppler's `pdftoppm`.
pub(crate) fn render_page(path: &Path, page: u32, dpi: u32) -> Result<Vec<u8>, String> {
    let out = Command::new("pdftoppm")
        .args([
            "-gray",
            "-r",
            &dpi.to_string(),
            "-f",
            &page.to_string(),
            "-l",
            &page.to_string(),
        ])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("pdftoppm not available: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("pdftoppm: {} {}", out.status, err.trim()));
    }
    Ok(out.stdout)
}

fn looks_encrypted(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b"/Encrypt")
}

/// Normalises text-layer output: no trailing spaces, at most one blank line in a row.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let l = line.trim_end();
        if l.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.trim_matches('\n').to_string()
}
