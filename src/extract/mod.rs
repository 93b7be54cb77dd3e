//! Extract: turns stored bytes into text with word positions.
//!
//! - born-digital PDF: the text layer (pdf-extract), when page 1 has enough of it;
//! - scanned PDF: page images rendered by `pdftoppm`, read by Tesseract (word boxes kept);
//! - PNG, JPEG, (multi-page) TIFF: Tesseract;
//! - plain text: as is.
//!
//! Parsers of untrusted input run in a child process ([`Extractor`]): a wall-clock limit, an
//! address-space limit and a process group that is killed whole on timeout, so a hostile file
//! can neither hang nor crash the daemon. The child is locked in ([`sandbox`]): a minimal
//! environment, no network, only its own files (Landlock), a syscall filter (seccomp), limits
//! on CPU time, file size and processes; so a parser bug that a hostile file exploits reaches
//! neither the daemon's secrets, database and delivered documents nor the network. Page 1 is read first and is enough to route; further
//! pages are only read when page 1 carries too little text.
//!
//! - XML e-invoices (XRechnung UBL/CII) and the XML embedded in ZUGFeRD / Factur-X PDFs:
//!   [`einvoice`] (bounded XML reader);
//! - scans are turned into searchable PDFs (page images plus an invisible OCR text layer) by
//!   [`searchable`], in the same sandbox, after routing.

pub mod batch;
pub mod einvoice;
pub mod image;
pub mod letter;
pub mod mail;
pub mod metadata;
pub mod ocr;
pub mod pdf;
pub mod pdfa;
pub mod pool;
pub mod preview;
pub mod sandbox;
pub mod scan;
pub mod searchable;
pub mod settings;
pub mod textpdf;
pub mod zones;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Kinds of input poststelle reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    /// PDF.
    Pdf,
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// TIFF image (one or more pages).
    Tiff,
    /// Plain text.
    Text,
    /// An XML e-invoice (XRechnung UBL or CII).
    Xml,
    /// An e-mail (RFC 5322 message, `.eml`).
    Eml,
}

impl MediaType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Tiff => "image/tiff",
            MediaType::Text => "text/plain",
            MediaType::Xml => "application/xml",
            MediaType::Eml => "message/rfc822",
        }
    }

    /// Parses a MIME type written by [`MediaType::mime`].
    pub fn from_mime(s: &str) -> Option<Self> {
        [
            MediaType::Pdf,
            MediaType::Png,
            MediaType::Jpeg,
            MediaType::Tiff,
            MediaType::Text,
            MediaType::Xml,
            MediaType::Eml,
        ]
        .into_iter()
        .find(|m| m.mime() == s)
    }

    /// A file extension for this type.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Pdf => "pdf",
            MediaType::Png => "png",
            MediaType::Jpeg => "jpg",
            MediaType::Tiff => "tif",
            MediaType::Text => "txt",
            MediaType::Xml => "xml",
            MediaType::Eml => "eml",
        }
    }
}

/// Recognises the format from the bytes (never from the name alone: a `.pdf` that is not a PDF
/// is refused). Text is accepted only for names ending in `.txt` and only without NUL bytes.
pub fn sniff(bytes: &[u8], name: &str) -> Result<MediaType, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let head = &bytes[..bytes.len().min(1024)];
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".eml") && looks_like_mail(head) {
        return Ok(MediaType::Eml);
    }
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Ok(MediaType::Pdf);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(MediaType::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(MediaType::Jpeg);
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Ok(MediaType::Tiff);
    }
    let trimmed = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(bytes)
        .trim_ascii_start();
    if trimmed.starts_with(b"<?xml") || (lower.ends_with(".xml") && trimmed.starts_with(b"<")) {
        return match einvoice::root(bytes) {
            Ok(_) => Ok(MediaType::Xml),
            Err(einvoice::XmlError::NotInvoice(root)) => Err(ExtractError::XmlNotInvoice(root)),
            Err(einvoice::XmlError::Broken(e)) => Err(ExtractError::BrokenXml(e)),
        };
    }
    if lower.ends_with(".txt") && !bytes.contains(&0) {
        return Ok(MediaType::Text);
    }
    Err(ExtractError::UnknownFormat {
        name: name.to_string(),
    })
}

/// True when the bytes start with a header field (`Name: value`), as an e-mail does.
fn looks_like_mail(head: &[u8]) -> bool {
    // Leading blank lines and an mbox `From ` line are tolerated.
    let Some(first) = head
        .split(|&b| b == b'\n')
        .find(|l| !l.trim_ascii().is_empty() && !l.starts_with(b"From "))
    else {
        return false;
    };
    let Some(colon) = first.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && first[..colon]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// One recognised word with its box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word.
    pub text: String,
    /// Left edge, in page units.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// OCR confidence 0..100.
    pub conf: f32,
    /// Line number on the page (words of one line share it).
    pub line: u32,
}

