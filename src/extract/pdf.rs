//! PDF: text layer first; pages without usable text are rendered (`pdftoppm`) and OCR'd.

use super::image::Gray;
use super::{ExtractError, ExtractOptions, Extraction, MediaType, Method, Page, Word, count_alnum};
use regex::Regex;
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

/// Extracts a PDF. Runs inside the worker process (time and memory limits come from there).
pub fn extract(
    bytes: &[u8],
    path: &Path,
    opts: &ExtractOptions,
) -> Result<Extraction, ExtractError> {
    let parsed = lopdf::Document::load_mem(bytes).ok();
    let (page_count, encrypted, invoice) = match &parsed {
        Some(doc) => (
            doc.get_pages().len() as u32,
            doc.is_encrypted(),
            embedded_invoice(doc),
        ),
        // Damaged structure: poppler may still reconstruct it; the renderer decides below.
        None => (0, looks_encrypted(bytes), None),
    };
    // pdf-extract panics on some damaged files (text shown before a font is set, a page
    // without a MediaBox): that is a failure of this reader only, and the renderer still gets
    // its turn, as after its errors (the fuzzing campaign found it: before, such a PDF was
    // quarantined whole, and an e-mail with it as an attachment too).
    let text_layer =
        std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes));
    if let Ok(Ok(pages)) = text_layer {
        let first_ok = pages
            .first()
            .map(|p| count_alnum(p) >= opts.min_text_chars)
            .unwrap_or(false);
        if first_ok {
            let mut pages: Vec<Page> = pages
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
            // Page 1's word boxes, for the letter segmentation (a failure costs only them).
            if let (Some(p1), Some((words, width, height))) =
                (pages.first_mut(), text_layer_words(path))
            {
                p1.words = words;
                p1.width = width;
                p1.height = height;
                p1.units_per_mm = 72.0 / 25.4;
            }
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
        let stored = parsed
            .as_ref()
            .filter(|d| !d.is_encrypted())
            .and_then(|d| stored_page_image(d, n, opts.max_image_pixels));
        let (img, dpi) = match stored {
            Some(found) => found,
            None => match render_page(path, n, opts.dpi, opts.max_image_pixels) {
                Ok(g) => (
                    super::image::decode_pnm_gray(&g, opts.max_image_pixels)?,
                    opts.dpi,
                ),
                Err(RenderError::TooLarge(e)) => return Err(e),
                Err(RenderError::Failed(e)) if n == 1 => {
                    return Err(if encrypted {
                        ExtractError::Encrypted(e)
                    } else {
                        ExtractError::BrokenPdf(e)
                    });
                }
                Err(RenderError::Failed(_)) => break,
            },
        };
        let page = super::ocr::with_engine(opts, |e| e.recognize(&img, n, dpi))?;
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

/// Resolutions at which a page's stored image is read as it is; outside them the page is
/// rendered at the configured resolution.
const USABLE_DPI: std::ops::RangeInclusive<f32> = 240.0..=600.0;

/// The image of page `page` (1-based) as the scanner stored it, with its resolution, when the
/// page is nothing but one image covering it (as scanners write PDFs) at a usable resolution
/// and in a form read here (8-bit JPEG, or Flate-compressed 8-bit or 1-bit gray / 8-bit RGB);
/// else `None` and the page is rendered. Saves rendering and resampling a page that is
/// already a bitmap.
pub(crate) fn stored_page_image(
    doc: &lopdf::Document,
    page: u32,
    max_pixels: u64,
) -> Option<(Gray, u32)> {
    use lopdf::Object;
    let id = *doc.get_pages().get(&page)?;
    let inherited = |key: &[u8]| inherited(doc, id, key);
    let num = number;
    if inherited(b"Rotate").as_ref().and_then(num).unwrap_or(0.0) != 0.0 {
        return None;
    }
    let media: Vec<f32> = inherited(b"MediaBox")?
        .as_array()
        .ok()?
        .iter()
        .filter_map(num)
        .collect();
    let [x0, y0, x1, y1] = media[..] else {
        return None;
    };
    let (pw, ph) = (x1 - x0, y1 - y0);
    // A scanner's content stream is a few operators; anything larger is not a bare image page.
    let raw: usize = doc
        .get_page_contents(id)
        .iter()
        .filter_map(|c| doc.get_object(*c).ok()?.as_stream().ok())
        .map(|s| s.content.len())
        .sum();
    if raw > 4096 || pw <= 0.0 || ph <= 0.0 {
        return None;
    }
    let content = doc.get_page_content(id).ok()?;
    let ops = lopdf::content::Content::decode(&content).ok()?.operations;
    let mut ctm = [1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0];
    let mut saved = Vec::new();
    let mut drawn = None;
    for op in &ops {
        match op.operator.as_str() {
            "q" => saved.push(ctm),
            "Q" => ctm = saved.pop()?,
            "cm" => {
                let m: Vec<f32> = op.operands.iter().filter_map(num).collect();
                let [a, b, c, d, e, f] = m[..] else {
                    return None;
                };
                let t = ctm;
                ctm = [
                    a * t[0] + b * t[2],
                    a * t[1] + b * t[3],
                    c * t[0] + d * t[2],
                    c * t[1] + d * t[3],
                    e * t[0] + f * t[2] + t[4],
                    e * t[1] + f * t[3] + t[5],
                ];
            }
            "Do" if drawn.is_none() => {
                drawn = Some((op.operands.first()?.as_name().ok()?.to_vec(), ctm))
            }
            _ => return None,
        }
    }
    let (name, [a, b, c, d, e, f]) = drawn?;
    let close = |x: f32, y: f32| (x - y).abs() <= 0.01 * pw.max(ph);
    if b != 0.0 || c != 0.0 || !close(a, pw) || !close(d, ph) || !close(e, x0) || !close(f, y0) {
        return None;
    }
    let resources = inherited(b"Resources")?;
    let xobjects = resources.as_dict().ok()?.get(b"XObject").ok()?;
    let (_, xobjects) = doc.dereference(xobjects).ok()?;
    let (_, image) = doc
        .dereference(xobjects.as_dict().ok()?.get(&name).ok()?)
        .ok()?;
    let image = image.as_stream().ok()?;
    let idict = &image.dict;
    if idict.get(b"Subtype").ok()?.as_name().ok()? != b"Image"
        || idict.has(b"ImageMask")
        || idict.has(b"Decode")
        || idict.has(b"DecodeParms")
    {
        return None;
    }
    let w = u32::try_from(idict.get(b"Width").ok()?.as_i64().ok()?).ok()?;
    let h = u32::try_from(idict.get(b"Height").ok()?.as_i64().ok()?).ok()?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > max_pixels {
        return None;
    }
    let dpi = w as f32 * 72.0 / pw;
    let dpi_y = h as f32 * 72.0 / ph;
    if !USABLE_DPI.contains(&dpi) || (dpi - dpi_y).abs() > 0.02 * dpi {
        return None;
    }
    let components = match doc.dereference(idict.get(b"ColorSpace").ok()?).ok()?.1 {
        Object::Name(n) if n == b"DeviceGray" => 1,
        Object::Name(n) if n == b"DeviceRGB" => 3,
        Object::Array(a) if a.first().and_then(|o| o.as_name().ok()) == Some(b"ICCBased") => {
            let profile = doc.dereference(a.get(1)?).ok()?.1.as_stream().ok()?;
            match profile.dict.get(b"N").ok()?.as_i64().ok()? {
                1 => 1,
                3 => 3,
                _ => return None,
            }
        }
        _ => return None,
    };
    let bits = idict.get(b"BitsPerComponent").ok()?.as_i64().ok()?;
    let filters = image.filters().ok()?;
    let pixels = match (filters.as_slice(), bits, components) {
        ([b"DCTDecode"], 8, _) => {
            let g = super::image::decode_single(&image.content, max_pixels).ok()?;
            (g.width == w && g.height == h).then_some(g.pixels)?
        }
        ([b"FlateDecode"], 8 | 1, _) => {
            let row = (w as usize * components * bits as usize).div_ceil(8);
            let data = inflate(&image.content, row * h as usize)?;
            match (bits, components) {
                (8, 1) => data,
                (8, _) => data.chunks_exact(3).map(super::image::luma).collect(),
                (_, 1) => (0..h as usize)
                    .flat_map(|y| {
                        let data = &data;
                        (0..w as usize).map(move |x| {
                            if data[y * row + x / 8] & (0x80 >> (x % 8)) != 0 {
                                255
                            } else {
                                0
                            }
                        })
                    })
                    .collect(),
                _ => return None,
            }
        }
        _ => return None,
    };
    (pixels.len() == w as usize * h as usize).then_some((
        Gray {
            width: w,
            height: h,
            pixels,
            dpi: Some(dpi.round() as u32),
        },
        dpi.round() as u32,
    ))
}

/// A page attribute, looked up through the page tree as PDF inheritance says (at most 32
/// levels, so a cycle ends).
pub(crate) fn inherited(
    doc: &lopdf::Document,
    page: lopdf::ObjectId,
    key: &[u8],
) -> Option<lopdf::Object> {
    let mut id = page;
    for _ in 0..32 {
        let dict = doc.get_dictionary(id).ok()?;
        if let Ok(v) = dict.get(key) {
            return doc.dereference(v).ok().map(|(_, o)| o.clone());
        }
        id = dict.get(b"Parent").ok()?.as_reference().ok()?;
    }
    None
}

/// A PDF number as `f32`.
pub(crate) fn number(o: &lopdf::Object) -> Option<f32> {
    match o {
        lopdf::Object::Integer(i) => Some(*i as f32),
        lopdf::Object::Real(r) => Some(*r),
        _ => None,
    }
}

/// Inflates a zlib stream to exactly `expected` bytes; more (a bomb) or less is refused.
fn inflate(data: &[u8], expected: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(expected);
    flate2::read::ZlibDecoder::new(data)
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() == expected).then_some(out)
}

/// Why a page was not rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RenderError {
    /// The page would have more pixels than allowed at this resolution: not rendered.
    TooLarge(ExtractError),
    /// `pdftoppm` failed (its message; "Wrong page range" for a page beyond the last).
    Failed(String),
}

