//! The hidden `extract-worker` command: the sandboxed child process in which every parser runs
//! (PDF, images, OCR, e-mail). It locks itself in first ([`crate::extract::sandbox::apply`]),
//! then stays up for many jobs (one per line on standard input, see [`crate::extract::pool`]),
//! keeping its OCR engine loaded, and writes each result to a file.

use crate::extract;
use std::process::ExitCode;

/// Locks the process into the sandbox described by `sandbox` (JSON; none: no sandbox), then
/// serves jobs until standard input closes.
pub fn serve(options: &str, sandbox: Option<&str>) -> ExitCode {
    let opts: extract::ExtractOptions = match serde_json::from_str(options) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bad options: {e}");
            return ExitCode::FAILURE;
        }
    };
    let policy: extract::sandbox::Policy = match sandbox.map(serde_json::from_str).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            eprintln!("bad sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before anything else, while the process has one thread: nothing untrusted has been read.
    let status = extract::sandbox::apply(&policy);
    // Parser panics are caught and reported as results; keep stderr quiet about them.
    std::panic::set_hook(Box::new(|_| {}));
    let served = extract::pool::serve(&status, |job, media, file, out, pages| {
        extract::run_job(job, media, file, out, pages, &opts)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