/// One page of extracted text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    /// The page's text, lines separated by `\n`.
    pub text: String,
    /// Words with boxes (OCR only; empty for text layers and plain text).
    pub words: Vec<Word>,
    /// Page width in units.
    pub width: f32,
    /// Page height in units.
    pub height: f32,
    /// Units per millimetre (`dpi / 25.4` for OCR'd pages, 0 when unknown).
    pub units_per_mm: f32,
}

/// How the text was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The PDF's own text layer.
    TextLayer,
    /// Tesseract OCR.
    Ocr,
    /// A plain-text file.
    PlainText,
    /// An XML e-invoice.
    EInvoice,
}

/// How sure OCR was of a page's words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OcrConfidence {
    /// Mean word confidence, 0..100, weighted by word length.
    pub mean: f64,
    /// Share of the text (by letters and digits) in words below [`OcrConfidence::LOW_WORD`].
    pub low_share: f64,
    /// Words counted.
    pub words: usize,
}

impl OcrConfidence {
    /// Word confidence below which a word counts as poorly read.
    pub const LOW_WORD: f32 = 60.0;
}

/// What extraction produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    /// Detected type.
    pub media_type: MediaType,
    /// How the text was obtained.
    pub method: Method,
    /// Pages read (page 1 first; not necessarily all pages of the document).
    pub pages: Vec<Page>,
    /// Pages the document has, when known.
    pub page_count: u32,
    /// The e-invoice the document is or carries (XRechnung XML, ZUGFeRD / Factur-X PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<crate::domain::InvoiceInfo>,
}

impl Extraction {
    /// All read text, pages separated by form feeds.
    pub fn text(&self) -> String {
        self.pages
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\u{c}\n")
    }

    /// How sure OCR was of page 1's words (None unless page 1 was recognised by OCR and has
    /// words): words of at least two letters or digits, weighted by their length.
    pub fn ocr_confidence(&self) -> Option<OcrConfidence> {
        if self.method != Method::Ocr {
            return None;
        }
        let page = self.pages.first()?;
        let (mut sum, mut total, mut low, mut words) = (0.0f64, 0usize, 0usize, 0usize);
        for w in &page.words {
            let n = count_alnum(&w.text);
            if n < 2 {
                continue;
            }
            words += 1;
            total += n;
            sum += f64::from(w.conf.clamp(0.0, 100.0)) * n as f64;
            if w.conf < OcrConfidence::LOW_WORD {
                low += n;
            }
        }
        (words > 0).then(|| OcrConfidence {
            mean: sum / total as f64,
            low_share: low as f64 / total as f64,
            words,
        })
    }

    /// Number of letters and digits read: the measure of "has usable text".
    pub fn alnum_chars(&self) -> usize {
        self.pages.iter().map(|p| count_alnum(&p.text)).sum()
    }
}

pub(crate) fn count_alnum(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphanumeric()).count()
}

/// Why a file could not be read. [`ExtractError::reason_de`] is the text people see.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ExtractError {
    /// Zero bytes.
    #[error("empty file")]
    Empty,
    /// Not a format we read.
    #[error("unknown format: {name}")]
    UnknownFormat {
        /// The file name.
        name: String,
    },
    /// Password-protected PDF.
    #[error("encrypted PDF: {0}")]
    Encrypted(String),
    /// A PDF that neither parser nor renderer can read.
    #[error("broken PDF: {0}")]
    BrokenPdf(String),
    /// More pixels than allowed.
    #[error("image too large: {width}x{height}")]
    ImageTooLarge {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
    },
    /// A PDF page that would have more pixels than allowed when rendered: not rendered.
    #[error("page {page} too large to render: {width}x{height} at {dpi} dpi")]
    PageTooLarge {
        /// The page (1-based).
        page: u32,
        /// Width in pixels at `dpi`.
        width: u64,
        /// Height in pixels at `dpi`.
        height: u64,
        /// The resolution it was to be rendered at.
        dpi: u32,
    },
    /// An image that cannot be decoded.
    #[error("broken image: {0}")]
    BrokenImage(String),
    /// Tesseract failed.
    #[error("OCR failed: {0}")]
    Ocr(String),
    /// The reader ran out of time.
    #[error("extraction timed out after {0} s")]
    Timeout(u64),
    /// The reader process died (memory limit, crash).
    #[error("extraction process died: {0}")]
    Crashed(String),
    /// An e-mail whose structure cannot be read.
    #[error("broken e-mail: {0}")]
    BrokenMail(String),
    /// An e-mail beyond the limits (attachments, nesting, decoded size); the German reason.
    #[error("e-mail beyond limits: {0}")]
    MailLimit(String),
    /// Local I/O failed (not the input's fault).
    #[error("I/O: {0}")]
    Io(String),
    /// An XML file whose root element is not an invoice.
    #[error("XML is not an invoice: root element {0}")]
    XmlNotInvoice(String),
    /// An XML file that is not well-formed or breaks the reader's limits.
    #[error("broken XML: {0}")]
    BrokenXml(String),
    /// A page image was asked for that the document does not have (a page beyond its last, an
    /// e-mail or a text file).
    #[error("no page image: {0}")]
    NoPageImage(String),
    /// The reader used more CPU time than a job may (`RLIMIT_CPU`, in seconds).
    #[error("extraction exceeded its CPU time limit of {0} s")]
    CpuLimit(u64),
    /// The reader tried to write a file beyond the sandbox's size limit (`RLIMIT_FSIZE`, MiB).
    #[error("extraction tried to write a file larger than {0} MiB")]
    FileSizeLimit(u64),
    /// A result of the reader (its JSON, the PDF or image it made) is larger than the daemon
    /// reads back.
    #[error("extraction result {what} larger than {limit_mb} MiB")]
    OutputTooLarge {
        /// Which result (`JSON`, `result.pdf`, ...).
        what: String,
        /// The limit, in MiB.
        limit_mb: u64,
    },
}