impl RenderError {
    /// The error for an extraction: a page too large as it is, a failure as `fail` makes it.
    pub(crate) fn into_extract(self, fail: impl FnOnce(String) -> ExtractError) -> ExtractError {
        match self {
            RenderError::TooLarge(e) => e,
            RenderError::Failed(m) => fail(m),
        }
    }
}

/// The size in pixels of page `page` rendered at `dpi`, from its MediaBox as poppler reads it
/// (`pdfinfo -box`; `pdftoppm` renders the MediaBox and ignores `/UserUnit`). `None` when
/// `pdfinfo` cannot tell (a page beyond the last, a file poppler cannot open): `pdftoppm`
/// then fails the same way.
fn rendered_size(path: &Path, page: u32, dpi: u32) -> Option<(u64, u64)> {
    let out = Command::new("pdfinfo")
        .args(["-box", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    super::sandbox::pass_on_limit_signal(&out.status);
    if !out.status.success() {
        return None;
    }
    media_box_pixels(&String::from_utf8_lossy(&out.stdout), dpi)
}

/// Width and height in pixels at `dpi` of the first `MediaBox:` line of `pdfinfo -box`.
fn media_box_pixels(info: &str, dpi: u32) -> Option<(u64, u64)> {
    let line = info.lines().find(|l| l.contains("MediaBox:"))?;
    let nums: Vec<f64> = line
        .split_once("MediaBox:")?
        .1
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [x1, y1, x2, y2] = nums[..] else {
        return None;
    };
    let px =
        |points: f64| ((points.abs() * f64::from(dpi) / 72.0).ceil()).min(u64::MAX as f64) as u64;
    Some((px(x2 - x1), px(y2 - y1)))
}

/// Renders one page to an 8-bit grayscale PGM with poppler's `pdftoppm`, after checking its
/// size: a page that would have more than `max_pixels` pixels at `dpi` is refused before
/// anything is drawn ([`ExtractError::PageTooLarge`]).
pub(crate) fn render_page(
    path: &Path,
    page: u32,
    dpi: u32,
    max_pixels: u64,
) -> Result<Vec<u8>, RenderError> {
    render_checked(path, page, dpi, max_pixels, false)
}

/// Like [`render_page`], but a page poppler reports an error for (a broken image stream, a
/// broken content stream) is refused instead of drawn as far as it goes: a stack's broken page
/// must not pass for a blank one.
pub(crate) fn render_page_strict(
    path: &Path,
    page: u32,
    dpi: u32,
    max_pixels: u64,
) -> Result<Vec<u8>, RenderError> {
    render_checked(path, page, dpi, max_pixels, true)
}

fn render_checked(
    path: &Path,
    page: u32,
    dpi: u32,
    max_pixels: u64,
    strict: bool,
) -> Result<Vec<u8>, RenderError> {
    if let Some((width, height)) = rendered_size(path, page, dpi)
        && width.saturating_mul(height) > max_pixels
    {
        return Err(RenderError::TooLarge(ExtractError::PageTooLarge {
            page,
            width,
            height,
            dpi,
        }));
    }
    render_unchecked(path, page, dpi, strict).map_err(RenderError::Failed)
}

/// `pdftoppm` for one page; `strict`: an error poppler reports on stderr fails the page too.
fn render_unchecked(path: &Path, page: u32, dpi: u32, strict: bool) -> Result<Vec<u8>, String> {
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
    super::sandbox::pass_on_limit_signal(&out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || out.stdout.is_empty() || (strict && err.contains("Error")) {
        return Err(format!("pdftoppm: {} {}", out.status, err.trim()));
    }
    Ok(out.stdout)
}

/// The words of page 1's text layer with their boxes (in points from the top-left corner) and
/// the page's size in points, read by poppler's `pdftotext -bbox-layout`; `None` when it
/// fails. Words of one `<line>` share a line number.
fn text_layer_words(path: &Path) -> Option<(Vec<Word>, f32, f32)> {
    let out = Command::new("pdftotext")
        .args(["-q", "-bbox-layout", "-enc", "UTF-8", "-f", "1", "-l", "1"])
        .arg(path)
        .arg("-")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    super::sandbox::pass_on_limit_signal(&out.status);
    if !out.status.success() {
        return None;
    }
    parse_bbox_layout(&String::from_utf8_lossy(&out.stdout))
}

static BBOX_PAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<page width="([\d.]+)" height="([\d.]+)""#).expect("static regex")
});
static BBOX_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"<word xMin="([\d.\-]+)" yMin="([\d.\-]+)" xMax="([\d.\-]+)" yMax="([\d.\-]+)">([^<]*)</word>"#,
    )
    .expect("static regex")
});

