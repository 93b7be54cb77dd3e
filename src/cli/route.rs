//! `route` and `extract`: what the daemon would read and decide for files, nothing stored.

use crate::app::build_router;
use crate::config::Settings;
use crate::extract::{self, Extractor};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `route`: reads each file as the daemon would and prints the [`Router`](crate::classify::Router)'s decision (nothing
/// is stored or delivered). The daemon decides with the same router, so both agree.
pub async fn route(settings: &Settings, json: bool, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let router = Arc::new(build_router(settings)?);
    let extractor = Extractor::new(std::env::current_exe()?, &settings.extract);
    Ok(each_file(&extractor, files, json, |name, ex| {
        let r = router.clone();
        async move {
            let d = tokio::task::spawn_blocking(move || r.route(&ex).decision).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": name, "mailbox": d.mailbox, "confidence": d.confidence,
                        "decided_by": d.decided_by, "needs_review": d.needs_review, "explanation": d.explanation,
                    })
                );
                return Ok(());
            }
            let mb = d.mailbox.as_ref().map(|m| m.as_str()).unwrap_or("-");
            let mbname = d
                .mailbox
                .as_ref()
                .and_then(|m| settings.mailbox(m))
                .map(|m| m.name.as_str())
                .unwrap_or("");
            println!(
                "{name}: {mb} {mbname} ({:.0} %, {:?}){}",
                d.confidence * 100.0,
                d.decided_by,
                if d.needs_review { " -> Prüfung" } else { "" }
            );
            for h in &d.explanation.rules {
                println!(
                    "    Regel {} [{}] {:?} {}",
                    h.rule,
                    h.zone,
                    h.matched,
                    h.position.clone().unwrap_or_default()
                );
            }
            if let Some(r) = &d.explanation.review_reason {
                println!("    {r}");
            }
            Ok(())
        }
    })
    .await)
}

/// `extract`: a file's text as the daemon reads it (text layer or OCR), with its zones.
pub async fn extract(
    settings: &Settings,
    json: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let extractor = Extractor::new(std::env::current_exe()?, &settings.extract);
    Ok(each_file(&extractor, files, json, |name, ex| async move {
        let zones = extract::zones::find(&ex, &settings.address_markers);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "file": name, "text": ex.text(), "method": ex.method, "pages": ex.pages,
                    "page_count": ex.page_count, "address_field": zones.address, "subject": zones.subject,
                })
            );
        } else {
            println!(
                "==> {name} ({:?}, {} of {} pages read)",
                ex.method,
                ex.pages.len(),
                ex.page_count
            );
            println!(
                "address field: {:?}\nsubject: {:?}\n{}",
                zones.address,
                zones.subject,
                ex.text()
            );
        }
        Ok(())
    })
    .await)
}

/// Extracts each file in turn and hands it to `each`. A file that fails is reported (a JSON
/// line or a message on stderr) and the run goes on; the exit code says whether any failed.
async fn each_file<F, Fut>(
    extractor: &Extractor,
    files: &[PathBuf],
    json: bool,
    mut each: F,
) -> ExitCode
where
    F: FnMut(String, extract::Extraction) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut failed = false;
    for file in files {
        let name = file.display().to_string();
        let result = match extract_file(extractor, file).await {
            Ok(ex) => each(name.clone(), ex).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            failed = true;
            report_file_error(json, &name, &e);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads, recognises and extracts one file as the daemon would (sandboxed).
async fn extract_file(extractor: &Extractor, file: &Path) -> anyhow::Result<extract::Extraction> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    let media = extract::sniff(&bytes, &name).map_err(|e| anyhow::anyhow!(e.reason_de()))?;
    extractor
        .extract(file, media, extract::pool::Urgency::interactive())
        .await
        .map_err(|e| anyhow::anyhow!("{} ({e})", e.reason_de()))
}

/// One failed file of `route`/`extract`: a JSON line or a message on stderr.
fn report_file_error(json: bool, name: &str, e: &anyhow::Error) {
    if json {
        println!(
            "{}",
            serde_json::json!({"file": name, "error": format!("{e:#}")})
        );
    } else {
        eprintln!("{name}: error: {e:#}");
    }
}
