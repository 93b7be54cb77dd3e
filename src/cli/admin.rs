//! Operating commands: `check-config`, `documents`, `quarantine`, `model`, `digest`.

use super::{ModelCommand, QuarantineCommand};
use crate::config::Settings;
use crate::domain::DocState;
use crate::train::Registry;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::ExitCode;

/// `documents list`: newest first; a dead letter or quarantined document shows its reason.
pub async fn documents_list(
    settings: &Settings,
    json: bool,
    state: Option<&str>,
    limit: i64,
) -> anyhow::Result<ExitCode> {
    let store = crate::store::Store::open(&settings.store.url).await?;
    let state = match state {
        Some(s) => Some(DocState::parse(s).with_context(|| format!("unknown state {s}"))?),
        None => None,
    };
    for d in store.list(state, limit).await? {
        if json {
            println!("{}", serde_json::to_string(&d)?);
        } else {
            let reason = match (d.state, &d.reason) {
                (DocState::DeadLetter | DocState::Quarantined, Some(r)) => format!("  ({r})"),
                _ => String::new(),
            };
            println!(
                "{}  {:<11}  {:<6}  {:>5}  {}{reason}",
                d.id,
                d.state,
                d.mailbox.as_ref().map(|m| m.as_str()).unwrap_or("-"),
                d.confidence
                    .map(|c| format!("{:.0}%", c * 100.0))
                    .unwrap_or_default(),
                d.original_name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `quarantine list|retry`.
pub async fn quarantine(
    settings: &Settings,
    command: QuarantineCommand,
) -> anyhow::Result<ExitCode> {
    let store = crate::store::Store::open(&settings.store.url).await?;
    match command {
        QuarantineCommand::List { json, limit } => {
            for e in store.quarantine_entries(limit).await? {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{}  {}  {:<36}  {}  ({})",
                        e.id,
                        e.at,
                        e.document_id.as_deref().unwrap_or("-"),
                        e.original_name,
                        e.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Retry { id } => {
            let doc = crate::domain::DocumentId::parse(&id)
                .with_context(|| format!("„{id}“ ist keine Dokument-ID"))?;
            match store.retry_quarantined(&doc, &super::users::actor()).await {
                Ok(()) => {
                    println!("Dokument {doc} wird erneut gelesen.");
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::store::StoreError::Conflict { state, .. }) => {
                    eprintln!(
                        "Dokument {doc} ist im Zustand „{state}“, nicht in Quarantäne; nichts geändert."
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(crate::store::StoreError::NotFound(_)) => {
                    eprintln!("Dokument {doc} gibt es nicht.");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// `model list|activate|rollback`.
pub async fn model(settings: &Settings, command: ModelCommand) -> anyhow::Result<ExitCode> {
    let reg = Registry::new(&settings.classify.models);
    match command {
        ModelCommand::List => {
            for v in reg.list() {
                let mark = match (v.active, v.shadow) {
                    (true, _) => "*",
                    (false, true) => "s",
                    _ => " ",
                };
                match (&v.meta, &v.problem) {
                    (Some(m), _) => println!("{mark} {}  {}", v.version, m),
                    (None, Some(p)) => println!("{mark} {}  UNUSABLE: {p}", v.version),
                    _ => println!("{mark} {}", v.version),
                }
            }
        }
        ModelCommand::Activate { version } => {
            reg.activate(&version)?;
            println!("activated {version}");
        }
        ModelCommand::Rollback => println!("activated {}", reg.rollback()?),
        ModelCommand::Shadow { off: true, .. } => match reg.clear_shadow()? {
            Some(v) => println!("shadow of {v} stopped (its logged decisions are kept)"),
            None => println!("no version was running in shadow"),
        },
        ModelCommand::Shadow { version, .. } => {
            let version = version.context("a version to run in shadow, or --off")?;
            reg.set_shadow(&version)?;
            println!(
                "{version} runs in shadow beside the active version {} (the daemon picks it up within seconds); \
                 see `poststelle model compare`",
                reg.active_version().unwrap_or_else(|| "-".into())
            );
        }
        ModelCommand::Compare { version, json } => {
            let store = crate::store::Store::open(&settings.store.url).await?;
            let comparison =
                crate::shadow::compare_in_store(&store, version.as_deref(), reg.shadow_version())
                    .await?;
            match comparison {
                None if json => println!("null"),
                None => println!(
                    "no shadow decisions logged yet: start one with `poststelle model shadow <version>`"
                ),
                Some(c) if json => println!("{}", serde_json::to_string(&c)?),
                Some(c) => print_comparison(&c),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The comparison for people: both versions' scores side by side, then the verdict.
fn print_comparison(c: &crate::shadow::Comparison) {
    if c.logged == 0 {
        println!(
            "no decisions of {} logged yet: the daemon logs them for every document it routes \
             while the version is in shadow",
            c.shadow_version
        );
        return;
    }
    let actives = if c.active_versions.is_empty() {
        "rules alone".to_string()
    } else {
        c.active_versions.join(", ")
    };
    println!(
        "shadow {} beside active {actives}: {} documents logged, {} with a known outcome, {} where they disagree",
        c.shadow_version, c.logged, c.known, c.disagreements
    );
    let pct = |x: f64| format!("{:5.1} %", x * 100.0);
    println!("                 active      shadow");
    println!(
        "top-1            {}     {}   ({} / {} right)",
        pct(c.active.top1),
        pct(c.shadow.top1),
        c.active.right,
        c.shadow.right
    );
    println!(
        "straight-through {}     {}   ({} / {})",
        pct(c.active.straight_through_share),
        pct(c.shadow.straight_through_share),
        c.active.straight_through,
        c.shadow.straight_through
    );
    let prec = |p: Option<f64>| p.map(pct).unwrap_or_else(|| "      -".into());
    println!(
        "  precision      {}     {}   ({} / {} into a wrong mailbox)",
        prec(c.active.precision),
        prec(c.shadow.precision),
        c.active.straight_through_wrong(),
        c.shadow.straight_through_wrong()
    );
    println!(
        "shadow right, active wrong: {}   active right, shadow wrong: {}",
        c.shadow_right_active_wrong, c.active_right_shadow_wrong
    );
    for e in &c.examples {
        let side = |d: &crate::store::shadow::SideDecision| {
            format!(
                "{} {:.2}{}",
                d.mailbox.as_deref().unwrap_or("-"),
                d.confidence,
                if d.review { " review" } else { "" }
            )
        };
        println!(
            "  {}  outcome {:<4} active {}  shadow {}",
            e.document_id,
            e.outcome.as_deref().unwrap_or("?"),
            side(&e.active),
            side(&e.shadow)
        );
    }
    println!("{}", c.verdict);
}

/// `digest`: prints the digests due now, or queues and sends them.
pub async fn digest(settings: Settings, send: bool) -> anyhow::Result<ExitCode> {
    if send && !settings.outgoing.enabled {
        bail!("outgoing mail is switched off ([outgoing] enabled = false)");
    }
    let store = crate::store::Store::open(&settings.store.url).await?;
    let outgoing = crate::outgoing::Outgoing::new(
        store,
        settings.outgoing.clone(),
        settings.outgoing_recipients(),
    );
    let digests = outgoing.digests(chrono::Utc::now(), send, false).await?;
    if digests.is_empty() {
        println!("no digest recipients configured (digest_to in [[mailboxes]] or [review])");
    }
    for d in &digests {
        println!(
            "==> {} to {}: {}\n\n{}",
            d.mailbox,
            d.to.join(", "),
            d.subject,
            d.body
        );
    }
    if send {
        let pass = outgoing.send_now().await?;
        println!(
            "sent: {}, to be retried: {}, given up: {}",
            pass.sent, pass.retried, pass.dead
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// `check-sandbox`: starts one extraction worker as the daemon does and tries, from inside it,
/// to read the API token file, the database, the blob store and the hot folder, to write into
/// the blob store and the processed folder, to connect to the API's port, plus what `read`,
/// `write` and `connect` name; prints the sandbox's status and every attempt. Exit code 1 when
/// anything was reachable (or the sandbox is off).
pub async fn check_sandbox(
    settings: &Settings,
    json: bool,
    read: Vec<std::path::PathBuf>,
    write: Vec<std::path::PathBuf>,
    connect: Vec<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    use crate::extract::{Extractor, sandbox};
    let mut spec = sandbox::Probe {
        read,
        write,
        connect,
        ..Default::default()
    };
    spec.read.extend(settings.api.token_file.iter().cloned());
    if let Some(db) = crate::store::lock::database_path(&settings.store.url) {
        spec.read.push(db);
    }
    spec.read.extend([
        settings.store.blobs.clone(),
        settings.hot_folder.inbox.clone(),
        settings.hot_folder.processed.clone(),
    ]);
    spec.write.extend([
        settings.store.blobs.join(".poststelle-sandbox-probe"),
        settings
            .hot_folder
            .processed
            .join(".poststelle-sandbox-probe"),
    ]);
    if let Ok(mut api) = settings.api.listen.parse::<std::net::SocketAddr>() {
        if api.ip().is_unspecified() {
            api.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        spec.connect.push(api);
    }
    // Absolute paths: the worker runs in its own directory.
    let cwd = std::env::current_dir().context("current directory")?;
    for p in spec.read.iter_mut().chain(spec.write.iter_mut()) {
        if p.is_relative() {
            *p = cwd.join(&*p);
        }
    }
    let mut extract = settings.extract.clone();
    extract.workers = 1;
    let extractor = Extractor::new(
        std::env::current_exe().context("locating own executable")?,
        &extract,
    );
    let report = extractor
        .probe(&spec)
        .await
        .map_err(|e| anyhow::anyhow!("the probe failed in the worker: {e}"))?;
    let status = extractor
        .sandbox_status()
        .unwrap_or_else(sandbox::Status::off);
    let leaked_env: Vec<&String> = report
        .env
        .iter()
        .filter(|k| !sandbox::PASSED_ENV.contains(&k.as_str()))
        .filter(|k| !["OMP_THREAD_LIMIT", "TMPDIR", "HOME"].contains(&k.as_str()))
        .collect();
    let closed = report.all_refused() && leaked_env.is_empty() && status.enabled;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "sandbox": status,
                "level": status.level(),
                "report": report,
                "inherited_env": leaked_env,
                "closed": closed,
            })
        );
    } else {
        println!("sandbox: {}", status.summary());
        let show = |what: &str, attempts: &[sandbox::Attempt]| {
            for (target, err) in attempts {
                match err {
                    Some(e) => println!("  {what:<8} {target}: refused ({e})"),
                    None => println!("  {what:<8} {target}: REACHABLE"),
                }
            }
        };
        show("read", &report.read);
        show("write", &report.write);
        show("connect", &report.connect);
        match &report.inet_socket {
            Some(e) => println!("  socket   AF_INET: refused ({e})"),
            None => println!("  socket   AF_INET: ALLOWED"),
        }
        println!("  environment: {}", report.env.join(", "));
        if !leaked_env.is_empty() {
            let names: Vec<&str> = leaked_env.iter().map(|s| s.as_str()).collect();
            println!("  inherited from the daemon: {}", names.join(", "));
        }
        println!(
            "{}",
            if closed {
                "OK: nothing of the above is reachable from a worker"
            } else {
                "FEHLER: a worker reaches some of the above"
            }
        );
    }
    Ok(if closed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check-config [--online]`: settings, rules and their tests, the model; problems with file
/// and line. With `online`, every delivery target is built and its health check run.
pub async fn check_config(path: &Path, online: bool) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(e) => {
            for p in &e.0 {
                println!("{p}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut ok = true;
    match crate::classify::rules::RuleSet::load_dir(
        &settings.classify.rules,
        &settings.mailbox_ids(),
    ) {
        Ok(rules) => {
            let failures = rules.check_tests(&settings.address_markers);
            for f in &failures {
                println!("{f}");
            }
            ok &= failures.is_empty();
            println!(
                "rules: {} files, {} rules",
                rules.files.len(),
                rules.rules().count()
            );
        }
        Err(e) => {
            println!("{e}");
            ok = false;
        }
    }
    if let Err(e) = Registry::new(&settings.classify.models).load_active() {
        println!("model: {e}");
        ok = false;
    }
    if settings.api.enabled && settings.api.token.is_empty() {
        println!(
            "{}: warning: no API token (set POSTSTELLE__API__TOKEN or api.token_file); the API will refuse all requests",
            path.display()
        );
    }
    println!(
        "{}: {} mailboxes, review mailbox {}",
        path.display(),
        settings.mailboxes.len(),
        settings.review.id
    );
    if online {
        for health in crate::deliver::check_all(&settings.deliver).await {
            println!("{health}");
            ok &= health.outcome.is_ok();
        }
    }
    println!(
        "{}",
        if ok {
            "configuration OK"
        } else {
            "configuration has problems"
        }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
