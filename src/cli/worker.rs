//! The hidden `extract-worker` command: the sandboxed child process in which every parser runs
//! (PDF, images, OCR, e-mail). It writes its result to a file and exits.

use crate::extract::{self, MediaType};
use std::path::Path;
use std::process::ExitCode;

/// Runs one job of the sandboxed extract worker (a child process the daemon starts).
pub fn run(job: &str, media: &str, options: &str, out: &Path, file: &Path) -> ExitCode {
    let Some(job) = extract::Job::parse(job) else {
        eprintln!("unknown job {job}");
        return ExitCode::FAILURE;
    };
    let Some(media) = MediaType::from_mime(media) else {
        eprintln!("unknown media type {media}");
        return ExitCode::FAILURE;
    };
    let opts: extract::ExtractOptions = match serde_json::from_str(options) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bad options: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Parser panics are caught and reported as results; keep stderr quiet about them.
    std::panic::set_hook(Box::new(|_| {}));
    let run = match job {
        extract::Job::Extract => extract::run_worker(file, media, &opts, out),
        extract::Job::SearchablePdf => extract::run_searchable_worker(file, media, &opts, out),
        extract::Job::MailPdf => extract::run_mail_pdf_worker(file, &opts, out),
        extract::Job::PageImage(page) => {
            extract::run_page_image_worker(file, media, page, &opts, out)
        }
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write result: {e}");
            ExitCode::FAILURE
        }
    }
}
