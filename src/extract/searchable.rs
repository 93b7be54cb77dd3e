//! Searchable PDFs of scans, made from the recognition that routing already did: every page
//! keeps its image, and an invisible text layer is laid over it from the OCR word boxes (text
//! render mode 3, one glyphless font), so a DMS can index and search the full text and a person
//! can select it where it stands. No page is recognised a second time.
//!
//! - A scanned PDF keeps its own bytes: its page image streams are not decoded or re-encoded;
//!   each page gets one more content stream (the text layer). The delivered PDF is the scan
//!   plus its text.
//! - A JPEG is embedded as it is (its DCT stream); PNG and TIFF pages are embedded losslessly
//!   (Flate; one bit per pixel for black-and-white pages).
//! - The result is PDF/A-2b ([`super::pdfa`]) where the input allows it (always for images; for
//!   PDFs unless they carry what PDF/A forbids, such as encryption, JavaScript or CMYK images).
//!
//! The font is Tesseract's glyphless font (`pdf.ttf` in its data directory): one empty glyph,
//! 500/1000 em wide, for every character; the text is written as UTF-16 code units through an
//! identity CMap, and each word is stretched (`Tz`) to the width of its box.
//!
//! Runs inside the sandboxed worker, under the limits of extraction.

use super::image::{Gray, tiff_pages};
use super::pdf::{inherited, number};
use super::{ExtractError, ExtractOptions, MediaType, Page, Word};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, dictionary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The name of the text layer's font in page resources (unlikely to clash with a scanner's).
const FONT_NAME: &str = "PoststelleOcrText";

/// What was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Made {
    /// Pages in the PDF.
    pub pages: u32,
    /// Pages that carry a text layer.
    pub text_pages: u32,
    /// Whether the PDF is PDF/A-2b.
    pub pdfa: bool,
    /// Why it is not, when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pdfa_obstacles: Vec<String>,
}

/// Makes the searchable PDF of the scan at `path` from its recognised `pages` (page numbers
/// 1-based; pages missing from the list get no text layer) and writes it to `out`.
pub fn make(
    path: &Path,
    media: MediaType,
    opts: &ExtractOptions,
    pages: &[Page],
    out: &Path,
) -> Result<Made, ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    let bytes = std::fs::read(path).map_err(io)?;
    let by_number: BTreeMap<u32, &Page> = pages.iter().map(|p| (p.number, p)).collect();
    let font_program = glyphless_font(opts)?;
    let (mut doc, made_pages, text_pages) = match media {
        MediaType::Pdf => onto_pdf(&bytes, &by_number, &font_program)?,
        MediaType::Png | MediaType::Jpeg | MediaType::Tiff => {
            from_images(&bytes, media, opts, &by_number, &font_program)?
        }
        MediaType::Text | MediaType::Xml | MediaType::Eml => {
            return Err(ExtractError::Io(format!(
                "no searchable PDF for {}",
                media.mime()
            )));
        }
    };
    let obstacles = super::pdfa::obstacles(&doc);
    let pdfa = obstacles.is_empty()
        && super::pdfa::apply(&mut doc, None, chrono::Utc::now())
            .map_err(|e| ExtractError::Io(format!("PDF/A: {e}")))
            .is_ok();
    let mut buf = Vec::new();
    doc.save_to(&mut buf)
        .map_err(|e| ExtractError::BrokenPdf(format!("cannot write the PDF: {e}")))?;
    std::fs::write(out, buf).map_err(io)?;
    Ok(Made {
        pages: made_pages,
        text_pages,
        pdfa,
        pdfa_obstacles: obstacles,
    })
}

/// Tesseract's glyphless font, from the configured data directory or the usual places.
fn glyphless_font(opts: &ExtractOptions) -> Result<Vec<u8>, ExtractError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    dirs.extend(opts.tessdata.clone());
    if let Some(p) = std::env::var_os("TESSDATA_PREFIX") {
        let p = PathBuf::from(p);
        dirs.push(p.join("tessdata"));
        dirs.push(p);
    }
    for d in [
        "/usr/share/tesseract-ocr/5/tessdata",
        "/usr/share/tesseract-ocr/4.00/tessdata",
        "/usr/share/tessdata",
        "/usr/local/share/tessdata",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.iter()
        .find_map(|d| std::fs::read(d.join("pdf.ttf")).ok())
        .filter(|b| b.len() > 12)
        .ok_or_else(|| {
            ExtractError::Ocr(
                "Tesseract's glyphless font pdf.ttf was not found in the tessdata directory".into(),
            )
        })
}

