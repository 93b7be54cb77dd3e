//! Scan parameters for the capture record (Erfassungsprotokoll): the resolution, colour mode and
//! page count a scan was made with, read from the file itself (the PDF's page images and
//! MediaBoxes, an image's header), not from the settings the pages were later read at. Runs in
//! the sandboxed worker like every parser; nothing here decodes pixels.

use super::{ExtractError, ExtractOptions, MediaType};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;

/// How a scan stores colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColourMode {
    /// One bit per pixel (black and white).
    Bitonal,
    /// Shades of gray.
    Gray,
    /// Colour (RGB, CMYK, a palette).
    Colour,
}

impl ColourMode {
    /// The mode as people read it (German).
    pub fn german(self) -> &'static str {
        match self {
            ColourMode::Bitonal => "Schwarzweiß",
            ColourMode::Gray => "Graustufen",
            ColourMode::Colour => "Farbe",
        }
    }

    /// The stored name (`bitonal`, `gray`, `colour`).
    pub fn as_str(self) -> &'static str {
        match self {
            ColourMode::Bitonal => "bitonal",
            ColourMode::Gray => "gray",
            ColourMode::Colour => "colour",
        }
    }
}

/// What the file says about how it was scanned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanParameters {
    /// The lowest resolution of its pages' images, in dpi (the weakest page counts); `None`
    /// when the file does not say (an image without a density, a PDF page without an image).
    pub dpi: Option<u32>,
    /// The richest colour mode of its pages' images; `None` when unknown.
    pub colour: Option<ColourMode>,
    /// Pages the file has.
    pub pages: u32,
}

/// Reads the scan parameters of the file at `path` (at most `opts.max_pages` pages looked at).
pub fn read(
    path: &Path,
    media: MediaType,
    opts: &ExtractOptions,
) -> Result<ScanParameters, ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    let bytes = std::fs::read(path).map_err(io)?;
    Ok(match media {
        MediaType::Pdf => pdf(&bytes, opts.max_pages)?,
        MediaType::Png => png(&bytes),
        MediaType::Jpeg => jpeg(&bytes),
        MediaType::Tiff => tiff(&bytes, opts.max_pages),
        _ => ScanParameters::default(),
    })
}

fn pdf(bytes: &[u8], max_pages: u32) -> Result<ScanParameters, ExtractError> {
    let doc =
        lopdf::Document::load_mem(bytes).map_err(|e| ExtractError::BrokenPdf(e.to_string()))?;
    let pages = doc.get_pages();
    let mut out = ScanParameters {
        pages: pages.len() as u32,
        ..Default::default()
    };
    for (_, id) in pages.into_iter().take(max_pages as usize) {
        let Some((dpi, colour)) = page_image(&doc, id) else {
            continue;
        };
        if let Some(d) = dpi {
            out.dpi = Some(out.dpi.map_or(d, |o| o.min(d)));
        }
        if let Some(c) = colour {
            out.colour = Some(out.colour.map_or(c, |o| o.max(c)));
        }
    }
    Ok(out)
}

/// The resolution and colour mode of the largest image drawn on a page (a scanner's page is
/// one image covering it).
fn page_image(
    doc: &lopdf::Document,
    page: lopdf::ObjectId,
) -> Option<(Option<u32>, Option<ColourMode>)> {
    use super::pdf::{inherited, number};
    let media: Vec<f32> = inherited(doc, page, b"MediaBox")?
        .as_array()
        .ok()?
        .iter()
        .filter_map(number)
        .collect();
    let [x0, y0, x1, y1] = media[..] else {
        return None;
    };
    let (pw, ph) = ((x1 - x0).abs(), (y1 - y0).abs());
    let resources = inherited(doc, page, b"Resources")?;
    let xobjects = resources.as_dict().ok()?.get(b"XObject").ok()?;
    let (_, xobjects) = doc.dereference(xobjects).ok()?;
    let mut best: Option<(u64, u32, u32, &lopdf::Dictionary)> = None;
    for (_, o) in xobjects.as_dict().ok()?.iter() {
        let Ok((_, o)) = doc.dereference(o) else {
            continue;
        };
        let Ok(stream) = o.as_stream() else { continue };
        let d = &stream.dict;
        if d.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) != Some(b"Image") {
            continue;
        }
        let dim = |k: &[u8]| {
            d.get(k)
                .ok()
                .and_then(|v| v.as_i64().ok())
                .and_then(|v| u32::try_from(v).ok())
        };
        let (Some(w), Some(h)) = (dim(b"Width"), dim(b"Height")) else {
            continue;
        };
        let px = u64::from(w) * u64::from(h);
        if best.as_ref().is_none_or(|b| px > b.0) {
            best = Some((px, w, h, d));
        }
    }
    let (_, w, h, d) = best?;
    // Rotated scans: the longer side of the image against the longer side of the page.
    let long_page = pw.max(ph);
    let dpi = (long_page > 0.0).then(|| (w.max(h) as f32 * 72.0 / long_page).round() as u32);
    Some((dpi.filter(|d| *d > 0), pdf_colour(doc, d)))
}

