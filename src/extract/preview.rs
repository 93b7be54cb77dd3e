//! Page images for people: one page of a scan or PDF drawn as a PNG for the web desk's review
//! station. Runs in the sandboxed worker like every other parser; the image is scaled down to
//! [`MAX_WIDTH`] pixels so that a page is a few hundred kilobytes. A stack's pages are shown
//! as thumbnails ([`page_thumbnail`], [`THUMB_WIDTH`] pixels wide), any page of the stack.

use super::image::{Gray, decode_single, tiff_nth_page};
use super::{ExtractError, ExtractOptions, MediaType};
use std::path::Path;

/// Width of a page image at most, in pixels (A4 at 150 dpi).
pub const MAX_WIDTH: u32 = 1240;

/// Resolution PDF pages are drawn at before scaling.
const PDF_DPI: u32 = 150;

/// Width of a thumbnail at most, in pixels.
pub const THUMB_WIDTH: u32 = 420;

/// Resolution PDF pages are drawn at for a thumbnail (A4: 413 pixels wide).
const THUMB_DPI: u32 = 50;

/// The last page of a stack a thumbnail is drawn for.
pub const MAX_THUMB_PAGE: u32 = 2000;

/// Draws page `page` (1-based) of the file at `path` as a grayscale PNG.
pub fn page_png(
    path: &Path,
    media: MediaType,
    page: u32,
    opts: &ExtractOptions,
) -> Result<Vec<u8>, ExtractError> {
    if page == 0 || page > opts.max_pages.max(1) {
        return Err(ExtractError::NoPageImage(format!(
            "page {page} out of range"
        )));
    }
    encode(draw(path, media, page, PDF_DPI, opts)?, MAX_WIDTH)
}

/// Draws page `page` (1-based, up to [`MAX_THUMB_PAGE`]) of a stack at `path` as a small
/// grayscale PNG, at most [`THUMB_WIDTH`] pixels wide.
pub fn page_thumbnail(
    path: &Path,
    media: MediaType,
    page: u32,
    opts: &ExtractOptions,
) -> Result<Vec<u8>, ExtractError> {
    if page == 0 || page > MAX_THUMB_PAGE {
        return Err(ExtractError::NoPageImage(format!(
            "page {page} out of range"
        )));
    }
    encode(draw(path, media, page, THUMB_DPI, opts)?, THUMB_WIDTH)
}

/// Page `page` as gray pixels (a PDF drawn at `dpi`).
fn draw(
    path: &Path,
    media: MediaType,
    page: u32,
    dpi: u32,
    opts: &ExtractOptions,
) -> Result<Gray, ExtractError> {
    let gray = match media {
        MediaType::Pdf => {
            let pgm =
                super::pdf::render_page(path, page, dpi, opts.max_image_pixels).map_err(|e| {
                    e.into_extract(|e| {
                        if e.contains("Wrong page range") {
                            ExtractError::NoPageImage(format!("page {page} out of range"))
                        } else {
                            ExtractError::BrokenPdf(e)
                        }
                    })
                })?;
            decode_single(&pgm, opts.max_image_pixels)?
        }
        MediaType::Png | MediaType::Jpeg => {
            if page != 1 {
                return Err(ExtractError::NoPageImage(format!(
                    "page {page} out of range"
                )));
            }
            let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
            decode_single(&bytes, opts.max_image_pixels)?
        }
        MediaType::Tiff => {
            let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
            tiff_nth_page(&bytes, page as usize - 1, opts.max_image_pixels)?
                .ok_or_else(|| ExtractError::NoPageImage(format!("page {page} out of range")))?
        }
        MediaType::Text | MediaType::Xml | MediaType::Eml => {
            return Err(ExtractError::NoPageImage(
                "documents without pages have no page image".into(),
            ));
        }
    };
    Ok(gray)
}

/// Scales to at most `max_width` and encodes as PNG.
fn encode(g: Gray, max_width: u32) -> Result<Vec<u8>, ExtractError> {
    let img = image::GrayImage::from_raw(g.width, g.height, g.pixels)
        .ok_or_else(|| ExtractError::BrokenImage("pixel buffer does not fit its size".into()))?;
    let img = if img.width() > max_width {
        let h = ((img.height() as u64 * max_width as u64) / img.width() as u64).max(1) as u32;
        image::imageops::resize(&img, max_width, h, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_wide_scan_is_scaled_down_and_keeps_its_aspect() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("scan.png");
        let mut img = image::GrayImage::from_pixel(2480, 3508, image::Luma([255]));
        img.put_pixel(10, 10, image::Luma([0]));
        img.save(&p).expect("save");
        let png = page_png(&p, MediaType::Png, 1, &opts()).expect("png");
        let back = image::load_from_memory(&png).expect("decode").to_luma8();
        assert_eq!(back.width(), MAX_WIDTH);
        assert_eq!(back.height(), 3508 * MAX_WIDTH / 2480);
        assert!(matches!(
            page_png(&p, MediaType::Png, 2, &opts()),
            Err(ExtractError::NoPageImage(_))
        ));
    }

    #[test]
    fn a_thumbnail_is_small_and_drawn_for_any_page_of_a_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("stapel.tif");
        let page = image::GrayImage::from_pixel(1240, 1754, image::Luma([255]));
        {
            let mut f = std::fs::File::create(&p).expect("create");
            let mut enc = tiff::encoder::TiffEncoder::new(&mut f).expect("tiff");
            for _ in 0..7 {
                enc.write_image::<tiff::encoder::colortype::Gray8>(1240, 1754, page.as_raw())
                    .expect("page");
            }
        }
        // Page 7 is past `max_pages` (5): no page image, but a thumbnail.
        assert!(page_png(&p, MediaType::Tiff, 7, &opts()).is_err());
        let png = page_thumbnail(&p, MediaType::Tiff, 7, &opts()).expect("thumbnail");
        let back = image::load_from_memory(&png).expect("decode").to_luma8();
        assert_eq!(back.width(), THUMB_WIDTH);
        assert!(matches!(
            page_thumbnail(&p, MediaType::Tiff, 8, &opts()),
            Err(ExtractError::NoPageImage(_))
        ));
    }

    #[test]
    fn text_has_no_page_image_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.txt");
        std::fs::write(&p, b"Hallo").expect("write");
        assert!(page_png(&p, MediaType::Text, 1, &opts()).is_err());
        assert!(page_png(&p, MediaType::Png, 1, &opts()).is_err());
    }
}
