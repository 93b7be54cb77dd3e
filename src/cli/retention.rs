//! `poststelle purge` and `poststelle erase`: retention and erasure requests (DSGVO);
//! `poststelle audit verify`: the audit trail's hash chain.

use crate::config::Settings;
use crate::domain::DocumentId;
use crate::retention::{self, ExpiringFolders};
use crate::store::Store;
use crate::store::blobs::BlobStore;
use anyhow::{Context, bail};
use std::process::ExitCode;

/// The store and blob directory of `settings`.
async fn open(settings: &Settings) -> anyhow::Result<(Store, BlobStore)> {
    let store = Store::open(&settings.store.url).await?;
    let blobs = BlobStore::open(&settings.store.blobs)
        .with_context(|| format!("opening {}", settings.store.blobs.display()))?;
    Ok((store, blobs))
}

/// `poststelle purge [--dry-run] [--json]`: one purge with the configured periods.
pub async fn purge(settings: &Settings, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let (store, blobs) = open(settings).await?;
    let r = &settings.retention;
    let folders: ExpiringFolders = vec![
        (settings.hot_folder.processed.clone(), r.content_days),
        (settings.hot_folder.quarantine.clone(), r.quarantine_days),
    ];
    let report = retention::purge(&store, &blobs, r, &folders, dry_run).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    println!(
        "retention: content {} days after delivery, quarantine {} days, mails {} days{}",
        r.content_days,
        r.quarantine_days,
        r.mail_days,
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    println!("{verb}: content of {} documents", report.documents.len());
    for d in &report.documents {
        println!("  {}  {:<11}  since {}", d.id, d.state, d.updated_at);
    }
    println!("{verb}: {} mail bodies", report.mails);
    println!(
        "{verb}: names of {} quarantine entries without a document",
        report.quarantine_entries
    );
    println!("{verb}: {} files", report.files.len());
    for f in &report.files {
        println!("  {}", f.display());
    }
    if !dry_run {
        println!("blobs deleted: {}", report.blobs);
    }
    Ok(ExitCode::SUCCESS)
}

/// `poststelle erase --document ID | --sender ADDRESS --by NAME`: an erasure request.
pub async fn erase(
    settings: &Settings,
    document: Option<&str>,
    sender: Option<&str>,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let (store, blobs) = open(settings).await?;
    let actor = format!("erasure:{by}");
    match (document, sender) {
        (Some(d), None) => {
            let id = DocumentId::parse(d).with_context(|| format!("{d:?} is not a document id"))?;
            if retention::erase_document(&store, &blobs, &id, &actor).await? {
                println!("{id}: content erased");
            } else {
                println!("{id}: was erased before");
            }
        }
        (None, Some(s)) => {
            let erased = retention::erase_sender(&store, &blobs, s, &actor).await?;
            println!("{} documents of the sender erased", erased.len());
            for id in erased {
                println!("  {id}");
            }
        }
        _ => bail!("give --document ID or --sender ADDRESS"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `poststelle audit verify [--json]`: recomputes the audit trail's hash chain. Exit code 0
/// when it holds, 1 at a break (named by its event id).
pub async fn audit_verify(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(&settings.store.url).await?;
    let report = store.verify_audit().await?;
    let ok = report.first_break.is_none();
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = ok.into();
        println!("{v}");
    } else {
        println!("audit: {} events verified", report.verified);
        if let Some((id, hash)) = &report.head {
            println!("head: event {id} {hash}");
        }
        match &report.first_break {
            None => println!("chain intact"),
            Some(b) => println!("BROKEN at event {}: {}", b.event_id, b.reason),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