impl ExtractError {
    /// The reason in German, for quarantine files and the review UI.
    pub fn reason_de(&self) -> String {
        match self {
            ExtractError::Empty => "Die Datei ist leer (0 Byte).".into(),
            ExtractError::UnknownFormat { name } => format!(
                "Unbekanntes Dateiformat: „{name}“ ist weder PDF noch PNG, JPEG, TIFF, Textdatei (.txt) oder E-Mail (.eml)."
            ),
            ExtractError::Encrypted(_) => {
                "Das PDF ist verschlüsselt bzw. kennwortgeschützt und kann nicht gelesen werden. Bitte ungeschützt erneut einreichen.".into()
            }
            ExtractError::BrokenPdf(_) => "Das PDF ist beschädigt und kann weder als Text noch als Bild gelesen werden.".into(),
            ExtractError::ImageTooLarge { width, height } => format!(
                "Das Bild ist mit {width} × {height} Pixeln zu groß (mögliche Dekompressionsbombe); es wurde nicht geöffnet."
            ),
            ExtractError::PageTooLarge { page, width, height, dpi } => format!(
                "Seite {page} des PDFs wäre bei {dpi} dpi {width} × {height} Pixel groß (über der Grenze, mögliche Dekompressionsbombe); sie wurde nicht gerendert."
            ),
            ExtractError::BrokenImage(_) => "Das Bild ist beschädigt oder in einer nicht unterstützten Variante gespeichert.".into(),
            ExtractError::Ocr(_) => "Die Texterkennung (OCR) ist fehlgeschlagen.".into(),
            ExtractError::Timeout(s) => format!("Das Lesen der Datei dauerte länger als das Zeitlimit von {s} Sekunden und wurde abgebrochen."),
            ExtractError::Crashed(_) => {
                "Das Lesen der Datei wurde abgebrochen (Speicherlimit überschritten oder Lesefehler).".into()
            }
            ExtractError::BrokenMail(_) => "Die E-Mail ist beschädigt: Kopfzeilen bzw. MIME-Struktur sind nicht lesbar.".into(),
            ExtractError::MailLimit(reason) => reason.clone(),
            ExtractError::Io(_) => "Die Datei konnte lokal nicht gelesen werden.".into(),
            ExtractError::XmlNotInvoice(root) => format!(
                "Die XML-Datei ist keine E-Rechnung (Wurzelelement „{root}“); angenommen werden nur XRechnung/EN 16931 im UBL-Format (Invoice, CreditNote) und im CII-Format (CrossIndustryInvoice)."
            ),
            ExtractError::BrokenXml(_) => "Die XML-Datei ist nicht wohlgeformt, zu groß oder enthält eine DTD bzw. unbekannte Entitäten; sie wurde nicht gelesen.".into(),
            ExtractError::NoPageImage(_) => "Für diese Seite gibt es kein Seitenbild.".into(),
            ExtractError::CpuLimit(s) => format!(
                "Das Lesen der Datei brauchte mehr als die erlaubte Rechenzeit von {s} Sekunden (CPU-Zeitlimit) und wurde abgebrochen."
            ),
            ExtractError::FileSizeLimit(mb) => format!(
                "Beim Lesen der Datei sollte eine Datei über dem Größenlimit von {mb} MB entstehen; das Lesen wurde abgebrochen."
            ),
            ExtractError::OutputTooLarge { limit_mb, .. } => format!(
                "Das Ergebnis des Lesens ist größer als das Limit von {limit_mb} MB und wurde verworfen."
            ),
        }
    }

    /// True when the input itself is at fault (quarantine); false for local trouble (retry).
    pub fn is_input_fault(&self) -> bool {
        !matches!(self, ExtractError::Io(_))
    }
}

/// Limits and OCR options for one extraction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractOptions {
    /// Tesseract language.
    pub language: String,
    /// Tesseract data dir.
    pub tessdata: Option<PathBuf>,
    /// Rendering resolution for PDFs.
    pub dpi: u32,
    /// Letters/digits on a page below which its text layer is not used.
    pub min_text_chars: usize,
    /// Pages read at most.
    pub max_pages: u32,
    /// Pixels per image at most.
    pub max_image_pixels: u64,
    /// Limits on the structure of e-mails.
    #[serde(default)]
    pub mail: mail::MailLimits,
}

