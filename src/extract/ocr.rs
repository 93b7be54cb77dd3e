//! Tesseract OCR with word boxes (TSV output), one engine per worker process: loaded for the
//! first page and kept for every later page and document the worker reads ([`with_engine`]).

use super::image::Gray;
use super::{ExtractError, ExtractOptions, MediaType, Page, Word};
use std::cell::RefCell;
use std::path::Path;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's engine, initialising it on first use (and again when the
/// language or data directory changes).
pub fn with_engine<T>(
    opts: &ExtractOptions,
    f: impl FnOnce(&mut Engine) -> Result<T, ExtractError>,
) -> Result<T, ExtractError> {
    let tessdata = opts.tessdata.as_ref().map(|p| p.display().to_string());
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fits = slot
            .as_ref()
            .is_some_and(|e| e.language == opts.language && e.tessdata == tessdata);
        if !fits {
            *slot = None;
            *slot = Some(Engine::new(opts)?);
        }
        match slot.as_mut() {
            Some(engine) => f(engine),
            None => Err(ExtractError::Ocr("no OCR engine".into())),
        }
    })
}

/// Recognises page `page` (1-based) of the scan at `path`; `None` when it has no such page.
/// PDFs are rendered as 8-bit gray at the configured resolution; images are decoded.
pub fn page(
    path: &Path,
    media: MediaType,
    page: u32,
    opts: &ExtractOptions,
) -> Result<Option<Page>, ExtractError> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    let (img, dpi) = match media {
        MediaType::Pdf => {
            let bytes = std::fs::read(path).map_err(io)?;
            let stored = lopdf::Document::load_mem(&bytes)
                .ok()
                .filter(|d| !d.is_encrypted())
                .and_then(|d| super::pdf::stored_page_image(&d, page, opts.max_image_pixels));
            if let Some((img, dpi)) = stored {
                return with_engine(opts, |e| e.recognize(&img, page, dpi)).map(Some);
            }
            let pgm = match super::pdf::render_page(path, page, opts.dpi, opts.max_image_pixels) {
                Ok(p) => p,
                Err(super::pdf::RenderError::Failed(e)) if e.contains("Wrong page range") => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into_extract(ExtractError::BrokenPdf)),
            };
            (
                super::image::decode_pnm_gray(&pgm, opts.max_image_pixels)?,
                opts.dpi,
            )
        }
        MediaType::Png | MediaType::Jpeg => {
            if page != 1 {
                return Ok(None);
            }
            let bytes = std::fs::read(path).map_err(io)?;
            let img = super::image::decode_single(&bytes, opts.max_image_pixels)?;
            (img, 300)
        }
        MediaType::Tiff => {
            let bytes = std::fs::read(path).map_err(io)?;
            let index = page.saturating_sub(1) as usize;
            let Some(img) = super::image::tiff_nth_page(&bytes, index, opts.max_image_pixels)?
            else {
                return Ok(None);
            };
            let dpi = img.dpi.filter(|d| (70..=1200).contains(d)).unwrap_or(300);
            (img, dpi)
        }
        MediaType::Text | MediaType::Xml | MediaType::Eml => return Ok(None),
    };
    with_engine(opts, |e| e.recognize(&img, page, dpi)).map(Some)
}

/// A Tesseract engine, initialised once and reused for every page of a document.
pub struct Engine {
    language: String,
    tessdata: Option<String>,
    api: Option<tesseract::Tesseract>,
}

impl Engine {
    /// Initialises Tesseract with the configured language (e.g. `deu`).
    pub fn new(opts: &ExtractOptions) -> Result<Self, ExtractError> {
        let tessdata = opts.tessdata.as_ref().map(|p| p.display().to_string());
        let api =
            tesseract::Tesseract::new(tessdata.as_deref(), Some(&opts.language)).map_err(|e| {
                ExtractError::Ocr(format!(
                    "cannot initialise Tesseract with language {}: {e}",
                    opts.language
                ))
            })?;
        // Local (Sauvola) binarisation: scans with uneven brightness otherwise come out as
        // noise under a single page-wide threshold.
        let api = api
            .set_variable("thresholding_method", "2")
            .map_err(|e| ExtractError::Ocr(format!("cannot set thresholding: {e}")))?;
        Ok(Self {
            language: opts.language.clone(),
            tessdata,
            api: Some(api),
        })
    }

    /// Recognises one page image.
    pub fn recognize(&mut self, img: &Gray, number: u32, dpi: u32) -> Result<Page, ExtractError> {
        let api = match self.api.take() {
            Some(a) => a,
            None => tesseract::Tesseract::new(self.tessdata.as_deref(), Some(&self.language))
                .map_err(|e| ExtractError::Ocr(e.to_string()))?,
        };
        let w = i32::try_from(img.width).map_err(|_| ExtractError::BrokenImage("width".into()))?;
        let h =
            i32::try_from(img.height).map_err(|_| ExtractError::BrokenImage("height".into()))?;
        let mut api = api
            .set_frame(&img.pixels, w, h, 1, w)
            .map_err(|e| ExtractError::Ocr(e.to_string()))?
            .set_source_resolution(dpi as i32)
            .recognize()
            .map_err(|e| ExtractError::Ocr(e.to_string()))?;
        let tsv = api
            .get_tsv_text(0)
            .map_err(|e| ExtractError::Ocr(e.to_string()))?;
        self.api = Some(api);
        let (words, text) = parse_tsv(&tsv);
        Ok(Page {
            number,
            text,
            words,
            width: img.width as f32,
            height: img.height as f32,
            units_per_mm: dpi as f32 / 25.4,
        })
    }
}

/// Parses Tesseract's TSV: `level page block par line word left top width height conf text`.
/// Returns the words and the page text with one line per OCR line (blank line between blocks).
pub fn parse_tsv(tsv: &str) -> (Vec<Word>, String) {
    let mut words = Vec::new();
    let mut text = String::new();
    let mut last_key: Option<(u32, u32, u32)> = None;
    let mut last_block = None;
    let mut line_no = 0u32;
    for row in tsv.lines() {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let num = |i: usize| cols[i].trim().parse::<f32>().unwrap_or(0.0);
        let word = cols[11].trim();
        if word.is_empty() {
            continue;
        }
        let key = (num(2) as u32, num(3) as u32, num(4) as u32);
        if last_key != Some(key) {
            if last_key.is_some() {
                text.push('\n');
                if last_block != Some(key.0) {
                    text.push('\n');
                }
            }
            line_no += 1;
            last_key = Some(key);
            last_block = Some(key.0);
        } else {
            text.push(' ');
        }
        text.push_str(word);
        words.push(Word {
            text: word.to_string(),
            x: num(6),
            y: num(7),
            w: num(8),
            h: num(9),
            conf: num(10),
            line: line_no,
        });
    }
    (words, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_lines_and_blocks() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t40\t95.5\tStadt\n\
                   5\t1\t1\t1\t1\t2\t50\t20\t30\t40\t90\tMusterstadt\n\
                   5\t1\t1\t1\t2\t1\t10\t70\t30\t40\t90\tAmt\n\
                   5\t1\t2\t1\t1\t1\t10\t500\t30\t40\t90\tBetreff\n";
        let (words, text) = parse_tsv(tsv);
        assert_eq!(words.len(), 4);
        assert_eq!(text, "Stadt Musterstadt\nAmt\n\nBetreff");
        assert_eq!(words[2].line, 2);
        assert_eq!(words[1].x, 50.0);
    }
}
