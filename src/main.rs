//! The `poststelle` command line. Thin: parses arguments, loads settings, calls the library.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use poststelle::app::{Application, build_classifier};
use poststelle::config::Settings;
use poststelle::domain::DocState;
use poststelle::extract::{self, Extractor, MediaType};
use poststelle::train::{self, Registry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "poststelle",
    version,
    about = "Routes a town's incoming post to the right department mailbox"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/musterstadt.toml",
        env = "POSTSTELLE_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: hot folder, pipeline, delivery, API.
    Serve,
    /// Route files and print the decision (nothing is stored or delivered).
    Route {
        /// One JSON object per file and line.
        #[arg(long)]
        json: bool,
        /// Files to route.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Train a new model version from the corpus (and corrections) and activate it when it is
    /// not worse than the active one.
    Train {
        /// A JSON Lines corpus (`{"id","text","mailbox"}` per line) instead of training-data/.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Activate even when the new version scores worse.
        #[arg(long)]
        force: bool,
        /// Cross-validation folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
    },
    /// Cross-validate rules, model and both combined on a corpus.
    Eval {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// A JSON Lines corpus instead of training-data/.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Scanned twins: JSON Lines `{"id","text"}` with OCR text of rendered scans of corpus
        /// items; evaluated on the same folds as their clean originals.
        #[arg(long)]
        twins: Option<PathBuf>,
        /// Write the fold of every item (`{"id","mailbox","fold"}` per line), for baselines.
        #[arg(long)]
        export_folds: Option<PathBuf>,
    },
    /// Extract a file's text as poststelle reads it (text layer or OCR), with zones.
    Extract {
        /// One JSON object per file and line (with word boxes).
        #[arg(long)]
        json: bool,
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Documents in the store.
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
    /// Model versions.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Daily digests: print what would be sent now (since the last digest), or send it.
    Digest {
        /// Queue the digests and send them now; the next digest starts where this one ends.
        #[arg(long)]
        send: bool,
    },
    /// Check the configuration and rules; report problems with file, line and a hint.
    CheckConfig {
        /// Also build every delivery target and run its health check (reachable, credentials
        /// accepted); one line per target.
        #[arg(long)]
        online: bool,
    },
    /// Internal: extract one file in a sandboxed child process.
    #[command(hide = true)]
    ExtractWorker {
        #[arg(long, default_value = "extract")]
        job: String,
        #[arg(long)]
        media: String,
        #[arg(long)]
        options: String,
        #[arg(long)]
        out: PathBuf,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DocumentsCommand {
    /// List documents, newest first.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only documents in this state (received, review, queued, delivered, quarantined, ...).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// List versions.
    List,
    /// Activate a version.
    Activate {
        /// Version id.
        version: String,
    },
    /// Re-activate the previous version.
    Rollback,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ExtractWorker {
        job,
        media,
        options,
        out,
        file,
    } = &cli.command
    {
        return worker(job, media, options, out, file);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn worker(job: &str, media: &str, options: &str, out: &Path, file: &Path) -> ExitCode {
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
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write result: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|e| anyhow::anyhow!("configuration invalid:\n{e}"))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { online } => check_config(&cli.config, online).await,
        Command::Serve => {
            let settings = load(&cli.config)?;
            let exe = std::env::current_exe().context("locating own executable")?;
            let app = Application::build(settings, exe).await?;
            let cancel = tokio_util::sync::CancellationToken::new();
            let c = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                c.cancel();
            });
            app.run(cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Route { json, files } => route(&load(&cli.config)?, json, &files).await,
        Command::Train { data, force, folds } => {
            train_cmd(&load(&cli.config)?, data.as_deref(), force, folds).await
        }
        Command::Eval {
            json,
            data,
            folds,
            twins,
            export_folds,
        } => eval_cmd(
            &load(&cli.config)?,
            json,
            data.as_deref(),
            folds,
            twins.as_deref(),
            export_folds.as_deref(),
        ),
        Command::Extract { json, files } => extract_cmd(&load(&cli.config)?, json, &files).await,
        Command::Documents {
            command: DocumentsCommand::List { json, state, limit },
        } => {
            let settings = load(&cli.config)?;
            let store = poststelle::store::Store::open(&settings.store.url).await?;
            let state = match state {
                Some(s) => Some(DocState::parse(&s).with_context(|| format!("unknown state {s}"))?),
                None => None,
            };
            for d in store.list(state, limit).await? {
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                } else {
                    println!(
                        "{}  {:<11}  {:<6}  {:>5}  {}",
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
        Command::Model { command } => {
            let settings = load(&cli.config)?;
            let reg = Registry::new(&settings.classify.models);
            match command {
                ModelCommand::List => {
                    for v in reg.list() {
                        let mark = if v.active { "*" } else { " " };
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
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Digest { send } => digest_cmd(load(&cli.config)?, send).await,
        Command::ExtractWorker { .. } => bail!("extract-worker is handled before start-up"),
    }
}

async fn digest_cmd(settings: Settings, send: bool) -> anyhow::Result<ExitCode> {
    if send && !settings.outgoing.enabled {
        bail!("outgoing mail is switched off ([outgoing] enabled = false)");
    }
    let settings = Arc::new(settings);
    let store = poststelle::store::Store::open(&settings.store.url).await?;
    let outgoing = poststelle::outgoing::Outgoing::new(
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

async fn shutdown_signal() {
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

async fn check_config(path: &Path, online: bool) -> anyhow::Result<ExitCode> {
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
    match poststelle::classify::rules::RuleSet::load_dir(
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
        for health in poststelle::deliver::check_all(&settings.deliver).await {
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

async fn route(settings: &Settings, json: bool, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let classifier = Arc::new(build_classifier(settings)?);
    let extractor = Extractor::new(std::env::current_exe()?, &settings.extract);
    let mut failed = false;
    for file in files {
        let name = file.display().to_string();
        let result: anyhow::Result<poststelle::domain::Decision> = async {
            let ex = extract_file(&extractor, file).await?;
            let zones = extract::zones::find(&ex, &settings.address_markers);
            let c = classifier.clone();
            Ok(tokio::task::spawn_blocking(move || c.decide(&zones)).await?)
        }
        .await;
        match result {
            Ok(d) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": name, "mailbox": d.mailbox, "confidence": d.confidence,
                            "decided_by": d.decided_by, "needs_review": d.needs_review, "explanation": d.explanation,
                        })
                    );
                } else {
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
                }
            }
            Err(e) => {
                failed = true;
                report_file_error(json, &name, &e);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn extract_cmd(
    settings: &Settings,
    json: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let extractor = Extractor::new(std::env::current_exe()?, &settings.extract);
    let mut failed = false;
    for file in files {
        let name = file.display().to_string();
        let result = extract_file(&extractor, file).await;
        match result {
            Ok(ex) => {
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
            }
            Err(e) => {
                failed = true;
                report_file_error(json, &name, &e);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads, recognises and extracts one file as the daemon would (sandboxed).
async fn extract_file(extractor: &Extractor, file: &Path) -> anyhow::Result<extract::Extraction> {
    let name = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    let media = extract::sniff(&bytes, &name).map_err(|e| anyhow::anyhow!(e.reason_de()))?;
    extractor
        .extract(file, media)
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

fn corpus(settings: &Settings, data: Option<&Path>) -> anyhow::Result<Vec<train::Item>> {
    let items = match data {
        Some(f) => train::load_jsonl(f)?,
        None => train::load_corpus(&settings.classify.training_data)?,
    };
    if items.is_empty() {
        bail!("no training items found");
    }
    Ok(items)
}

async fn train_cmd(
    settings: &Settings,
    data: Option<&Path>,
    force: bool,
    folds: usize,
) -> anyhow::Result<ExitCode> {
    let mut items = corpus(settings, data)?;
    let reg = Registry::new(&settings.classify.models);
    let current = match reg.load_active() {
        Ok(m) => m,
        Err(e) => {
            println!("the active model cannot be read ({e}); the new version will replace it");
            None
        }
    };
    // Corrections people made join the training set (the store may not exist yet). Those made
    // after the active model was trained are "recent": the active model never learned them.
    let mut recent = std::collections::BTreeSet::new();
    if data.is_none()
        && let Ok(store) = poststelle::store::Store::open(&settings.store.url).await
    {
        for (id, text, mailbox, at) in store.corrections_for_training().await? {
            if current.as_ref().is_none_or(|m| at > m.meta.created_at) {
                recent.insert(id.clone());
            }
            items.push(train::Item {
                id,
                text,
                mailbox,
                origin: "correction".into(),
            });
        }
    }
    let rules = Arc::new(poststelle::classify::rules::RuleSet::load_dir(
        &settings.classify.rules,
        &[],
    )?);
    let started = std::time::Instant::now();
    let (mut model, report) = train::fit(
        &items,
        &settings.mailbox_ids(),
        &rules,
        &settings.address_markers,
        folds,
    )?;
    let version = reg.add(&mut model)?;
    println!(
        "trained {version} on {} items ({} corrections, {} recent) in {:.1} s: top-1 {:.1} %, straight-through {:.1} % at threshold {}",
        items.len(),
        items.iter().filter(|i| i.origin == "correction").count(),
        recent.len(),
        started.elapsed().as_secs_f64(),
        report.combined.top1 * 100.0,
        report.combined.straight_through * 100.0,
        report
            .combined
            .threshold
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|| "-".into())
    );
    // Not worse = cross-validated top-1 no more than half a point below the active version's,
    // and on the recent corrections at least as good as the active version.
    let mut problems = Vec::new();
    if let Some(cur) = &current {
        if let Some(c) = cur.meta.metrics["combined"]["top1"].as_f64()
            && report.combined.top1 + 0.005 < c
        {
            problems.push(format!(
                "cross-validated top-1 {:.1} % is below the active version's {:.1} %",
                report.combined.top1 * 100.0,
                c * 100.0
            ));
        }
        let recent_items: Vec<&train::Item> =
            items.iter().filter(|i| recent.contains(&i.id)).collect();
        if !recent_items.is_empty() {
            let new_ok = report
                .predictions
                .iter()
                .filter(|p| {
                    recent.contains(&p.id) && p.predicted.as_deref() == Some(p.truth.as_str())
                })
                .count();
            let active = poststelle::classify::Classifier {
                rules: rules.clone(),
                model: Some(Arc::new(cur.clone())),
                mailboxes: settings.mailbox_ids(),
                config_threshold: settings.classify.review_threshold,
            };
            let old_ok = recent_items
                .iter()
                .filter(|i| {
                    let z = extract::zones::from_text(&i.text, &settings.address_markers);
                    active
                        .decide_with(&z, false)
                        .mailbox
                        .map(|m| m.to_string())
                        .as_deref()
                        == Some(i.mailbox.as_str())
                })
                .count();
            println!(
                "recent corrections ({}): new version right on {new_ok} (held out in cross-validation), active version right on {old_ok}",
                recent_items.len()
            );
            if new_ok < old_ok {
                problems.push(format!("on the recent corrections the new version is right {new_ok} times, the active one {old_ok} times"));
            }
        }
    }
    if problems.is_empty() || force {
        reg.activate(&version)?;
        println!(
            "activated {version}{}",
            if problems.is_empty() { "" } else { " (forced)" }
        );
        if let Ok(store) = poststelle::store::Store::open(&settings.store.url).await {
            store
                .record_model(
                    &version,
                    &reg.path(&version).display().to_string(),
                    &model.meta.metrics,
                    true,
                )
                .await?;
        }
    } else {
        println!(
            "NOT activated: {}.\nThe version is kept; activate it anyway with `poststelle model activate {version}` or `train --force`.",
            problems.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_cmd(
    settings: &Settings,
    json: bool,
    data: Option<&Path>,
    folds: usize,
    twins: Option<&Path>,
    export_folds: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let items = corpus(settings, data)?;
    let rules = Arc::new(poststelle::classify::rules::RuleSet::load_dir(
        &settings.classify.rules,
        &[],
    )?);
    let configured = if data.is_some() {
        Vec::new()
    } else {
        settings.mailbox_ids()
    };
    let classes = train::classes_for(&items, &configured);
    let params = poststelle::classify::model::TrainParams::default();
    if let Some(out) = export_folds {
        let folds = train::stratified_folds(&items, folds, params.seed);
        let lines: Vec<String> = items
            .iter()
            .zip(folds)
            .map(|(i, f)| {
                serde_json::json!({"id": i.id, "mailbox": i.mailbox, "fold": f}).to_string()
            })
            .collect();
        std::fs::write(out, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let twins = match twins {
        Some(p) => Some(
            train::load_jsonl(p)?
                .into_iter()
                .map(|i| (i.id, i.text))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
        None => None,
    };
    let started = std::time::Instant::now();
    let report = train::cross_validate(
        &items,
        &classes,
        &rules,
        &settings.address_markers,
        folds,
        &params,
        twins.as_ref(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    // The held-out set: written separately, never seen by training or by the rules' authors.
    let holdout_items = if data.is_none() {
        train::load_dir(&settings.classify.training_data.join("holdout"))?
    } else {
        Vec::new()
    };
    let holdout = if holdout_items.is_empty() {
        None
    } else {
        Some(train::evaluate_holdout(
            &items,
            &holdout_items,
            &classes,
            &rules,
            &settings.address_markers,
            &params,
            report.temperature,
            report.combined.threshold,
        )?)
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "items": report.items, "folds": report.folds, "temperature": report.temperature,
                "top1": report.combined.top1, "straight_through": report.combined.straight_through,
                "threshold": report.combined.threshold,
                "rules": report.rules, "model": report.model, "combined": report.combined,
                "twins": report.twins, "holdout": holdout, "seconds": seconds,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} items, {}-fold stratified cross-validation, temperature {:.2}",
        report.items, report.folds, report.temperature
    );
    for (name, r) in [
        ("rules", &report.rules),
        ("model", &report.model),
        ("combined", &report.combined),
    ] {
        println!(
            "{name:<9} top-1 {:5.1} %   straight-through {:5.1} % at precision {:5.1} % (threshold {})",
            r.top1 * 100.0,
            r.straight_through * 100.0,
            r.auto_precision * 100.0,
            r.threshold
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(t) = &report.twins {
        println!(
            "\nscanned twins ({} items, same folds): clean top-1 {:.1} % / straight-through {:.1} %   \
             scanned top-1 {:.1} % / straight-through {:.1} %   (model alone on scans {:.1} %, rules alone {:.1} %)",
            t.items,
            t.clean.top1 * 100.0,
            t.clean.straight_through * 100.0,
            t.scanned.top1 * 100.0,
            t.scanned.straight_through * 100.0,
            t.scanned_model.top1 * 100.0,
            t.scanned_rules.top1 * 100.0
        );
        for c in &t.changed {
            println!(
                "  {:<10} truth {:<5} clean -> {:<5} scan -> {:<5} ({:.2})",
                c.id,
                c.truth,
                c.clean.as_deref().unwrap_or("-"),
                c.scanned.as_deref().unwrap_or("-"),
                c.scanned_confidence
            );
        }
    }
    if let Some(h) = &holdout {
        println!(
            "\nheld-out set ({} items; trained on the whole corpus):",
            h.items
        );
        for (name, r) in [
            ("rules", &h.rules),
            ("model", &h.model),
            ("combined", &h.combined),
        ] {
            println!(
                "  {name:<9} top-1 {:5.1} %   straight-through {:5.1} % at precision {:5.1} %",
                r.top1 * 100.0,
                r.straight_through * 100.0,
                r.auto_precision * 100.0
            );
        }
        println!(
            "  at the threshold chosen on the corpus ({}): straight-through {:.1} %, precision {:.1} %",
            h.threshold
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into()),
            h.straight_through_at_threshold * 100.0,
            h.precision_at_threshold * 100.0
        );
    }
    println!("\nper mailbox (combined): precision / recall / n");
    for (m, (p, r, n)) in &report.combined.per_mailbox {
        println!("  {m:<8} {:5.1} % {:5.1} % {n:4}", p * 100.0, r * 100.0);
    }
    println!("\nreliability (combined): confidence bin, n, mean confidence, accuracy");
    for (lo, n, mean, acc) in &report.combined.reliability {
        println!(
            "  {lo:.1}-{:.1} {n:5} {:5.1} % {:5.1} %",
            lo + 0.1,
            mean * 100.0,
            acc * 100.0
        );
    }
    println!("\nconfusion (combined; rows = truth, columns = predicted, off-diagonal only):");
    for (t, row) in &report.combined.confusion {
        let off: Vec<String> = row
            .iter()
            .filter(|(p, _)| *p != t)
            .map(|(p, n)| format!("{p}:{n}"))
            .collect();
        if !off.is_empty() {
            println!("  {t:<8} -> {}", off.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