impl From<&settings::ExtractSettings> for ExtractOptions {
    fn from(s: &settings::ExtractSettings) -> Self {
        Self {
            language: s.language.clone(),
            tessdata: s.tessdata.clone(),
            dpi: s.dpi,
            min_text_chars: s.min_text_chars,
            max_pages: s.max_pages,
            max_image_pixels: s.max_image_pixels,
            mail: mail::MailLimits {
                max_attachments: s.mail_max_attachments,
                max_depth: s.mail_max_depth,
                max_decoded_bytes: s.mail_max_decoded_bytes,
            },
        }
    }
}

/// Extracts in this process. Only for the worker process and tests: the daemon uses
/// [`Extractor`], which adds time and memory limits.
pub fn extract_in_process(
    path: &Path,
    media: MediaType,
    opts: &ExtractOptions,
) -> Result<Extraction, ExtractError> {
    let bytes = std::fs::read(path).map_err(|e| ExtractError::Io(e.to_string()))?;
    match media {
        MediaType::Text => Ok(plain_text(&bytes)),
        MediaType::Xml => xml_invoice(&bytes),
        MediaType::Eml => mail::extract(&bytes, opts),
        MediaType::Pdf => pdf::extract(&bytes, path, opts),
        MediaType::Png | MediaType::Jpeg | MediaType::Tiff => image::extract(&bytes, media, opts),
    }
}

/// Reads an XML e-invoice: its facts and its text.
pub fn xml_invoice(bytes: &[u8]) -> Result<Extraction, ExtractError> {
    let (info, text) = einvoice::parse(bytes, None).map_err(|e| match e {
        einvoice::XmlError::NotInvoice(r) => ExtractError::XmlNotInvoice(r),
        einvoice::XmlError::Broken(e) => ExtractError::BrokenXml(e),
    })?;
    Ok(Extraction {
        media_type: MediaType::Xml,
        method: Method::EInvoice,
        page_count: 1,
        pages: vec![Page {
            number: 1,
            text,
            words: Vec::new(),
            width: 0.0,
            height: 0.0,
            units_per_mm: 0.0,
        }],
        invoice: Some(info),
    })
}

/// Reads a text file: UTF-8 (with or without BOM), else Windows-1252/Latin-1.
pub fn plain_text(bytes: &[u8]) -> Extraction {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    };
    let text = text.replace("\r\n", "\n");
    Extraction {
        media_type: MediaType::Text,
        method: Method::PlainText,
        page_count: 1,
        pages: vec![Page {
            number: 1,
            text,
            words: Vec::new(),
            width: 0.0,
            height: 0.0,
            units_per_mm: 0.0,
        }],
        invoice: None,
    }
}

/// Runs parsers in the sandbox: long-lived worker processes ([`pool`]) with a time limit per
/// job, a memory limit and their own process group (so renderers they start die with them).
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The `poststelle` executable (its hidden `extract-worker` command does the work).
    pub exe: PathBuf,
    /// Options passed to the workers.
    pub options: ExtractOptions,
    /// Wall-clock limit per job.
    pub timeout: Duration,
    /// Address-space limit in bytes (0 = none).
    pub memory_limit: u64,
    /// CPU time per job.
    pub cpu_limit: Duration,
    pool: pool::Pool,
    /// How the names of its directories in the temporary directory begin.
    dir_prefix: String,
}

impl Extractor {
    /// Builds an extractor from settings; `exe` is normally `std::env::current_exe()`. Its pool
    /// has `settings.workers` workers, started when first needed.
    pub fn new(exe: PathBuf, settings: &settings::ExtractSettings) -> Self {
        Self::with_dir_prefix(exe, settings, pool::DEFAULT_DIR_PREFIX.into())
    }

    /// [`Extractor::new`] whose directories in the temporary directory (the workers', and the
    /// page lists of searchable PDFs) begin with `dir_prefix` (the daemon's own,
    /// [`pool::owned_dir_prefix`], so that its next start finds what a crash left).
    pub fn with_dir_prefix(
        exe: PathBuf,
        settings: &settings::ExtractSettings,
        dir_prefix: String,
    ) -> Self {
        let mut options: ExtractOptions = settings.into();
        // A sandboxed worker runs in its own directory: relative paths are the daemon's.
        let cwd = std::env::current_dir().unwrap_or_default();
        let absolute = |p: &PathBuf| cwd.join(p);
        options.tessdata = options.tessdata.as_ref().map(absolute);
        let mut read_paths: Vec<PathBuf> =
            settings.sandbox_read_paths.iter().map(absolute).collect();
        read_paths.extend(options.tessdata.clone());
        read_paths.extend(std::env::var_os("TESSDATA_PREFIX").map(PathBuf::from));
        let limits = pool::Limits {
            sandbox: settings.sandbox,
            read_paths,
            cpu_secs: settings.cpu_limit.as_secs().max(1),
            max_output_bytes: settings.max_output_bytes,
            max_json_bytes: settings.max_result_json_bytes(),
            max_processes: settings.max_processes,
        };
        let pool = pool::Pool::new(
            pool::WorkerCommand {
                exe: exe.clone(),
                options: serde_json::to_string(&options).unwrap_or_default(),
                memory_limit: settings.memory_limit_bytes,
                limits,
                dir_prefix: dir_prefix.clone(),
            },
            settings.workers,
        );
        Self {
            exe,
            options,
            timeout: settings.timeout,
            memory_limit: settings.memory_limit_bytes,
            cpu_limit: settings.cpu_limit,
            pool,
            dir_prefix,
        }
    }

