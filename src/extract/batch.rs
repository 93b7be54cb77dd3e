//! Stacks (Stapel) in the sandbox: one page of a scanned stack analysed once (ink coverage
//! after removing specks, barcodes, patch code, OCR words), and the PDF of one part of the
//! stack (a subset of its pages, image streams kept as scanned).
//!
//! The daemon decides what the analysis means (blank, separator sheet, start of a letter:
//! `crate::batch`); this module only measures, because it parses the input.

use super::image::Gray;
use super::{ExtractError, ExtractOptions, MediaType, Page};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the daemon tells the worker for an analysis (the job's side file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnalyseSpec {
    /// The value of a separator sheet's barcode: a page that carries it is not read by OCR.
    pub separator_barcode: String,
}

/// A barcode read on a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barcode {
    /// Its symbology (`CODE_128`, `QR_CODE`).
    pub format: String,
    /// The value it encodes.
    pub value: String,
}

/// One analysed page of a stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageAnalysis {
    /// Page number in the stack (1-based).
    pub number: u32,
    /// Pages in the stack.
    pub page_count: u32,
    /// Share of the page (inside a margin) covered by ink after thresholding against the
    /// paper's brightness and removing specks (dust, noise): 0..1.
    pub ink: f64,
    /// Specks removed before measuring the ink (dust, noise, punch-hole edges).
    pub specks: u32,
    /// Barcodes read (Code 128, QR).
    pub barcodes: Vec<Barcode>,
    /// The patch code found (`T`, `1`, `2`, `4`, `6`), if any. Patch 3 reads as a patch T
    /// turned upside down and is reported as `T`.
    pub patch: Option<String>,
    /// The OCR result; `None` when the page was not read (nearly no ink, or a separator sheet).
    pub ocr: Option<Page>,
    /// Size of the page image in pixels and its resolution (for a page without OCR).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixels per millimetre.
    pub units_per_mm: f32,
}

/// An analysed page as the store keeps it: measured, or broken with the German reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredPage {
    /// Measured.
    Analysed(PageAnalysis),
    /// Could not be read.
    Broken(String),
}

/// Below this ink share a page is not read by OCR: it is blank, whatever the noise.
pub const NO_OCR_INK: f64 = 0.0006;

/// Analyses page `page` (1-based) of the stack at `path` (a PDF); `None` when it has no such
/// page. A page that cannot be drawn (a broken image stream, a renderer error) is an error of
/// the input.
pub fn analyse(
    path: &Path,
    media: MediaType,
    page: u32,
    opts: &ExtractOptions,
    spec: &AnalyseSpec,
) -> Result<Option<PageAnalysis>, ExtractError> {
    let Some((img, dpi, page_count)) = page_image(path, media, page, opts)? else {
        return Ok(None);
    };
    let (ink, specks) = ink_share(&img, dpi);
    let patch = patch_code(&img, dpi);
    let barcodes = read_barcodes(&img);
    let wanted = spec.separator_barcode.trim();
    let separator = patch.as_deref() == Some("T")
        || (!wanted.is_empty() && barcodes.iter().any(|b| b.value.trim() == wanted));
    let ocr = if separator || ink < NO_OCR_INK {
        None
    } else {
        Some(super::ocr::with_engine(opts, |e| {
            e.recognize(&img, page, dpi)
        })?)
    };
    Ok(Some(PageAnalysis {
        number: page,
        page_count,
        ink,
        specks,
        barcodes,
        patch,
        ocr,
        width: img.width,
        height: img.height,
        units_per_mm: dpi as f32 / 25.4,
    }))
}

/// Pages of a TIFF stack read at most.
const MAX_TIFF_PAGES: u32 = 2000;