/// The text layer's font objects; returns the Type0 font.
fn add_font(doc: &mut Document, program: &[u8]) -> ObjectId {
    let mut file = Stream::new(
        dictionary! { "Length1" => program.len() as i64 },
        program.to_vec(),
    );
    let _ = file.compress();
    let file = doc.add_object(file);
    let descriptor = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => Object::Name(b"GlyphLessFont".to_vec()),
        "Flags" => 5,
        "FontBBox" => vec![0.into(), 0.into(), 500.into(), 1000.into()],
        "ItalicAngle" => 0,
        "Ascent" => 1000,
        "Descent" => 0,
        "CapHeight" => 1000,
        "StemV" => 80,
        "FontFile2" => file,
    });
    // Every CID (a UTF-16 code unit) shows glyph 1, the empty one.
    let map: Vec<u8> = std::iter::repeat_n([0u8, 1u8], 65536).flatten().collect();
    let mut map = Stream::new(Dictionary::new(), map);
    let _ = map.compress();
    let map = doc.add_object(map);
    let cid_font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => Object::Name(b"GlyphLessFont".to_vec()),
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "FontDescriptor" => descriptor,
        "DW" => 500,
        "CIDToGIDMap" => map,
    });
    let cmap = b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n\
1 beginbfrange\n<0000> <FFFF> <0000>\nendbfrange\n\
endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n";
    let mut cmap = Stream::new(Dictionary::new(), cmap.to_vec());
    let _ = cmap.compress();
    let to_unicode = doc.add_object(cmap);
    doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => Object::Name(b"GlyphLessFont".to_vec()),
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font.into()],
        "ToUnicode" => to_unicode,
    })
}

/// The invisible text of one page, in a space `height` points high with the origin at the
/// bottom left; `sx` and `sy` turn OCR units (pixels) into points across and down.
pub fn text_layer(words: &[Word], sx: f32, sy: f32, height: f32) -> Vec<u8> {
    let mut s = String::from("BT\n3 Tr\n");
    // Words of one line share a font size (the line's tallest box) and a baseline.
    let mut lines: BTreeMap<u32, Vec<&Word>> = BTreeMap::new();
    for w in words {
        lines.entry(w.line).or_default().push(w);
    }
    for line in lines.values_mut() {
        line.sort_by(|a, b| a.x.total_cmp(&b.x));
        let tallest = line.iter().map(|w| w.h).fold(0.0f32, f32::max);
        let bottom = line.iter().map(|w| w.y + w.h).fold(0.0f32, f32::max);
        let size = (tallest * sy).max(1.0);
        let baseline = height - bottom * sy + 0.15 * size;
        for (i, w) in line.iter().enumerate() {
            let next = line.get(i + 1);
            let mut text = w.text.clone();
            // A space between words, so extracted text keeps them apart; it reaches to the
            // next word.
            let right = match next {
                Some(n) => {
                    text.push(' ');
                    n.x
                }
                None => w.x + w.w,
            };
            let units: Vec<u16> = text
                .chars()
                .filter(|c| (*c as u32) < 0x10000 && !c.is_control())
                .map(|c| c as u32 as u16)
                .collect();
            if units.is_empty() {
                continue;
            }
            let width = ((right - w.x) * sx).max(0.1);
            let natural = units.len() as f32 * size * 0.5;
            let stretch = 100.0 * width / natural;
            let _ = write!(
                s,
                "/{FONT_NAME} {size:.2} Tf {stretch:.2} Tz 1 0 0 1 {:.2} {baseline:.2} Tm <",
                w.x * sx
            );
            for u in units {
                let _ = write!(s, "{u:04X}");
            }
            s.push_str("> Tj\n");
        }
    }
    s.push_str("ET\n");
    s.into_bytes()
}