    /// What the most recently started worker reported of its sandbox (`None` until a worker
    /// has started).
    pub fn sandbox_status(&self) -> Option<sandbox::Status> {
        self.pool.sandbox_status()
    }

    /// Runs a [`sandbox::Probe`] inside a worker, locked in as for real jobs, and reports
    /// what it could reach (`poststelle check-sandbox` and the tests). The result file it
    /// writes, if any, is read back within the limits like a searchable PDF.
    pub async fn probe(&self, spec: &sandbox::Probe) -> Result<sandbox::ProbeReport, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("poststelle-probe")
            .tempdir()
            .map_err(io)?;
        let file = dir.path().join("probe.json");
        let json = serde_json::to_vec(spec).map_err(|e| ExtractError::Io(e.to_string()))?;
        std::fs::write(&file, json).map_err(io)?;
        let done = self
            .run(
                Job::Probe,
                &file,
                MediaType::Text,
                None,
                pool::Urgency::interactive(),
                Some("result.bin"),
            )
            .await?;
        let mut report: sandbox::ProbeReport = decode(&done.json)?;
        report.result_len = done.file.map(|f| f.len() as u64).unwrap_or(0);
        Ok(report)
    }

    /// Starts every worker and loads its OCR engine, in the background (after real work), so
    /// that the first letter does not wait for it. Failures are left to the first real job.
    pub async fn warm_up(&self) {
        let jobs = (0..self.pool.size()).map(|_| async {
            let _ = self
                .run(
                    Job::Warm,
                    Path::new("/dev/null"),
                    MediaType::Text,
                    None,
                    pool::Urgency::background(i64::MAX),
                    None,
                )
                .await;
        });
        futures::future::join_all(jobs).await;
    }

    /// Process ids of the idle workers (for tests).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.worker_pids()
    }

    /// Extracts the file at `path` (of type `media`): page 1 first, more pages only while text
    /// is missing.
    pub async fn extract(
        &self,
        path: &Path,
        media: MediaType,
        urgency: pool::Urgency,
    ) -> Result<Extraction, ExtractError> {
        let json = self
            .run(Job::Extract, path, media, None, urgency, None)
            .await?
            .json;
        decode(&json)
    }

    /// Recognises page `page` (1-based) of a scan; `None` when the scan has no such page.
    pub async fn ocr_page(
        &self,
        path: &Path,
        media: MediaType,
        page: u32,
        urgency: pool::Urgency,
    ) -> Result<Option<Page>, ExtractError> {
        let json = self
            .run(Job::OcrPage(page), path, media, None, urgency, None)
            .await?
            .json;
        decode(&json)
    }

    /// Makes the searchable PDF (page images + invisible text layer, PDF/A-2b where the input
    /// allows) of the scan at `path` from its recognised `pages`; returns the PDF's bytes and
    /// what was made.
    pub async fn searchable_pdf(
        &self,
        path: &Path,
        media: MediaType,
        pages: &[Page],
        urgency: pool::Urgency,
    ) -> Result<(Vec<u8>, searchable::Made), ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        // Named like the workers' directories: a daemon's next start removes what a crash
        // left (the recognised text of the pages).
        let prefix = format!("{}-pages-", self.dir_prefix.trim_end_matches('-'));
        let input = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .map_err(io)?;
        let list = input.path().join("pages.json");
        let json = serde_json::to_vec(pages).map_err(|e| ExtractError::Io(e.to_string()))?;
        std::fs::write(&list, json).map_err(io)?;
        // The time limit counts per page (image pages are compressed), up to ten times.
        let timeout = self.timeout.saturating_mul(pages.len().clamp(1, 10) as u32);
        let done = self
            .run_for(
                Job::SearchablePdf,
                path,
                media,
                Some(&list),
                urgency,
                timeout,
                Some("result.pdf"),
            )
            .await?;
        let made: searchable::Made = decode(&done.json)?;
        let pdf = done.file.ok_or_else(no_file)?;
        Ok((pdf, made))
    }

    /// Makes the delivery PDF of the e-mail at `path` (header fields, body, list of
    /// attachments; see [`mail::render_pdf`]) in the sandbox; returns the PDF's bytes.
    pub async fn mail_pdf(
        &self,
        path: &Path,
        urgency: pool::Urgency,
    ) -> Result<Vec<u8>, ExtractError> {
        let done = self
            .run(
                Job::MailPdf,
                path,
                MediaType::Eml,
                None,
                urgency,
                Some("result.pdf"),
            )
            .await?;
        decode::<()>(&done.json)?;
        done.file.ok_or_else(no_file)
    }

    /// Draws page `page` (1-based) of the scan or PDF at `path` as a PNG for the web desk, in
    /// the sandbox ahead of other work (a person waits); returns the PNG's bytes.
    pub async fn page_image(
        &self,
        path: &Path,
        media: MediaType,
        page: u32,
    ) -> Result<Vec<u8>, ExtractError> {
        let done = self
            .run(
                Job::PageImage(page),
                path,
                media,
                None,
                pool::Urgency::interactive(),
                Some("result.png"),
            )
            .await?;
        decode::<()>(&done.json)?;
        done.file.ok_or_else(no_file)
    }

    /// Draws page `page` (1-based) of a stack (any page, not only the first few) as a small
    /// PNG for the web desk's stack page, in the sandbox ahead of other work (a person waits).
    pub async fn page_thumbnail(
        &self,
        path: &Path,
        media: MediaType,
        page: u32,
    ) -> Result<Vec<u8>, ExtractError> {
        let done = self
            .run(
                Job::PageThumbnail(page),
                path,
                media,
                None,
                pool::Urgency::interactive(),
                Some("result.png"),
            )
            .await?;
        decode::<()>(&done.json)?;
        done.file.ok_or_else(no_file)
    }

    /// Analyses page `page` (1-based) of the stack at `path` (a PDF or a TIFF: `media`) in the
    /// sandbox (see [`batch::analyse`]); `None` when the stack has no such page.
    pub async fn analyse_page(
        &self,
        path: &Path,
        media: MediaType,
        page: u32,
        spec: &batch::AnalyseSpec,
        urgency: pool::Urgency,
    ) -> Result<Option<batch::PageAnalysis>, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("poststelle-analyse")
            .tempdir()
            .map_err(io)?;
        let file = dir.path().join("spec.json");
        let json = serde_json::to_vec(spec).map_err(|e| ExtractError::Io(e.to_string()))?;
        std::fs::write(&file, json).map_err(io)?;
        let done = self
            .run(
                Job::AnalysePage(page),
                path,
                media,
                Some(&file),
                urgency,
                None,
            )
            .await?;
        decode(&done.json)
    }

    /// Makes the PDF of `pages` (1-based, in order) of the stack at `path` in the sandbox
    /// (see [`batch::select_pages`]); returns its bytes.
    pub async fn select_pages(
        &self,
        path: &Path,
        media: MediaType,
        pages: &[u32],
        urgency: pool::Urgency,
    ) -> Result<Vec<u8>, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("poststelle-select")
            .tempdir()
            .map_err(io)?;
        let file = dir.path().join("pages.json");
        let json = serde_json::to_vec(pages).map_err(|e| ExtractError::Io(e.to_string()))?;
        std::fs::write(&file, json).map_err(io)?;
        let done = self
            .run(
                Job::SelectPages,
                path,
                media,
                Some(&file),
                urgency,
                Some("result.pdf"),
            )
            .await?;
        decode::<u32>(&done.json)?;
        done.file.ok_or_else(no_file)
    }

    /// Reads how the scan at `path` was made (see [`scan::read`]) in the sandbox, in the
    /// background: resolution, colour mode and pages, for the capture record.
    pub async fn scan_parameters(
        &self,
        path: &Path,
        media: MediaType,
        urgency: pool::Urgency,
    ) -> Result<scan::ScanParameters, ExtractError> {
        let done = self
            .run(Job::ScanParameters, path, media, None, urgency, None)
            .await?;
        decode(&done.json)
    }

    /// Runs one job on a pooled worker under the time limit of extraction; returns its JSON
    /// result and the file `result_file` it made, if asked for.
    async fn run(
        &self,
        job: Job,
        path: &Path,
        media: MediaType,
        pages: Option<&Path>,
        urgency: pool::Urgency,
        result_file: Option<&str>,
    ) -> Result<JobOutput, ExtractError> {
        self.run_for(job, path, media, pages, urgency, self.timeout, result_file)
            .await
    }

    /// Like [`Extractor::run`], under `timeout` (the CPU limit grows with it).
    #[allow(clippy::too_many_arguments)]
    async fn run_for(
        &self,
        job: Job,
        path: &Path,
        media: MediaType,
        pages: Option<&Path>,
        urgency: pool::Urgency,
        timeout: Duration,
        result_file: Option<&str>,
    ) -> Result<JobOutput, ExtractError> {
        let scale = (timeout.as_secs_f64() / self.timeout.as_secs_f64().max(1.0)).max(1.0);
        let cpu_secs = (self.cpu_limit.as_secs_f64() * scale).ceil() as u64;
        let request = pool::Request {
            job: job.as_arg(),
            media: media.mime().to_string(),
            file: path.to_path_buf(),
            out: PathBuf::new(),
            pages: pages.map(Path::to_path_buf),
            cpu_secs: cpu_secs.max(1),
            result_file: result_file.map(str::to_string),
        };
        let out = self.pool.run(&request, timeout, urgency).await?;
        let json = out
            .json
            .ok_or_else(|| ExtractError::Crashed("the worker wrote no result".into()))?;
        Ok(JobOutput {
            json,
            file: out.file,
        })
    }
}