/// The page drawn as 8-bit gray with its resolution, and the stack's page count. A scanner's
/// page image is taken as stored (a TIFF's page, or a PDF page's image); anything else is
/// rendered by poppler, and a page poppler reports errors for is broken.
fn page_image(
    path: &Path,
    media: MediaType,
    page: u32,
    opts: &ExtractOptions,
) -> Result<Option<(Gray, u32, u32)>, ExtractError> {
    let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
    if media == MediaType::Tiff {
        if tiff::decoder::Decoder::new(std::io::Cursor::new(&bytes[..])).is_err() {
            return Err(ExtractError::BrokenPdf("stack: not a readable TIFF".into()));
        }
        let count = super::image::tiff_page_count(&bytes, MAX_TIFF_PAGES);
        if page > count {
            return Ok(None);
        }
        let Some(img) =
            super::image::tiff_nth_page(&bytes, page as usize - 1, opts.max_image_pixels)?
        else {
            return Ok(None);
        };
        let dpi = img.dpi.filter(|d| (70..=1200).contains(d)).unwrap_or(300);
        return Ok(Some((img, dpi, count)));
    }
    let doc = lopdf::Document::load_mem(&bytes)
        .map_err(|e| ExtractError::BrokenPdf(format!("stack: {e}")))?;
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted("stack".into()));
    }
    let count = doc.get_pages().len() as u32;
    if page > count {
        return Ok(None);
    }
    if let Some((img, dpi)) = super::pdf::stored_page_image(&doc, page, opts.max_image_pixels) {
        return Ok(Some((img, dpi, count)));
    }
    let pgm = super::pdf::render_page_strict(path, page, opts.dpi, opts.max_image_pixels).map_err(
        |e| match e {
            super::pdf::RenderError::TooLarge(e) => e,
            super::pdf::RenderError::Failed(m) => {
                ExtractError::BrokenPdf(format!("page {page}: {m}"))
            }
        },
    )?;
    let img = super::image::decode_pnm_gray(&pgm, opts.max_image_pixels)?;
    Ok(Some((img, opts.dpi, count)))
}

/// The paper's brightness: the median of the page (a page is mostly paper).
fn paper_level(img: &Gray) -> u8 {
    let mut hist = [0u64; 256];
    for &p in &img.pixels {
        hist[p as usize] += 1;
    }
    let half = img.pixels.len() as u64 / 2;
    let mut seen = 0;
    for (v, n) in hist.iter().enumerate().rev() {
        seen += n;
        if seen >= half {
            return v as u8;
        }
    }
    255
}

/// The darkness below which a pixel is ink: well under the paper, so that bleed-through from
/// the back side and a gray scanner background do not count.
fn ink_threshold(img: &Gray) -> u8 {
    (f32::from(paper_level(img)) * 0.6) as u8
}

/// Smallest connected ink area (in cells of about a third of a millimetre) that counts: dust
/// and noise are smaller.
const MIN_COMPONENT_CELLS: usize = 4;