/// Adds the text layers to a scanned PDF's own pages.
fn onto_pdf(
    bytes: &[u8],
    pages: &BTreeMap<u32, &Page>,
    program: &[u8],
) -> Result<(Document, u32, u32), ExtractError> {
    let mut doc = Document::load_mem(bytes).map_err(|e| ExtractError::BrokenPdf(e.to_string()))?;
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted(
            "a protected PDF gets no text layer".into(),
        ));
    }
    let font = add_font(&mut doc, program);
    let page_ids = doc.get_pages();
    let mut text_pages = 0;
    for (number, id) in &page_ids {
        let Some(page) = pages.get(number) else {
            continue;
        };
        if page.width <= 0.0 || page.words.is_empty() {
            continue;
        }
        add_layer_to_page(&mut doc, *id, page, font)?;
        text_pages += 1;
    }
    Ok((doc, page_ids.len() as u32, text_pages))
}

fn add_layer_to_page(
    doc: &mut Document,
    id: ObjectId,
    page: &Page,
    font: ObjectId,
) -> Result<(), ExtractError> {
    let bad = |what: &str| ExtractError::BrokenPdf(format!("page without a usable {what}"));
    let media = inherited(doc, id, b"MediaBox").ok_or_else(|| bad("MediaBox"))?;
    let b: Vec<f32> = media
        .as_array()
        .map_err(|_| bad("MediaBox"))?
        .iter()
        .filter_map(|o| doc.dereference(o).ok().and_then(|(_, o)| number(o)))
        .collect();
    let [a, c, d, e] = b[..] else {
        return Err(bad("MediaBox"));
    };
    let (x0, y0, x1, y1) = (a.min(d), c.min(e), a.max(d), c.max(e));
    let rotate = inherited(doc, id, b"Rotate")
        .as_ref()
        .and_then(number)
        .map(|r| (r as i64).rem_euclid(360))
        .unwrap_or(0);
    let (w, h) = (x1 - x0, y1 - y0);
    // pdftoppm draws the MediaBox as displayed (rotated): OCR units map onto that.
    let (shown_w, shown_h) = if rotate == 90 || rotate == 270 {
        (h, w)
    } else {
        (w, h)
    };
    if shown_w <= 0.0 || shown_h <= 0.0 {
        return Err(bad("MediaBox"));
    }
    let (sx, sy) = (shown_w / page.width, shown_h / page.height.max(1.0));
    // From the displayed page (origin bottom left, in points) to the page's user space.
    let cm = match rotate {
        90 => format!("0 1 -1 0 {x1:.2} {y0:.2}"),
        180 => format!("-1 0 0 -1 {x1:.2} {y1:.2}"),
        270 => format!("0 -1 1 0 {x0:.2} {y1:.2}"),
        _ => format!("1 0 0 1 {x0:.2} {y0:.2}"),
    };
    let mut content = format!("Q\nq\n{cm} cm\n").into_bytes();
    content.extend(text_layer(&page.words, sx, sy, shown_h));
    content.extend(b"Q\n");
    let mut layer = Stream::new(Dictionary::new(), content);
    let _ = layer.compress();
    let layer = doc.add_object(layer);
    // The page's own drawing runs inside q … Q, so whatever state it leaves does not move the
    // text layer.
    let open = doc.add_object(Stream::new(Dictionary::new(), b"q\n".to_vec()));
    let mut contents = vec![Object::Reference(open)];
    let existing = doc
        .get_dictionary(id)
        .ok()
        .and_then(|d| d.get(b"Contents").ok().cloned());
    match existing {
        Some(Object::Reference(r)) => match doc.get_object(r) {
            Ok(Object::Array(a)) => contents.extend(a.iter().cloned()),
            _ => contents.push(Object::Reference(r)),
        },
        Some(Object::Array(a)) => contents.extend(a),
        _ => {}
    }
    contents.push(Object::Reference(layer));
    // Resources: this page's own copy, with the font added.
    let mut resources = match inherited(doc, id, b"Resources") {
        Some(Object::Dictionary(d)) => d,
        _ => Dictionary::new(),
    };
    let mut fonts = match resources.get(b"Font").ok().map(|o| doc.dereference(o)) {
        Some(Ok((_, Object::Dictionary(f)))) => f.clone(),
        _ => Dictionary::new(),
    };
    fonts.set(FONT_NAME, font);
    resources.set("Font", fonts);
    let dict = doc
        .get_dictionary_mut(id)
        .map_err(|e| ExtractError::BrokenPdf(e.to_string()))?;
    dict.set("Contents", contents);
    dict.set("Resources", resources);
    Ok(())
}