struct JobOutput {
    json: Vec<u8>,
    file: Option<Vec<u8>>,
}

fn no_file() -> ExtractError {
    ExtractError::Crashed("the worker made no result file".into())
}

fn decode<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, ExtractError> {
    serde_json::from_slice::<Result<T, ExtractError>>(json)
        .map_err(|e| ExtractError::Crashed(format!("unreadable worker result: {e}")))?
}

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Extract text (the JSON result is an [`Extraction`]).
    Extract,
    /// Recognise one page (1-based) of a scan (the JSON result is an `Option<Page>`).
    OcrPage(u32),
    /// Make a searchable PDF from the recognised pages (written next to the JSON result as
    /// `result.pdf`; the result is a [`searchable::Made`]).
    SearchablePdf,
    /// Make the delivery PDF of an e-mail (written as `result.pdf`, like the searchable PDF).
    MailPdf,
    /// Draw one page (1-based) as a PNG for people to look at (written as `result.png`).
    PageImage(u32),
    /// Draw one page (1-based) of a stack as a small PNG (written as `result.png`).
    PageThumbnail(u32),
    /// Analyse one page (1-based) of a stack (the side file is a [`batch::AnalyseSpec`]; the
    /// result is an `Option<batch::PageAnalysis>`).
    AnalysePage(u32),
    /// Write the PDF of some pages of a stack (the side file lists them as JSON; written as
    /// `result.pdf`; the result is the page count).
    SelectPages,
    /// Read how a scan was made (resolution, colour mode, pages; the result is a
    /// [`scan::ScanParameters`]) for the capture record.
    ScanParameters,
    /// Load the OCR engine and do nothing else (a worker warming up).
    Warm,
    /// Try accesses from inside the sandbox (the input is a [`sandbox::Probe`] as JSON; the
    /// result is a [`sandbox::ProbeReport`]); for `check-sandbox` and the tests.
    Probe,
}