/// Parses the XHTML of `pdftotext -bbox-layout` (its first page).
fn parse_bbox_layout(xhtml: &str) -> Option<(Vec<Word>, f32, f32)> {
    let page = BBOX_PAGE.captures(xhtml)?;
    let num = |s: &str| s.parse::<f32>().ok().filter(|v| v.is_finite());
    let width = num(page.get(1)?.as_str())?;
    let height = num(page.get(2)?.as_str())?;
    let mut words = Vec::new();
    let mut line = 0u32;
    for row in xhtml.lines() {
        if row.contains("</page>") {
            break;
        }
        if row.trim_start().starts_with("<line ") {
            line += 1;
            continue;
        }
        let Some(c) = BBOX_WORD.captures(row) else {
            continue;
        };
        let field = |i: usize| c.get(i).and_then(|m| num(m.as_str()));
        let (Some(x0), Some(y0), Some(x1), Some(y1)) = (field(1), field(2), field(3), field(4))
        else {
            continue;
        };
        let raw = c.get(5).map(|m| m.as_str()).unwrap_or_default();
        let text = quick_xml::escape::unescape(raw)
            .map(|t| t.into_owned())
            .unwrap_or_else(|_| raw.to_string());
        if text.trim().is_empty() {
            continue;
        }
        words.push(Word {
            text,
            x: x0,
            y: y0,
            w: (x1 - x0).max(0.0),
            h: (y1 - y0).max(0.0),
            conf: 100.0,
            line,
        });
    }
    (!words.is_empty()).then_some((words, width, height))
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

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{Document, Object, Stream, dictionary};

    /// A one-page PDF whose page draws `image` with `content`.
    fn pdf_with(image: Stream, content: &str, rotate: i64) -> Document {
        let mut doc = Document::with_version("1.4");
        let pages = doc.new_object_id();
        let image = doc.add_object(image);
        let content = doc.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(595.2), Object::Real(842.4)],
            "Rotate" => rotate,
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image } },
            "Contents" => content,
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        doc
    }

    fn jpeg_image(w: u32, h: u32) -> Stream {
        let mut img = image::GrayImage::from_pixel(w, h, image::Luma([255]));
        img.put_pixel(3, 3, image::Luma([0]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .expect("jpeg");
        Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64,
                "Height" => h as i64, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                "Filter" => "DCTDecode",
            },
            jpeg.into_inner(),
        )
    }

    fn opts() -> ExtractOptions {
        ExtractOptions {
            language: "deu".into(),
            tessdata: None,
            dpi: 300,
            min_text_chars: 20,
            max_pages: 5,
            max_image_pixels: 100_000_000,
            mail: Default::default(),
        }
    }

    /// A page of 20000 × 20000 pt (about 7 m square) with one small square on it and no text:
    /// at 300 dpi 83334 × 83334 pixels, 6.9 GB of gray, if anything rendered it.
    #[test]
    fn a_pdf_page_too_large_to_render_is_refused_before_rendering() {
        let mut doc = Document::with_version("1.4");
        let pages = doc.new_object_id();
        let content = doc.add_object(Stream::new(
            dictionary! {},
            b"0 0 0 rg 100 100 500 500 re f".to_vec(),
        ));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages,
            "MediaBox" => vec![0.into(), 0.into(), 20000.into(), 20000.into()],
            "Contents" => content,
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("save");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("riesig.pdf");
        std::fs::write(&path, &bytes).expect("write");
        let too_large = ExtractError::PageTooLarge {
            page: 1,
            width: 83334,
            height: 83334,
            dpi: 300,
        };
        let e = extract(&bytes, &path, &opts()).expect_err("refused");
        assert_eq!(e, too_large);
        assert!(e.is_input_fault());
        let reason = e.reason_de();
        assert!(
            reason.contains("Seite 1") && reason.contains("nicht gerendert"),
            "{reason}"
        );
        // The OCR of one page and the desk's page image refuse it the same way.
        assert_eq!(
            super::super::ocr::page(&path, MediaType::Pdf, 1, &opts()).expect_err("refused"),
            too_large
        );
        assert!(matches!(
            super::super::preview::page_png(&path, MediaType::Pdf, 1, &opts()),
            Err(ExtractError::PageTooLarge { page: 1, .. })
        ));
        // A page beyond the last is not the check's business: pdftoppm says what it says.
        assert_eq!(
            render_page(&path, 2, 300, 100_000_000),
            Err(RenderError::Failed(
                render_unchecked(&path, 2, 300, false).expect_err("no page 2")
            ))
        );
    }

    #[test]
    fn the_media_box_is_read_from_pdfinfo() {
        let info = "Pages:           1\nPage    1 size:  595 x 842 pts (A4)\n\
                    Page    1 MediaBox:      0.00     0.00   595.28   841.89\n\
                    Page    1 CropBox:       0.00     0.00   100.00   100.00\n";
        assert_eq!(media_box_pixels(info, 300), Some((2481, 3508)));
        assert_eq!(media_box_pixels(info, 72), Some((596, 842)));
        let odd = "Page    1 MediaBox:  -10000.00 -10000.00 10000.00 10000.00\n";
        assert_eq!(media_box_pixels(odd, 72), Some((20000, 20000)));
        assert_eq!(media_box_pixels("Pages: 0\n", 300), None);
        assert_eq!(media_box_pixels("Page 1 MediaBox: 1 2 x\n", 300), None);
    }

    #[test]
    fn a_panic_of_the_text_layer_reader_leaves_the_page_to_the_renderer() {
        // Text shown before any font is set makes pdf-extract panic (found by the fuzzing
        // campaign); poppler skips it and draws the rest, which OCR reads.
        let mut doc = Document::with_version("1.4");
        let pages = doc.new_object_id();
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let content = "BT 72 760 Td (ohne Schrift) Tj ET \
                       BT /F1 16 Tf 72 700 Td (Antrag auf Erteilung einer Baugenehmigung) Tj \
                       0 -30 Td (Sehr geehrte Damen und Herren, hiermit beantrage ich) Tj ET";
        let content = doc.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
            "Contents" => content,
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("save");
        assert!(
            std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(&bytes))
                .is_err(),
            "the reader no longer panics on this PDF: the test needs another one"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("brief.pdf");
        std::fs::write(&path, &bytes).expect("write");
        let opts = ExtractOptions {
            language: "deu".into(),
            tessdata: None,
            dpi: 150,
            min_text_chars: 20,
            max_pages: 1,
            max_image_pixels: 80_000_000,
            mail: Default::default(),
        };
        let ex = extract(&bytes, &path, &opts).expect("read by the renderer and OCR");
        assert_eq!(ex.method, Method::Ocr);
        assert!(
            ex.pages[0].text.contains("Baugenehmigung"),
            "{}",
            ex.pages[0].text
        );
    }

    #[test]
    fn the_text_layers_word_boxes_are_read_from_pdftotext() {
        let xhtml = r#"<doc>
  <page width="595.280000" height="841.890000">
        <line xMin="70.87" yMin="233.99" xMax="177.85" yMax="244.16">
          <word xMin="70.870000" yMin="233.992000" xMax="92.265000" yMax="244.167000">Ewa</word>
          <word xMin="131.997000" yMin="233.992000" xMax="139.334000" yMax="244.167000">&amp;</word>
        </line>
        <line xMin="354.0" yMin="233.99" xMax="447.55" yMax="244.16">
          <word xMin="354.000000" yMin="233.992000" xMax="389.453000" yMax="244.167000">Datum:</word>
        </line>
  </page>
</doc>"#;
        let (words, w, h) = parse_bbox_layout(xhtml).expect("parsed");
        assert_eq!((w, h), (595.28, 841.89));
        let texts: Vec<(&str, u32)> = words.iter().map(|w| (w.text.as_str(), w.line)).collect();
        assert_eq!(texts, [("Ewa", 1), ("&", 1), ("Datum:", 2)]);
        assert!((words[0].w - 21.395).abs() < 0.01 && (words[0].y - 233.992).abs() < 0.01);
        assert_eq!(parse_bbox_layout("<html></html>"), None);
    }

    const FULL_PAGE: &str = "q 595.2 0 0 842.4 0 0 cm /Im0 Do Q";

    #[test]
    fn a_scanners_page_image_is_taken_as_it_is_stored() {
        // 2480 x 3510 pixels on 595.2 x 842.4 pt: 300 dpi.
        let doc = pdf_with(jpeg_image(2480, 3510), FULL_PAGE, 0);
        let (img, dpi) = stored_page_image(&doc, 1, 100_000_000).expect("taken");
        assert_eq!((img.width, img.height, dpi), (2480, 3510, 300));
        assert!(
            img.pixels.iter().any(|p| *p < 128),
            "the dark pixel survives"
        );
        assert!(
            stored_page_image(&doc, 2, 100_000_000).is_none(),
            "no page 2"
        );
        assert!(
            stored_page_image(&doc, 1, 1_000_000).is_none(),
            "the pixel limit holds"
        );
    }

    #[test]
    fn pages_that_are_more_than_one_image_are_rendered() {
        let text = format!("{FULL_PAGE} BT /F1 12 Tf (x) Tj ET");
        for (doc, why) in [
            (pdf_with(jpeg_image(2480, 3510), &text, 0), "text on top"),
            (pdf_with(jpeg_image(2480, 3510), FULL_PAGE, 90), "rotated"),
            (
                pdf_with(jpeg_image(2480, 3510), "q 300 0 0 400 0 0 cm /Im0 Do Q", 0),
                "covers part of the page",
            ),
            (pdf_with(jpeg_image(827, 1170), FULL_PAGE, 0), "100 dpi"),
        ] {
            assert!(stored_page_image(&doc, 1, 100_000_000).is_none(), "{why}");
        }
    }

    #[test]
    fn a_flate_bilevel_page_is_unpacked_and_a_bomb_is_refused() {
        use std::io::Write;
        let (w, h) = (2480u32, 3510u32);
        let row = (w as usize).div_ceil(8);
        let mut bits = vec![0xFFu8; row * h as usize];
        bits[0] = 0x7F; // the first pixel is black
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&bits).expect("zlib");
        let stream = |data: Vec<u8>| {
            Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64,
                    "Height" => h as i64, "ColorSpace" => "DeviceGray",
                    "BitsPerComponent" => 1, "Filter" => "FlateDecode",
                },
                data,
            )
        };
        let doc = pdf_with(stream(z.finish().expect("zlib")), FULL_PAGE, 0);
        let (img, _) = stored_page_image(&doc, 1, 100_000_000).expect("taken");
        assert_eq!(img.pixels[0], 0);
        assert_eq!(img.pixels[1], 255);
        // More data than the image's size: refused, not inflated without end.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&vec![0u8; bits.len() * 4]).expect("zlib");
        let doc = pdf_with(stream(z.finish().expect("zlib")), FULL_PAGE, 0);
        assert!(stored_page_image(&doc, 1, 100_000_000).is_none());
    }
}