/// One page image as a PDF image XObject.
struct PageImage {
    stream: Stream,
    width: u32,
    height: u32,
    dpi: f32,
}

/// Builds a PDF from PNG, JPEG or TIFF pages.
fn from_images(
    bytes: &[u8],
    media: MediaType,
    opts: &ExtractOptions,
    pages: &BTreeMap<u32, &Page>,
    program: &[u8],
) -> Result<(Document, u32, u32), ExtractError> {
    let images: Vec<PageImage> = match media {
        MediaType::Jpeg => vec![jpeg_image(bytes, opts.max_image_pixels)?],
        MediaType::Png => {
            let g = super::image::decode_single(bytes, opts.max_image_pixels)?;
            vec![gray_image(g, 300.0)]
        }
        _ => {
            let mut out = Vec::new();
            for (i, page) in tiff_pages(bytes, opts.max_image_pixels)?.enumerate() {
                match page {
                    Ok(g) => {
                        let dpi = g.dpi.filter(|d| (70..=1200).contains(d)).unwrap_or(300);
                        out.push(gray_image(g, dpi as f32));
                    }
                    Err(e) if i == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            out
        }
    };
    let mut doc = Document::with_version("1.7");
    let font = add_font(&mut doc, program);
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    let mut text_pages = 0;
    for (i, img) in images.into_iter().enumerate() {
        let number = i as u32 + 1;
        let ocr = pages.get(&number).filter(|p| p.width > 0.0);
        // The resolution OCR read the page at, else the file's.
        let dpi = ocr
            .map(|p| p.units_per_mm * 25.4)
            .filter(|d| *d >= 10.0)
            .unwrap_or(img.dpi);
        let (w, h) = (
            img.width as f32 * 72.0 / dpi,
            img.height as f32 * 72.0 / dpi,
        );
        let image = doc.add_object(img.stream);
        let mut content = format!("q\n{w:.3} 0 0 {h:.3} 0 0 cm\n/Im0 Do\nQ\n").into_bytes();
        if let Some(p) = ocr.filter(|p| !p.words.is_empty()) {
            content.extend(text_layer(&p.words, w / p.width, h / p.height.max(1.0), h));
            text_pages += 1;
        }
        let mut content = Stream::new(Dictionary::new(), content);
        let _ = content.compress();
        let content = doc.add_object(content);
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(w), Object::Real(h)],
            "Resources" => dictionary! {
                "XObject" => dictionary! { "Im0" => image },
                "Font" => dictionary! { FONT_NAME => font },
            },
            "Contents" => content,
        });
        kids.push(Object::Reference(page));
    }
    let count = kids.len() as u32;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count as i64,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    Ok((doc, count, text_pages))
}

/// A JPEG embedded as it is, when it is 8-bit gray or RGB; else decoded and embedded as gray.
/// The JPEG is not decoded when it is passed through: routing's OCR decoded it already.
fn jpeg_image(bytes: &[u8], max_pixels: u64) -> Result<PageImage, ExtractError> {
    match jpeg_frame(bytes) {
        Some((8, components @ (1 | 3), w, h))
            if w > 0 && h > 0 && u64::from(w) * u64::from(h) <= max_pixels =>
        {
            let space = if components == 1 {
                "DeviceGray"
            } else {
                "DeviceRGB"
            };
            let stream = Stream::new(
                dictionary! {
                    "Type" => "XObject",
                    "Subtype" => "Image",
                    "Width" => w as i64,
                    "Height" => h as i64,
                    "ColorSpace" => space,
                    "BitsPerComponent" => 8,
                    "Filter" => "DCTDecode",
                },
                bytes.to_vec(),
            );
            Ok(PageImage {
                stream,
                width: w,
                height: h,
                dpi: jpeg_dpi(bytes).unwrap_or(300.0),
            })
        }
        _ => Ok(gray_image(
            super::image::decode_single(bytes, max_pixels)?,
            300.0,
        )),
    }
}