impl Job {
    /// The name in a worker request.
    pub fn as_arg(self) -> String {
        match self {
            Job::Extract => "extract".into(),
            Job::OcrPage(n) => format!("ocr-page:{n}"),
            Job::SearchablePdf => "searchable-pdf".into(),
            Job::MailPdf => "mail-pdf".into(),
            Job::PageImage(n) => format!("page-image:{n}"),
            Job::PageThumbnail(n) => format!("page-thumbnail:{n}"),
            Job::AnalysePage(n) => format!("analyse-page:{n}"),
            Job::SelectPages => "select-pages".into(),
            Job::ScanParameters => "scan-parameters".into(),
            Job::Warm => "warm".into(),
            Job::Probe => "probe".into(),
        }
    }

    /// Parses [`Job::as_arg`].
    pub fn parse(s: &str) -> Option<Self> {
        let page = |n: &str| n.parse().ok().filter(|n: &u32| *n >= 1);
        if let Some(n) = s.strip_prefix("page-image:") {
            return page(n).map(Job::PageImage);
        }
        if let Some(n) = s.strip_prefix("page-thumbnail:") {
            return page(n).map(Job::PageThumbnail);
        }
        if let Some(n) = s.strip_prefix("ocr-page:") {
            return page(n).map(Job::OcrPage);
        }
        if let Some(n) = s.strip_prefix("analyse-page:") {
            return page(n).map(Job::AnalysePage);
        }
        [
            Job::Extract,
            Job::SearchablePdf,
            Job::MailPdf,
            Job::SelectPages,
            Job::ScanParameters,
            Job::Warm,
            Job::Probe,
        ]
        .into_iter()
        .find(|j| j.as_arg() == s)
    }
}

fn panic_error<T>(media: MediaType, p: Box<dyn std::any::Any + Send>) -> Result<T, ExtractError> {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    Err(match media {
        MediaType::Pdf => ExtractError::BrokenPdf(format!("parser panicked: {msg}")),
        MediaType::Xml => ExtractError::BrokenXml(format!("parser panicked: {msg}")),
        MediaType::Eml => ExtractError::BrokenMail(format!("parser panicked: {msg}")),
        _ => ExtractError::BrokenImage(format!("decoder panicked: {msg}")),
    })
}