fn pdf_colour(doc: &lopdf::Document, d: &lopdf::Dictionary) -> Option<ColourMode> {
    use lopdf::Object;
    let bits = d
        .get(b"BitsPerComponent")
        .ok()
        .and_then(|b| b.as_i64().ok());
    let filters: Vec<Vec<u8>> = match d.get(b"Filter").ok() {
        Some(Object::Name(n)) => vec![n.clone()],
        Some(Object::Array(a)) => a
            .iter()
            .filter_map(|o| o.as_name().ok().map(<[u8]>::to_vec))
            .collect(),
        _ => Vec::new(),
    };
    let bitonal_filter = filters
        .iter()
        .any(|f| f == b"CCITTFaxDecode" || f == b"JBIG2Decode");
    if d.has(b"ImageMask") || bits == Some(1) || bitonal_filter {
        return Some(ColourMode::Bitonal);
    }
    space_colour(doc, d.get(b"ColorSpace").ok()?, 0)
}

fn space_colour(doc: &lopdf::Document, space: &lopdf::Object, depth: u8) -> Option<ColourMode> {
    use lopdf::Object;
    if depth > 4 {
        return None;
    }
    let (_, space) = doc.dereference(space).ok()?;
    match space {
        Object::Name(n) => match n.as_slice() {
            b"DeviceGray" | b"CalGray" | b"G" => Some(ColourMode::Gray),
            b"DeviceRGB" | b"CalRGB" | b"DeviceCMYK" | b"Lab" | b"RGB" | b"CMYK" => {
                Some(ColourMode::Colour)
            }
            _ => None,
        },
        Object::Array(a) => match a.first().and_then(|o| o.as_name().ok())? {
            b"ICCBased" => {
                let (_, profile) = doc.dereference(a.get(1)?).ok()?;
                match profile
                    .as_stream()
                    .ok()?
                    .dict
                    .get(b"N")
                    .ok()?
                    .as_i64()
                    .ok()?
                {
                    1 => Some(ColourMode::Gray),
                    _ => Some(ColourMode::Colour),
                }
            }
            b"Indexed" | b"I" => space_colour(doc, a.get(1)?, depth + 1),
            b"CalGray" => Some(ColourMode::Gray),
            b"CalRGB" | b"Lab" => Some(ColourMode::Colour),
            _ => None,
        },
        _ => None,
    }
}