/// Precision, components, width and height from a JPEG's start-of-frame marker.
pub(crate) fn jpeg_frame(bytes: &[u8]) -> Option<(u8, u8, u32, u32)> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let s = bytes.get(i + 4..i + 10)?;
            let h = u16::from_be_bytes([s[1], s[2]]) as u32;
            let w = u16::from_be_bytes([s[3], s[4]]) as u32;
            return Some((s[0], s[5], w, h));
        }
        if marker == 0xDA {
            return None;
        }
        i += 2 + len;
    }
    None
}

/// The resolution a JFIF header states, if any.
pub(crate) fn jpeg_dpi(bytes: &[u8]) -> Option<f32> {
    let app0 = bytes.get(2..20)?;
    if app0[0] != 0xFF || app0[1] != 0xE0 || &app0[4..9] != b"JFIF\0" {
        return None;
    }
    let units = app0[11];
    let x = u16::from_be_bytes([app0[12], app0[13]]) as f32;
    let dpi = match units {
        1 => x,
        2 => x * 2.54,
        _ => return None,
    };
    (70.0..=1200.0).contains(&dpi).then_some(dpi)
}

/// A grayscale page, Flate-compressed; one bit per pixel when it is black and white only.
fn gray_image(g: Gray, dpi: f32) -> PageImage {
    let bilevel = g.pixels.iter().all(|p| *p == 0 || *p == 255);
    let (data, bits) = if bilevel {
        let stride = (g.width as usize).div_ceil(8);
        let mut packed = vec![0u8; stride * g.height as usize];
        for (y, row) in g.pixels.chunks(g.width.max(1) as usize).enumerate() {
            for (x, p) in row.iter().enumerate() {
                if *p == 255 {
                    packed[y * stride + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        (packed, 1)
    } else {
        (g.pixels, 8)
    };
    let mut stream = Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Image",
            "Width" => g.width as i64,
            "Height" => g.height as i64,
            "ColorSpace" => "DeviceGray",
            "BitsPerComponent" => bits,
        },
        data,
    );
    let _ = stream.compress();
    PageImage {
        stream,
        width: g.width,
        height: g.height,
        dpi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, x: f32, y: f32, w: f32, line: u32) -> Word {
        Word {
            text: text.into(),
            x,
            y,
            w,
            h: 40.0,
            conf: 90.0,
            line,
        }
    }

    #[test]
    fn the_text_layer_is_invisible_stretched_and_keeps_word_order() {
        let words = [
            word("Musterstadt", 400.0, 100.0, 300.0, 1),
            word("Stadt", 100.0, 100.0, 200.0, 1),
            word("Größe", 100.0, 200.0, 150.0, 2),
        ];
        let layer = String::from_utf8(text_layer(&words, 0.24, 0.24, 842.0)).expect("ascii");
        assert!(layer.starts_with("BT\n3 Tr\n"), "{layer}");
        // "Stadt " comes first (sorted by x) and carries the space; "ß" and "ö" are UTF-16.
        let stadt = layer.find("<005300740061006400740020>");
        let muster = layer.find("<004D");
        assert!(
            stadt.is_some() && muster.is_some() && stadt < muster,
            "{layer}"
        );
        assert!(layer.contains("00F600DF"), "{layer}");
        // "Stadt " spans from x=100 to the next word at 400: 300 px * 0.24 = 72 pt for 6
        // characters at size 40 * 0.24 = 9.6 pt (natural width 6 * 4.8 = 28.8 pt): Tz 250.
        assert!(
            layer.contains("/PoststelleOcrText 9.60 Tf 250.00 Tz"),
            "{layer}"
        );
    }

    #[test]
    fn jpeg_frame_and_resolution_are_read_from_the_markers() {
        let img = image::GrayImage::from_pixel(40, 30, image::Luma([200]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .expect("jpeg");
        let bytes = jpeg.into_inner();
        assert_eq!(jpeg_frame(&bytes), Some((8, 1, 40, 30)));
        assert_eq!(jpeg_frame(b"\xFF\xD8\xFF\xDA\x00\x02"), None);
    }
}
