//! The `[extract]` section: OCR settings, the sandbox's limits, e-mail limits and the retries of
//! the extraction and classification stages.

use crate::config::problem::Problems;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[extract]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExtract {
    language: String,
    tessdata: Option<PathBuf>,
    dpi: u32,
    min_text_chars: usize,
    timeout_secs: u64,
    memory_limit_mb: u64,
    max_pages: u32,
    max_image_megapixels: u64,
    workers: usize,
    mail_max_attachments: u32,
    mail_max_depth: u32,
    mail_max_decoded_mb: u64,
    max_attempts: u32,
    retry_base_secs: u64,
    retry_max_secs: u64,
    sandbox: bool,
    sandbox_read_paths: Vec<PathBuf>,
    cpu_limit_secs: u64,
    max_output_mb: u64,
    max_processes: u64,
    worker_fault_attempts: u32,
}

impl Default for RawExtract {
    fn default() -> Self {
        Self {
            language: "deu".into(),
            tessdata: None,
            dpi: 300,
            min_text_chars: 60,
            timeout_secs: 120,
            memory_limit_mb: 2048,
            max_pages: 30,
            max_image_megapixels: 80,
            // One worker per core: OCR is CPU-bound and each worker runs one OCR thread.
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            mail_max_attachments: 20,
            mail_max_depth: 3,
            mail_max_decoded_mb: 50,
            max_attempts: 5,
            retry_base_secs: 2,
            retry_max_secs: 300,
            sandbox: true,
            sandbox_read_paths: Vec::new(),
            // 0: the same as timeout_secs (one OCR thread cannot use more CPU than wall time).
            cpu_limit_secs: 0,
            max_output_mb: 512,
            max_processes: 512,
            worker_fault_attempts: 3,
        }
    }
}

/// Extraction settings and limits.
#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// Tesseract language(s), e.g. `deu`.
    pub language: String,
    /// Tesseract data directory, when not the system default.
    pub tessdata: Option<PathBuf>,
    /// Rendering resolution for scanned PDFs.
    pub dpi: u32,
    /// A PDF text layer with fewer characters than this counts as "no text" and is OCR'd.
    pub min_text_chars: usize,
    /// Wall-clock limit for extracting one document.
    pub timeout: Duration,
    /// Address-space limit of the extraction process, in bytes.
    pub memory_limit_bytes: u64,
    /// Pages read per document.
    pub max_pages: u32,
    /// Largest image accepted, in pixels (image bombs are refused before decoding).
    pub max_image_pixels: u64,
    /// Sandboxed workers (long-lived processes, one OCR thread each; default: the number of
    /// cores): pages recognised in parallel.
    pub workers: usize,
    /// Attachments per e-mail at most (nested messages count with their own).
    pub mail_max_attachments: u32,
    /// Nesting depth of forwarded messages (`message/rfc822`) at most.
    pub mail_max_depth: u32,
    /// Decoded size of all parts of an e-mail at most, in bytes.
    pub mail_max_decoded_bytes: u64,
    /// Attempts of the extraction and classification stages for one document (failures that
    /// are not the input's fault) before it becomes a dead letter; at least 1.
    pub max_attempts: u32,
    /// First delay before a failed stage is tried again.
    pub retry_base: Duration,
    /// Longest delay between two attempts of a stage.
    pub retry_max: Duration,
    /// Whether workers lock themselves in (environment, namespaces, Landlock, seccomp and the
    /// limits below; see [`crate::extract::sandbox`]). Off only for diagnosis.
    pub sandbox: bool,
    /// Further paths a sandboxed worker may read (and execute from), e.g. a tessdata directory
    /// or fonts outside `/usr`.
    pub sandbox_read_paths: Vec<PathBuf>,
    /// CPU time a worker may use for one job (`RLIMIT_CPU`, renewed per job; a searchable PDF
    /// gets as many times more as its time limit).
    pub cpu_limit: Duration,
    /// Largest file a worker may write (`RLIMIT_FSIZE`) and largest result (PDF, page image)
    /// the daemon reads back, in bytes.
    pub max_output_bytes: u64,
    /// Processes and threads the worker's user may have when the worker starts one
    /// (`RLIMIT_NPROC`, counted per user; not enforced for root).
    pub max_processes: u64,
    /// Attempts at reading one document when the sandboxed worker runs out of time or dies
    /// (which may be the machine's load as well as the file) before the document is
    /// quarantined; the attempts wait for the stage's backoff. At least 1.
    pub worker_fault_attempts: u32,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        validate(
            RawExtract::default(),
            &mut Problems::new(std::path::Path::new(""), ""),
        )
    }
}

impl ExtractSettings {
    /// Largest JSON result the daemon reads back from a worker: 64 MiB, or less when
    /// [`ExtractSettings::max_output_bytes`] is smaller.
    pub fn max_result_json_bytes(&self) -> u64 {
        self.max_output_bytes.min(64 * 1024 * 1024)
    }
}

/// Validates `[extract]`.
pub fn validate(raw: RawExtract, problems: &mut Problems) -> ExtractSettings {
    if raw.workers == 0 {
        problems.push_key(
            &["extract", "workers"],
            "extract.workers must be at least 1",
            None,
        );
    }
    if raw.max_attempts == 0 {
        problems.push_key(
            &["extract", "max_attempts"],
            "extract.max_attempts must be at least 1",
            Some("e.g. 5".into()),
        );
    }
    ExtractSettings {
        language: raw.language,
        tessdata: raw.tessdata,
        dpi: raw.dpi,
        min_text_chars: raw.min_text_chars,
        timeout: Duration::from_secs(raw.timeout_secs.max(1)),
        memory_limit_bytes: raw.memory_limit_mb * 1024 * 1024,
        max_pages: raw.max_pages.max(1),
        max_image_pixels: raw.max_image_megapixels * 1_000_000,
        workers: raw.workers.max(1),
        mail_max_attachments: raw.mail_max_attachments,
        mail_max_depth: raw.mail_max_depth,
        mail_max_decoded_bytes: raw.mail_max_decoded_mb * 1024 * 1024,
        max_attempts: raw.max_attempts.max(1),
        retry_base: Duration::from_secs(raw.retry_base_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs.max(1)),
        sandbox: raw.sandbox,
        sandbox_read_paths: raw.sandbox_read_paths,
        cpu_limit: Duration::from_secs(if raw.cpu_limit_secs == 0 {
            raw.timeout_secs.max(1)
        } else {
            raw.cpu_limit_secs
        }),
        max_output_bytes: raw.max_output_mb.max(1) * 1024 * 1024,
        max_processes: raw.max_processes,
        worker_fault_attempts: raw.worker_fault_attempts.max(1),
    }
}
