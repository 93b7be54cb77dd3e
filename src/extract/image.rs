//! Images: size checked from the header before anything is decoded (image bombs), then decoded
//! to 8-bit grayscale and OCR'd. TIFF files may have several pages.

use super::{ExtractError, ExtractOptions, Extraction, MediaType, Method, count_alnum};
use std::io::Cursor;

/// A decoded 8-bit grayscale image.
#[derive(Debug, Clone)]
pub struct Gray {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major pixels, one byte each.
    pub pixels: Vec<u8>,
    /// Resolution from the file, if it says.
    pub dpi: Option<u32>,
}

fn check_size(w: u64, h: u64, max_pixels: u64) -> Result<(), ExtractError> {
    if w == 0 || h == 0 {
        return Err(ExtractError::BrokenImage("zero-sized image".into()));
    }
    if w.saturating_mul(h) > max_pixels {
        return Err(ExtractError::ImageTooLarge {
            width: w,
            height: h,
        });
    }
    Ok(())
}

/// Extracts text from a PNG, JPEG or TIFF.
pub fn extract(
    bytes: &[u8],
    media: MediaType,
    opts: &ExtractOptions,
) -> Result<Extraction, ExtractError> {
    let images: Box<dyn Iterator<Item = Result<Gray, ExtractError>>> = match media {
        MediaType::Tiff => Box::new(tiff_pages(bytes, opts.max_image_pixels)?),
        _ => Box::new(std::iter::once(decode_single(bytes, opts.max_image_pixels))),
    };
    let mut pages = Vec::new();
    let mut seen = 0u32;
    for img in images {
        seen += 1;
        if seen > opts.max_pages {
            break;
        }
        let img = match img {
            Ok(i) => i,
            Err(e) if pages.is_empty() => return Err(e),
            Err(_) => break,
        };
        let dpi = img.dpi.filter(|d| (70..=1200).contains(d)).unwrap_or(300);
        let page = super::ocr::with_engine(opts, |e| e.recognize(&img, seen, dpi))?;
        let enough = count_alnum(&page.text) >= opts.min_text_chars;
        pages.push(page);
        if enough {
            break;
        }
    }
    if pages.is_empty() {
        return Err(ExtractError::BrokenImage("no page in image".into()));
    }
    // The searchable PDF recognises the pages routing did not read: it needs the count.
    let page_count = match media {
        MediaType::Tiff => tiff_page_count(bytes, opts.max_pages).max(pages.len() as u32),
        _ => pages.len() as u32,
    };
    Ok(Extraction {
        media_type: media,
        method: Method::Ocr,
        page_count,
        pages,
        invoice: None,
    })
}

/// Page `index` (0-based) of a TIFF, decoding only that page (earlier pages' directories are
/// stepped over); `None` when the TIFF has no such page.
pub(crate) fn tiff_nth_page(
    bytes: &[u8],
    index: usize,
    max_pixels: u64,
) -> Result<Option<Gray>, ExtractError> {
    use tiff::decoder::{Decoder, Limits};
    let bad = |e: tiff::TiffError| ExtractError::BrokenImage(e.to_string());
    let mut limits = Limits::default();
    limits.decoding_buffer_size = (max_pixels.saturating_mul(4)).min(usize::MAX as u64) as usize;
    let mut dec = Decoder::new(Cursor::new(bytes))
        .map_err(bad)?
        .with_limits(limits);
    for _ in 0..index {
        if !dec.more_images() {
            return Ok(None);
        }
        dec.next_image().map_err(bad)?;
    }
    tiff_page(&mut dec, max_pixels).map(Some)
}

/// Pages of a TIFF (at most `cap`), counted from its directory chain without decoding pixels.
pub(crate) fn tiff_page_count(bytes: &[u8], cap: u32) -> u32 {
    let Ok(mut dec) = tiff::decoder::Decoder::new(Cursor::new(bytes)) else {
        return 1;
    };
    let mut n = 1;
    while n < cap && dec.more_images() && dec.next_image().is_ok() {
        n += 1;
    }
    n
}

/// The horizontal resolution of the TIFF page in pixels per inch: `XResolution` is a RATIONAL
/// (as scanners write it; a DOUBLE is taken too), in inches or, with `ResolutionUnit` 3, in
/// centimetres. `None` when missing or not positive.
fn tiff_dpi(dec: &mut tiff::decoder::Decoder<Cursor<&[u8]>>) -> Option<u32> {
    use tiff::decoder::ifd::Value;
    let per_unit = match dec.get_tag(tiff::tags::Tag::XResolution).ok()? {
        Value::Rational(n, d) if d > 0 => f64::from(n) / f64::from(d),
        other => other.into_f64().ok()?,
    };
    let centimetres = dec
        .get_tag_u32(tiff::tags::Tag::ResolutionUnit)
        .is_ok_and(|u| u == 3);
    let dpi = if centimetres {
        per_unit * 2.54
    } else {
        per_unit
    };
    (1.0..100_000.0).contains(&dpi).then(|| dpi.round() as u32)
}