/// PNG: IHDR's bit depth and colour type, pHYs's density (pixels per metre).
fn png(bytes: &[u8]) -> ScanParameters {
    let mut out = ScanParameters {
        pages: 1,
        ..Default::default()
    };
    let mut i = 8;
    while i + 12 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let kind = &bytes[i + 4..i + 8];
        let Some(data) = bytes.get(i + 8..(i + 8).saturating_add(len)) else {
            break;
        };
        match kind {
            b"IHDR" if data.len() >= 10 => {
                out.colour = Some(match (data[9], data[8]) {
                    (0, 1) => ColourMode::Bitonal,
                    (0 | 4, _) => ColourMode::Gray,
                    _ => ColourMode::Colour,
                });
            }
            b"pHYs" if data.len() >= 9 && data[8] == 1 => {
                let ppm = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                out.dpi = Some((f64::from(ppm) * 0.0254).round() as u32).filter(|d| *d > 0);
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        i = i.saturating_add(12 + len);
    }
    out
}

/// JPEG: the frame's components, the JFIF density.
fn jpeg(bytes: &[u8]) -> ScanParameters {
    ScanParameters {
        pages: 1,
        dpi: super::searchable::jpeg_dpi(bytes).map(|d| d.round() as u32),
        colour: super::searchable::jpeg_frame(bytes).map(|(_, components, _, _)| {
            if components == 1 {
                ColourMode::Gray
            } else {
                ColourMode::Colour
            }
        }),
    }
}

/// TIFF: every directory's colour type and resolution (pages counted up to `max_pages`).
fn tiff(bytes: &[u8], max_pages: u32) -> ScanParameters {
    use tiff::ColorType;
    use tiff::tags::Tag;
    let mut out = ScanParameters {
        pages: super::image::tiff_page_count(bytes, max_pages.max(1)),
        ..Default::default()
    };
    let Ok(mut dec) = tiff::decoder::Decoder::new(Cursor::new(bytes)) else {
        return out;
    };
    for n in 0..max_pages.max(1) {
        if n > 0 && (!dec.more_images() || dec.next_image().is_err()) {
            break;
        }
        let colour = match dec.colortype() {
            Ok(ColorType::Gray(1)) => Some(ColourMode::Bitonal),
            Ok(ColorType::Gray(_) | ColorType::GrayA(_)) => Some(ColourMode::Gray),
            Ok(_) => Some(ColourMode::Colour),
            Err(_) => None,
        };
        if let Some(c) = colour {
            out.colour = Some(out.colour.map_or(c, |o| o.max(c)));
        }
        let per_cm = dec
            .get_tag_u32(Tag::ResolutionUnit)
            .map(|u| u == 3)
            .unwrap_or(false);
        let dpi = dec
            .get_tag(Tag::XResolution)
            .ok()
            .and_then(|v| v.into_f64().ok())
            .map(|d| if per_cm { d * 2.54 } else { d })
            .map(|d| d.round() as u32)
            .filter(|d| *d > 0);
        if let Some(d) = dpi {
            out.dpi = Some(out.dpi.map_or(d, |o| o.min(d)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::dictionary;

    fn png_bytes(colour: image::ColorType, dpi: Option<u32>) -> Vec<u8> {
        let mut buf = Vec::new();
        let img = image::DynamicImage::new(40, 30, colour);
        img.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
            .expect("png");
        if let Some(dpi) = dpi {
            // A pHYs chunk right after IHDR (8 + 25 bytes).
            let ppm = (f64::from(dpi) / 0.0254).round() as u32;
            let mut data = Vec::new();
            data.extend(ppm.to_be_bytes());
            data.extend(ppm.to_be_bytes());
            data.push(1);
            let mut chunk = Vec::new();
            chunk.extend((data.len() as u32).to_be_bytes());
            chunk.extend(b"pHYs");
            chunk.extend(&data);
            chunk.extend(0u32.to_be_bytes()); // CRC is not checked here
            buf.splice(33..33, chunk);
        }
        buf
    }

    #[test]
    fn png_header_and_density_give_mode_and_resolution() {
        let p = png(&png_bytes(image::ColorType::L8, Some(300)));
        assert_eq!(p.dpi, Some(300));
        assert_eq!(p.colour, Some(ColourMode::Gray));
        assert_eq!(p.pages, 1);
        let p = png(&png_bytes(image::ColorType::Rgb8, None));
        assert_eq!(p.dpi, None);
        assert_eq!(p.colour, Some(ColourMode::Colour));
    }

    #[test]
    fn a_scanned_pdf_page_gives_its_image_resolution() {
        // An A4 page (595 x 842 pt) with one 1240 x 1754 gray image: 150 dpi.
        let mut doc = lopdf::Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let img = lopdf::Stream::new(
            lopdf::dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => 1240, "Height" => 1754,
                "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
            },
            vec![0u8; 16],
        );
        let img_id = doc.add_object(img);
        let content = doc.add_object(lopdf::Stream::new(
            lopdf::dictionary! {},
            b"q 595 0 0 842 0 0 cm /Im0 Do Q".to_vec(),
        ));
        let page = doc.add_object(lopdf::dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Resources" => lopdf::dictionary! { "XObject" => lopdf::dictionary! { "Im0" => img_id } },
        });
        doc.objects.insert(
            pages_id,
            lopdf::Object::Dictionary(lopdf::dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            }),
        );
        let catalog =
            doc.add_object(lopdf::dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("save");
        let p = pdf(&bytes, 10).expect("read");
        assert_eq!(p.pages, 1);
        assert_eq!(p.dpi, Some(150));
        assert_eq!(p.colour, Some(ColourMode::Gray));
        assert!(pdf(b"%PDF-1.4 broken", 10).is_err());
    }
}