/// Ink coverage inside a margin (scanner edges, punch holes): pixels darker than
/// [`ink_threshold`], gathered into cells of about 1/3 mm; connected areas smaller than
/// [`MIN_COMPONENT_CELLS`] are specks and removed. Returns the share of cells with ink and the
/// number of specks removed.
pub fn ink_share(img: &Gray, dpi: u32) -> (f64, u32) {
    let cell = (dpi / 75).max(1) as usize;
    let (w, h) = (img.width as usize, img.height as usize);
    let (mx, my) = (w * 6 / 100, h * 4 / 100);
    let gw = (w.saturating_sub(2 * mx)) / cell;
    let gh = (h.saturating_sub(2 * my)) / cell;
    if gw == 0 || gh == 0 {
        return (0.0, 0);
    }
    let threshold = ink_threshold(img);
    let need = (cell * cell).div_ceil(3);
    let mut grid = vec![false; gw * gh];
    for gy in 0..gh {
        for gx in 0..gw {
            let mut dark = 0;
            for y in 0..cell {
                let row = (my + gy * cell + y) * w + mx + gx * cell;
                dark += img.pixels[row..row + cell]
                    .iter()
                    .filter(|&&p| p < threshold)
                    .count();
            }
            grid[gy * gw + gx] = dark >= need;
        }
    }
    let mut seen = vec![false; gw * gh];
    let (mut kept, mut specks) = (0usize, 0u32);
    let mut stack = Vec::new();
    for start in 0..grid.len() {
        if !grid[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = ((i % gw) as isize, (i / gw) as isize);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= gw as isize || ny >= gh as isize {
                        continue;
                    }
                    let j = ny as usize * gw + nx as usize;
                    if grid[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if size >= MIN_COMPONENT_CELLS {
            kept += size;
        } else {
            specks += 1;
        }
    }
    (kept as f64 / (gw * gh) as f64, specks)
}

/// Looks for a patch code: four parallel bars, two wide (5.08 mm) and two narrow (2.03 mm),
/// separated by narrow spaces, with a quiet zone around, read along rows and along columns.
/// The bars must read alike over at least 20 mm of their length (a standard patch is 50 mm or
/// more long), so text and tables do not pass for one. Returns the patch's name.
pub fn patch_code(img: &Gray, dpi: u32) -> Option<String> {
    let mm = dpi as f32 / 25.4;
    let threshold = ink_threshold(img);
    let (w, h) = (img.width as usize, img.height as usize);
    let step = (mm.round() as usize).max(1);
    for horizontal in [true, false] {
        let (lines, len) = if horizontal { (h, w) } else { (w, h) };
        // (pattern, centre) read on consecutive scanlines.
        let mut runs: Vec<(u8, f32, usize, usize)> = Vec::new();
        let mut line = 0;
        while line < lines {
            let dark = |i: usize| {
                let p = if horizontal {
                    img.pixels[line * w + i]
                } else {
                    img.pixels[i * w + line]
                };
                p < threshold
            };
            for (pattern, centre) in patterns_on_line(len, dark, mm) {
                // Continue a run at the same place on the previous scanline, or start one.
                match runs.iter_mut().find(|(p, c, _, last)| {
                    *p == pattern && (c - centre).abs() < 2.0 * mm && *last + step == line
                }) {
                    Some(run) => {
                        run.2 += 1;
                        run.3 = line;
                    }
                    None => runs.push((pattern, centre, 1, line)),
                }
            }
            line += step;
        }
        let long = runs
            .iter()
            .filter(|(_, _, n, _)| (*n * step) as f32 >= 20.0 * mm)
            .max_by_key(|(_, _, n, _)| *n);
        if let Some((pattern, ..)) = long {
            return Some(patch_name(*pattern).to_string());
        }
    }
    None
}

/// The patch read as bits (1 = wide bar, first bar first).
fn patch_name(pattern: u8) -> &'static str {
    match pattern {
        0b0101 | 0b1010 => "T",
        0b1100 => "1",
        0b1001 => "2",
        0b0110 => "4",
        0b0011 => "6",
        _ => "?",
    }
}

/// The patch patterns on one scanline of `len` pixels: (bits, centre in pixels).
fn patterns_on_line(len: usize, dark: impl Fn(usize) -> bool, mm: f32) -> Vec<(u8, f32)> {
    // Runs of equal colour: (dark, start, length).
    let mut runs: Vec<(bool, usize, usize)> = Vec::new();
    for i in 0..len {
        let d = dark(i);
        match runs.last_mut() {
            Some((c, _, n)) if *c == d => *n += 1,
            _ => runs.push((d, i, 1)),
        }
    }
    let narrow = 2.03 * mm;
    let wide = 5.08 * mm;
    let is_space = |n: usize| (0.5 * narrow..=1.6 * narrow).contains(&(n as f32));
    let bar = |n: usize| {
        let n = n as f32;
        if (0.5 * narrow..=1.5 * narrow).contains(&n) {
            Some(0)
        } else if (0.7 * wide..=1.35 * wide).contains(&n) {
            Some(1)
        } else {
            None
        }
    };
    let quiet = 3.0 * narrow;
    let mut found = Vec::new();
    for i in 1..runs.len().saturating_sub(7) {
        let (before, bars) = (runs[i - 1], &runs[i..i + 7]);
        let after = runs[i + 7];
        if before.0 || after.0 || (before.2 as f32) < quiet || (after.2 as f32) < quiet {
            continue;
        }
        let mut bits = 0u8;
        let mut ok = true;
        for (k, (is_dark, _, n)) in bars.iter().enumerate() {
            if k % 2 == 0 {
                match (is_dark, bar(*n)) {
                    (true, Some(b)) => bits = (bits << 1) | b,
                    _ => ok = false,
                }
            } else if *is_dark || !is_space(*n) {
                ok = false;
            }
        }
        // Two wide bars and two narrow ones.
        if ok && bits.count_ones() == 2 {
            let start = bars[0].1 as f32;
            let end = (bars[6].1 + bars[6].2) as f32;
            found.push((bits, (start + end) / 2.0));
        }
    }
    found
}

/// Reads the barcodes the stack's separator sheets use (Code 128, QR) with rxing.
pub fn read_barcodes(img: &Gray) -> Vec<Barcode> {
    use rxing::{BarcodeFormat, DecodeHints};
    let mut hints = DecodeHints {
        PossibleFormats: Some(
            [BarcodeFormat::CODE_128, BarcodeFormat::QR_CODE]
                .into_iter()
                .collect(),
        ),
        TryHarder: Some(true),
        ..Default::default()
    };
    match rxing::helpers::detect_in_luma_slice_with_hints(
        &img.pixels,
        img.width,
        img.height,
        None,
        &mut hints,
    ) {
        Ok(r) => vec![Barcode {
            format: format!("{:?}", r.getBarcodeFormat()),
            value: r.getText().to_string(),
        }],
        Err(_) => Vec::new(),
    }
}

/// Writes the PDF of the stack's `pages` (1-based, in order) to `out`: from a PDF the other
/// pages are removed, the page objects and their image streams are kept as scanned; from a
/// TIFF each page becomes a PDF page of its image (JPEG, at the TIFF's resolution). Returns
/// the page count written.
pub fn select_pages(
    path: &Path,
    media: MediaType,
    pages: &[u32],
    out: &Path,
    opts: &ExtractOptions,
) -> Result<u32, ExtractError> {
    if media == MediaType::Tiff {
        return tiff_pages_pdf(path, pages, out, opts);
    }
    let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
    let mut doc = lopdf::Document::load_mem(&bytes)
        .map_err(|e| ExtractError::BrokenPdf(format!("stack: {e}")))?;
    let count = doc.get_pages().len() as u32;
    if pages.is_empty() || pages.iter().any(|&p| p == 0 || p > count) {
        return Err(ExtractError::BrokenPdf(format!(
            "pages {pages:?} not in a stack of {count}"
        )));
    }
    let drop: Vec<u32> = (1..=count).filter(|p| !pages.contains(p)).collect();
    doc.delete_pages(&drop);
    doc.prune_objects();
    doc.renumber_objects();
    let mut file = std::fs::File::create(out).map_err(|e| ExtractError::Io(e.to_string()))?;
    doc.save_to(&mut file)
        .map_err(|e| ExtractError::Io(e.to_string()))?;
    Ok(pages.len() as u32)
}

/// The PDF of some pages of a TIFF stack: one page per image, DCT-encoded gray, its size from
/// the TIFF's resolution.
fn tiff_pages_pdf(
    path: &Path,
    pages: &[u32],
    out: &Path,
    opts: &ExtractOptions,
) -> Result<u32, ExtractError> {
    use lopdf::{Document, Object, Stream, dictionary};
    let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
    let count = super::image::tiff_page_count(&bytes, MAX_TIFF_PAGES);
    if pages.is_empty() || pages.iter().any(|&p| p == 0 || p > count) {
        return Err(ExtractError::BrokenImage(format!(
            "pages {pages:?} not in a stack of {count}"
        )));
    }
    let mut doc = Document::with_version("1.4");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for &n in pages {
        let img = super::image::tiff_nth_page(&bytes, n as usize - 1, opts.max_image_pixels)?
            .ok_or_else(|| ExtractError::BrokenImage(format!("page {n} missing")))?;
        let dpi = img.dpi.filter(|d| (70..=1200).contains(d)).unwrap_or(300) as f32;
        let (w, h) = (img.width, img.height);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode(&img.pixels, w, h, image::ExtendedColorType::L8)
            .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
        let image_id = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64,
                "Height" => h as i64, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                "Filter" => "DCTDecode",
            },
            jpeg,
        ));
        let (pw, ph) = (w as f32 * 72.0 / dpi, h as f32 * 72.0 / dpi);
        let content = format!("q {pw:.2} 0 0 {ph:.2} 0 0 cm /Im0 Do Q");
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(pw), Object::Real(ph)],
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image_id } },
            "Contents" => content_id,
        });
        kids.push(Object::Reference(page_id));
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Count" => kids.len() as i64, "Kids" => kids,
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut file = std::fs::File::create(out).map_err(|e| ExtractError::Io(e.to_string()))?;
    doc.save_to(&mut file)
        .map_err(|e| ExtractError::Io(e.to_string()))?;
    Ok(pages.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white A4 page at 150 dpi.
    fn page() -> Gray {
        let (width, height) = (1240, 1754);
        Gray {
            width,
            height,
            pixels: vec![250; (width * height) as usize],
            dpi: Some(150),
        }
    }

    fn fill(img: &mut Gray, x: u32, y: u32, w: u32, h: u32, v: u8) {
        for yy in y..(y + h).min(img.height) {
            for xx in x..(x + w).min(img.width) {
                img.pixels[(yy * img.width + xx) as usize] = v;
            }
        }
    }

    fn noise(img: &mut Gray, amount: i32, seed: u32) {
        let mut s = seed;
        for p in img.pixels.iter_mut() {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            let n = ((s >> 16) % (2 * amount as u32 + 1)) as i32 - amount;
            *p = (*p as i32 + n).clamp(0, 255) as u8;
        }
    }

    /// Dust: `n` black specks of one to two pixels.
    fn dust(img: &mut Gray, n: u32, seed: u32) {
        let mut s = seed;
        for _ in 0..n {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            let x = (s >> 8) % img.width;
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            let y = (s >> 8) % img.height;
            fill(img, x, y, 2, 2, 0);
        }
    }

    /// Lines of "text": dark dashes the size of words.
    fn text_lines(img: &mut Gray, lines: u32, v: u8) {
        for l in 0..lines {
            for word in 0..8 {
                fill(img, 180 + word * 110, 300 + l * 40, 80, 14, v);
            }
        }
    }

    #[test]
    fn some_pages_of_a_tiff_stack_become_a_pdf_of_their_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stapel.tif");
        {
            let mut f = std::fs::File::create(&path).expect("create");
            let mut enc = tiff::encoder::TiffEncoder::new(&mut f).expect("tiff");
            for v in [10u8, 120, 250] {
                let mut img = enc
                    .new_image::<tiff::encoder::colortype::Gray8>(300, 424)
                    .expect("page");
                img.resolution(
                    tiff::tags::ResolutionUnit::Inch,
                    tiff::encoder::Rational { n: 300, d: 1 },
                );
                img.write_data(&vec![v; 300 * 424]).expect("data");
            }
        }
        let opts = ExtractOptions {
            language: "deu".into(),
            tessdata: None,
            dpi: 300,
            min_text_chars: 20,
            max_pages: 5,
            max_image_pixels: 100_000_000,
            mail: Default::default(),
        };
        let out = dir.path().join("teil.pdf");
        assert_eq!(
            select_pages(&path, MediaType::Tiff, &[1, 3], &out, &opts).expect("pdf"),
            2
        );
        let doc = lopdf::Document::load(&out).expect("a pdf");
        let pages = doc.get_pages();
        assert_eq!(pages.len(), 2);
        // 300 pixels at 300 dpi: 72 points (one inch) wide.
        let first = doc.get_object(pages[&1]).expect("page 1");
        let media_box = first
            .as_dict()
            .and_then(|d| d.get(b"MediaBox"))
            .and_then(|b| b.as_array())
            .expect("media box");
        assert_eq!(media_box[2].as_float().expect("width"), 72.0);
        // The third page's image (white) is page 2 of the part: it decodes light.
        let (img, dpi) =
            crate::extract::pdf::stored_page_image(&doc, 2, 100_000_000).expect("the stored image");
        assert!((299..=301).contains(&dpi), "{dpi}");
        assert!(img.pixels.iter().all(|&p| p > 200));
        assert!(select_pages(&path, MediaType::Tiff, &[4], &out, &opts).is_err());
    }

    #[test]
    fn a_noisy_dusty_back_side_with_bleed_through_has_no_ink() {
        let mut img = page();
        // Bleed-through: the front side's text shows as light gray.
        text_lines(&mut img, 30, 205);
        noise(&mut img, 25, 7);
        dust(&mut img, 300, 11);
        let (ink, specks) = ink_share(&img, 150);
        assert!(ink < NO_OCR_INK, "ink {ink}");
        assert!(specks > 100, "the dust is seen and removed: {specks}");
    }

    #[test]
    fn a_page_with_one_line_of_text_has_ink() {
        let mut img = page();
        text_lines(&mut img, 1, 20);
        noise(&mut img, 25, 3);
        let (ink, _) = ink_share(&img, 150);
        assert!(ink > NO_OCR_INK, "ink {ink}");
        let mut full = page();
        text_lines(&mut full, 30, 20);
        assert!(ink_share(&full, 150).0 > 10.0 * ink);
    }

    /// A patch code drawn with its bars vertical (`bits`: 1 = wide, first bar on the left).
    fn patch(img: &mut Gray, bits: [u8; 4], dpi: u32) {
        let mm = dpi as f32 / 25.4;
        let (narrow, wide) = ((2.03 * mm) as u32, (5.08 * mm) as u32);
        let mut x = (60.0 * mm) as u32;
        for b in bits {
            let bw = if b == 1 { wide } else { narrow };
            fill(img, x, (80.0 * mm) as u32, bw, (63.0 * mm) as u32, 10);
            x += bw + narrow;
        }
    }

    #[test]
    fn patch_t_is_found_and_other_patches_are_named() {
        let mut img = page();
        patch(&mut img, [0, 1, 0, 1], 150);
        noise(&mut img, 20, 5);
        assert_eq!(patch_code(&img, 150).as_deref(), Some("T"));
        let mut two = page();
        patch(&mut two, [1, 0, 0, 1], 150);
        assert_eq!(patch_code(&two, 150).as_deref(), Some("2"));
    }

    #[test]
    fn text_and_short_bars_are_no_patch_code() {
        let mut img = page();
        text_lines(&mut img, 40, 10);
        assert_eq!(patch_code(&img, 150), None);
        // The right bars, but only 10 mm long: a table's edge, not a patch sheet.
        let mut short = page();
        let mm = 150.0 / 25.4;
        let (narrow, wide) = ((2.03 * mm) as u32, (5.08 * mm) as u32);
        let mut x = 300;
        for b in [0, 1, 0, 1] {
            let bw = if b == 1 { wide } else { narrow };
            fill(&mut short, x, 400, bw, (10.0 * mm) as u32, 10);
            x += bw + narrow;
        }
        assert_eq!(patch_code(&short, 150), None);
    }
}