/// The worker side of one job: runs it (panics are caught and reported as errors of the
/// input), writes files it makes beside `out` and its JSON result to `out`.
pub fn run_job(
    job: Job,
    media: MediaType,
    path: &Path,
    out: &Path,
    pages: Option<&Path>,
    opts: &ExtractOptions,
) -> std::io::Result<()> {
    let io = |e: std::io::Error| ExtractError::Io(e.to_string());
    match job {
        Job::Extract => guarded(media, out, || extract_in_process(path, media, opts)),
        Job::OcrPage(n) => guarded(media, out, || ocr::page(path, media, n, opts)),
        Job::SearchablePdf => guarded(media, out, || {
            let pages: Vec<Page> = match pages {
                Some(p) => {
                    let json = std::fs::read(p).map_err(io)?;
                    serde_json::from_slice(&json).map_err(|e| ExtractError::Io(e.to_string()))?
                }
                None => Vec::new(),
            };
            searchable::make(path, media, opts, &pages, &out.with_file_name("result.pdf"))
        }),
        Job::MailPdf => guarded(media, out, || {
            let bytes = std::fs::read(path).map_err(io)?;
            let made = mail::render_pdf(&bytes, opts)?;
            std::fs::write(out.with_file_name("result.pdf"), made).map_err(io)
        }),
        Job::AnalysePage(n) => guarded(media, out, || {
            let spec: batch::AnalyseSpec = match pages {
                Some(p) => serde_json::from_slice(&std::fs::read(p).map_err(io)?)
                    .map_err(|e| ExtractError::Io(e.to_string()))?,
                None => batch::AnalyseSpec::default(),
            };
            batch::analyse(path, media, n, opts, &spec)
        }),
        Job::SelectPages => guarded(media, out, || {
            let list: Vec<u32> = match pages {
                Some(p) => serde_json::from_slice(&std::fs::read(p).map_err(io)?)
                    .map_err(|e| ExtractError::Io(e.to_string()))?,
                None => Vec::new(),
            };
            batch::select_pages(path, media, &list, &out.with_file_name("result.pdf"), opts)
        }),
        Job::ScanParameters => guarded(media, out, || scan::read(path, media, opts)),
        Job::Warm => guarded(media, out, || ocr::with_engine(opts, |_| Ok(()))),
        Job::PageImage(n) => guarded(media, out, || {
            let made = preview::page_png(path, media, n, opts)?;
            std::fs::write(out.with_file_name("result.png"), made).map_err(io)
        }),
        Job::PageThumbnail(n) => guarded(media, out, || {
            let made = preview::page_thumbnail(path, media, n, opts)?;
            std::fs::write(out.with_file_name("result.png"), made).map_err(io)
        }),
        Job::Probe => guarded(media, out, || {
            let spec: sandbox::Probe = serde_json::from_slice(&std::fs::read(path).map_err(io)?)
                .map_err(|e| ExtractError::Io(e.to_string()))?;
            Ok(sandbox::probe(&spec, &out.with_file_name("result.bin")))
        }),
    }
}

fn guarded<T: Serialize>(
    media: MediaType,
    out: &Path,
    work: impl FnOnce() -> Result<T, ExtractError>,
) -> std::io::Result<()> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|p| panic_error(media, p));
    let json = serde_json::to_vec(&result).map_err(std::io::Error::other)?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_by_content_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n...", "x.pdf"), Ok(MediaType::Pdf));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nxxxx", "scan.bin"),
            Ok(MediaType::Png)
        );
        assert_eq!(sniff(b"II*\0abc", "a.tif"), Ok(MediaType::Tiff));
        assert_eq!(sniff(b"Hallo", "brief.txt"), Ok(MediaType::Text));
        assert_eq!(sniff(b"", "leer.pdf"), Err(ExtractError::Empty));
        assert!(matches!(
            sniff(b"<html>", "fake.pdf"),
            Err(ExtractError::UnknownFormat { .. })
        ));
        assert!(matches!(
            sniff(b"ab\0cd", "bin.txt"),
            Err(ExtractError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn sniff_xml_invoices_and_refuse_other_xml() {
        let ubl = b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\"/>";
        assert_eq!(sniff(ubl, "r.xml"), Ok(MediaType::Xml));
        let cii = b"<rsm:CrossIndustryInvoice xmlns:rsm=\"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100\"/>";
        assert_eq!(sniff(cii, "R.XML"), Ok(MediaType::Xml));
        let other = sniff(b"<?xml version=\"1.0\"?><order/>", "bestellung.xml");
        assert_eq!(other, Err(ExtractError::XmlNotInvoice("order".into())));
        let reason = other.err().map(|e| e.reason_de()).unwrap_or_default();
        assert!(
            reason.contains("keine E-Rechnung") && reason.contains("order"),
            "{reason}"
        );
        assert!(matches!(
            sniff(b"<?xml version=\"1.0\"?><!DOCTYPE x><Invoice/>", "x.xml"),
            Err(ExtractError::BrokenXml(_))
        ));
        assert_eq!(
            MediaType::from_mime("application/xml"),
            Some(MediaType::Xml)
        );
    }

    #[test]
    fn latin1_text_is_read() {
        let e = plain_text(b"Stra\xdfe M\xfcller\r\n");
        assert_eq!(e.pages[0].text, "Straße Müller\n");
    }

    #[test]
    fn every_error_has_a_german_reason() {
        for e in [
            ExtractError::Empty,
            ExtractError::Encrypted("x".into()),
            ExtractError::BrokenPdf("x".into()),
            ExtractError::Timeout(3),
            ExtractError::XmlNotInvoice("html".into()),
            ExtractError::BrokenXml("x".into()),
        ] {
            let r = e.reason_de();
            assert!(r.ends_with('.'), "{r}");
            assert!(!r.contains("error"), "{r}");
        }
    }
}
