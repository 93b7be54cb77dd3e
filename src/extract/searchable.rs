//! Searchable PDFs of scans: every page image with an invisible OCR text layer on top, made by
//! Tesseract's PDF renderer (`tesseract … pdf`), so a DMS can index the full text.
//!
//! Runs inside the extraction worker (same time and memory limits as extraction). Scanned PDFs
//! are rendered page by page with `pdftoppm` (grayscale JPEG at the configured resolution);
//! PNG, JPEG and (multi-page) TIFF files are handed to Tesseract as they are.

use super::{ExtractError, ExtractOptions, MediaType};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes the searchable PDF of the scan at `path` and writes it to `out`.
pub fn make(
    path: &Path,
    media: MediaType,
    opts: &ExtractOptions,
    out: &Path,
) -> Result<(), ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    let work = tempfile::Builder::new()
        .prefix("poststelle-searchable")
        .tempdir()
        .map_err(io)?;
    let (inputs, dpi): (Vec<PathBuf>, Option<u32>) = match media {
        MediaType::Pdf => (render_pages(path, work.path(), opts)?, Some(opts.dpi)),
        MediaType::Png | MediaType::Jpeg => {
            let bytes = std::fs::read(path).map_err(io)?;
            check_dimensions(&bytes, opts.max_image_pixels)?;
            // The extraction read these at 300 dpi when the file says nothing.
            (vec![path.to_path_buf()], Some(300))
        }
        MediaType::Tiff => {
            let bytes = std::fs::read(path).map_err(io)?;
            // Tesseract reads the resolution from the file; without one, 300 dpi as in OCR.
            let dpi = tiff_dpi(&bytes).filter(|d| (70..=1200).contains(d));
            (vec![path.to_path_buf()], Some(dpi.unwrap_or(300)))
        }
        MediaType::Text | MediaType::Xml | MediaType::Eml => {
            return Err(ExtractError::Io(format!(
                "no searchable PDF for {}",
                media.mime()
            )));
        }
    };
    let input = if inputs.len() == 1 {
        inputs[0].clone()
    } else {
        let list = work.path().join("pages.txt");
        let lines: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        std::fs::write(&list, lines.join("\n") + "\n").map_err(io)?;
        list
    };
    let base = work.path().join("searchable");
    let mut cmd = Command::new("tesseract");
    cmd.arg(&input).arg(&base).args(["-l", &opts.language]);
    if let Some(dir) = &opts.tessdata {
        cmd.arg("--tessdata-dir").arg(dir);
    }
    if let Some(d) = dpi {
        cmd.args(["--dpi", &d.to_string()]);
    }
    let output = cmd
        // Same binarisation as the routing OCR (see ocr.rs).
        .args(["-c", "thresholding_method=2", "pdf"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| ExtractError::Ocr(format!("tesseract not available: {e}")))?;
    let pdf = base.with_extension("pdf");
    let bytes = std::fs::read(&pdf).unwrap_or_default();
    if !output.status.success() || !bytes.starts_with(b"%PDF-") {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: String = err.chars().take(400).collect();
        return Err(ExtractError::Ocr(format!(
            "tesseract pdf: {} {}",
            output.status,
            tail.trim()
        )));
    }
    std::fs::rename(&pdf, out)
        .or_else(|_| std::fs::write(out, &bytes))
        .map_err(io)
}

/// The resolution a TIFF's first page states, if any.
fn tiff_dpi(bytes: &[u8]) -> Option<u32> {
    let mut dec = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).ok()?;
    dec.get_tag(tiff::tags::Tag::XResolution)
        .ok()
        .and_then(|v| v.into_f64().ok())
        .map(|d| d.round() as u32)
}

fn check_dimensions(bytes: &[u8], max_pixels: u64) -> Result<(), ExtractError> {
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?
        .into_dimensions()
        .map_err(|e| ExtractError::BrokenImage(e.to_string()))?;
    if u64::from(w).saturating_mul(u64::from(h)) > max_pixels {
        return Err(ExtractError::ImageTooLarge {
            width: w.into(),
            height: h.into(),
        });
    }
    Ok(())
}

/// Renders pages 1..=max_pages as grayscale JPEGs; returns them in page order.
fn render_pages(
    path: &Path,
    dir: &Path,
    opts: &ExtractOptions,
) -> Result<Vec<PathBuf>, ExtractError> {
    let prefix = dir.join("page");
    let out = Command::new("pdftoppm")
        .args(["-gray", "-jpeg", "-jpegopt", "quality=80", "-r"])
        .arg(opts.dpi.to_string())
        .args(["-f", "1", "-l"])
        .arg(opts.max_pages.to_string())
        .arg(path)
        .arg(&prefix)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ExtractError::BrokenPdf(format!("pdftoppm not available: {e}")))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ExtractError::Io(e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    // pdftoppm pads page numbers to the same width, so names sort in page order.
    pages.sort();
    if pages.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(ExtractError::BrokenPdf(format!(
            "pdftoppm: {} {}",
            out.status,
            err.trim()
        )));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(language: &str) -> ExtractOptions {
        ExtractOptions {
            language: language.into(),
            tessdata: None,
            dpi: 150,
            min_text_chars: 60,
            max_pages: 5,
            max_image_pixels: 10_000_000,
            mail: Default::default(),
        }
    }

    fn white_png(dir: &Path) -> PathBuf {
        let img = image::GrayImage::from_pixel(400, 300, image::Luma([255]));
        let p = dir.join("blank.png");
        img.save(&p).expect("png");
        p
    }

    #[test]
    fn a_blank_page_still_becomes_a_pdf_with_its_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.pdf");
        make(&white_png(dir.path()), MediaType::Png, &opts("deu"), &out).expect("pdf");
        let bytes = std::fs::read(&out).expect("read");
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(
            bytes.windows(8).any(|w| w == b"/XObject"),
            "the page image is embedded"
        );
    }

    #[test]
    fn failures_are_reported_not_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.pdf");
        let png = white_png(dir.path());
        assert!(matches!(
            make(&png, MediaType::Png, &opts("keine-sprache"), &out),
            Err(ExtractError::Ocr(_))
        ));
        assert!(!out.exists());
        assert!(matches!(
            make(&png, MediaType::Text, &opts("deu"), &out),
            Err(ExtractError::Io(_))
        ));
        let mut small = opts("deu");
        small.max_image_pixels = 1000;
        assert!(matches!(
            make(&png, MediaType::Png, &small, &out),
            Err(ExtractError::ImageTooLarge { .. })
        ));
    }
}