/// Decodes the first (only) frame of a PNG/JPEG (or PNM) to grayscale.
pub fn decode_single(bytes: &[u8], max_pixels: u64) -> Result<Gray, ExtractError> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    check_size(w as u64, h as u64, max_pixels)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    let gray = img.to_luma8();
    Ok(Gray {
        width: gray.width(),
        height: gray.height(),
        pixels: gray.into_raw(),
        dpi: None,
    })
}

/// Decodes a PGM (the renderer's output).
pub fn decode_pnm_gray(bytes: &[u8], max_pixels: u64) -> Result<Gray, ExtractError> {
    decode_single(bytes, max_pixels)
}

/// Iterates over the pages of a TIFF, each decoded to grayscale.
pub(crate) fn tiff_pages(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<impl Iterator<Item = Result<Gray, ExtractError>> + '_, ExtractError> {
    use tiff::decoder::{Decoder, Limits};
    let mut limits = Limits::default();
    limits.decoding_buffer_size = (max_pixels.saturating_mul(4)).min(usize::MAX as u64) as usize;
    let decoder = Decoder::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?
        .with_limits(limits);
    let mut state = Some(decoder);
    let mut first = true;
    Ok(std::iter::from_fn(move || {
        let dec = state.as_mut()?;
        if !first {
            if !dec.more_images() {
                return None;
            }
            if let Err(e) = dec.next_image() {
                state = None;
                return Some(Err(ExtractError::BrokenImage(e.to_string())));
            }
        }
        first = false;
        let page = tiff_page(dec, max_pixels);
        if page.is_err() {
            state = None;
        }
        Some(page)
    }))
}

fn tiff_page(
    dec: &mut tiff::decoder::Decoder<Cursor<&[u8]>>,
    max_pixels: u64,
) -> Result<Gray, ExtractError> {
    use tiff::ColorType;
    use tiff::decoder::DecodingResult;
    let bad = |e: tiff::TiffError| ExtractError::BrokenImage(e.to_string());
    let (w, h) = dec.dimensions().map_err(bad)?;
    check_size(w as u64, h as u64, max_pixels)?;
    let color = dec.colortype().map_err(bad)?;
    let white_is_zero = dec
        .get_tag_u32(tiff::tags::Tag::PhotometricInterpretation)
        .map(|p| p == 0)
        .unwrap_or(false);
    let dpi = tiff_dpi(dec);
    let data = dec.read_image().map_err(bad)?;
    let (w_us, h_us) = (w as usize, h as usize);
    let n = w_us * h_us;
    let mut pixels = match (color, data) {
        (ColorType::Gray(8), DecodingResult::U8(v)) => v,
        (ColorType::Gray(16), DecodingResult::U16(v)) => {
            v.into_iter().map(|p| (p >> 8) as u8).collect()
        }
        (ColorType::Gray(1), DecodingResult::U8(v)) => {
            let stride = w_us.div_ceil(8);
            let mut out = Vec::with_capacity(n);
            for y in 0..h_us {
                for x in 0..w_us {
                    let byte = v.get(y * stride + x / 8).copied().unwrap_or(0);
                    let bit = (byte >> (7 - (x % 8))) & 1;
                    out.push(if bit == 1 { 255 } else { 0 });
                }
            }
            out
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => v.chunks_exact(3).map(luma).collect(),
        (ColorType::RGBA(8), DecodingResult::U8(v)) => v.chunks_exact(4).map(luma).collect(),
        (c, _) => {
            return Err(ExtractError::BrokenImage(format!(
                "unsupported TIFF colour type {c:?}"
            )));
        }
    };
    if white_is_zero {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    if pixels.len() < n {
        return Err(ExtractError::BrokenImage(
            "TIFF data shorter than its size".into(),
        ));
    }
    pixels.truncate(n);
    Ok(Gray {
        width: w,
        height: h,
        pixels,
        dpi,
    })
}

/// The gray value of an RGB(A) pixel (ITU-R BT.601 weights).
pub(crate) fn luma(p: &[u8]) -> u8 {
    ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page white TIFF with its resolution given as a RATIONAL in `unit`.
    fn tiff_with_resolution(unit: tiff::tags::ResolutionUnit, n: u32, d: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut enc = tiff::encoder::TiffEncoder::new(&mut out).expect("tiff");
            let mut img = enc
                .new_image::<tiff::encoder::colortype::Gray8>(8, 8)
                .expect("page");
            img.resolution(unit, tiff::encoder::Rational { n, d });
            img.write_data(&[255; 64]).expect("data");
        }
        out.into_inner()
    }

    #[test]
    fn a_tiff_s_resolution_is_read_from_its_rational_in_inches_or_centimetres() {
        let inch = tiff_with_resolution(tiff::tags::ResolutionUnit::Inch, 200, 1);
        let page = tiff_nth_page(&inch, 0, 1_000_000)
            .expect("tiff")
            .expect("page");
        assert_eq!(page.dpi, Some(200));
        // 118.11 pixels per centimetre are 300 dpi.
        let cm = tiff_with_resolution(tiff::tags::ResolutionUnit::Centimeter, 11811, 100);
        let page = tiff_nth_page(&cm, 0, 1_000_000)
            .expect("tiff")
            .expect("page");
        assert_eq!(page.dpi, Some(300));
    }
}
