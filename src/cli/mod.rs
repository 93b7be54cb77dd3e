//! The `poststelle` commands: one module per group, each a thin layer over the library.
//!
//! - [`route`]: `route` and `extract` (what the daemon would read and decide, nothing stored);
//! - [`train`]: `train` (with the promotion rule from [`crate::train::judge_promotion`]) and `eval`;
//! - [`admin`]: `check-config`, `check-sandbox`, `documents`, `model` (versions, shadow and its comparison),
//!   `digest` and the shutdown signal;
//! - [`retention`]: `purge` and `erase` (DSGVO retention and erasure requests), and
//!   `audit verify` (the audit trail's hash chain);
//! - [`users`]: `users` (accounts and API tokens of the web desk and the API);
//! - [`worker`]: the hidden `extract-worker`, the sandboxed child that parses input.

pub mod admin;
pub mod retention;
pub mod route;
pub mod train;
pub mod users;
pub mod worker;

use crate::app::Application;
use crate::config::Settings;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The command line.
#[derive(Parser)]
#[command(
    name = "poststelle",
    version,
    about = "Routes a town's incoming post to the right department mailbox"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/musterstadt.toml",
        env = "POSTSTELLE_CONFIG"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
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
        /// Seconds for choosing the model's settings automatically (0 = the defaults).
        #[arg(long, default_value_t = crate::train::SELECTION_BUDGET_S)]
        budget: u64,
    },
    /// Cross-validate rules, model and both combined on a corpus; with `--live`, the precision
    /// measured by the Stichprobe in the database instead.
    Eval {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The live precision per mailbox from the Stichprobe's verdicts (95 % Wilson
        /// interval, raised thresholds), read from the database.
        #[arg(long, conflicts_with_all = ["data", "twins", "export_folds"])]
        live: bool,
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
        /// Seconds for choosing the model's settings inside the folds (nested, split over the
        /// folds; 0 = the defaults).
        #[arg(long, default_value_t = crate::train::SELECTION_BUDGET_S)]
        budget: u64,
        /// Evaluate one learner with its default settings instead of selecting: `own` (ours),
        /// or linfa's `logistic`, `bayes`, `svm` (on χ²-selected features); implies no selection.
        #[arg(long, value_parser = ["own", "logistic", "bayes", "svm"])]
        learner: Option<String>,
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
    /// Start one extraction worker as the daemon does and report what its sandbox enforces on
    /// this machine and what it can reach from inside: the API token file, the database, the
    /// blob store, the hot folder, the API's port (exit code 1 when anything is reachable).
    CheckSandbox {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Further files or directories to try to read from inside the worker.
        #[arg(long)]
        read: Vec<PathBuf>,
        /// Further files to try to create or write from inside the worker.
        #[arg(long)]
        write: Vec<PathBuf>,
        /// Further TCP addresses (`host:port`) to try to connect to.
        #[arg(long)]
        connect: Vec<std::net::SocketAddr>,
    },
    /// Documents in the store.
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
    /// Quarantined inputs: list them, or read a quarantined document again.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Accounts of the web desk and the API, and their API tokens.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Model versions.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Delete personal data whose retention period ended (`[retention]`): content of
    /// delivered and quarantined documents, mail bodies, expired files. The daemon does this
    /// every `interval_minutes` too.
    Purge {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Erase a document's content now, or every document of a sender (an erasure request
    /// under Art. 17 DSGVO); recorded in the audit trail.
    Erase {
        /// The document.
        #[arg(long, conflicts_with = "sender", required_unless_present = "sender")]
        document: Option<String>,
        /// The sender's e-mail address: every document found by it.
        #[arg(long)]
        sender: Option<String>,
        /// Who handles the request (recorded as the actor).
        #[arg(long)]
        by: String,
    },
    /// The audit trail (the `events` of every document).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Daily digests: print what would be sent now (since the last digest), or send it.
    Digest {
        /// Queue the digests and send them now; the next digest starts where this one ends.
        #[arg(long)]
        send: bool,
    },
    /// Write a printable separator sheet (Trennblatt) for stacks as PDF: a patch-T code and the
    /// configured barcode value (`[intake.hot_folder] separator_barcode`) as Code 128 and QR.
    Trennblatt {
        /// Where to write the PDF.
        #[arg(default_value = "trennblatt.pdf")]
        file: PathBuf,
    },
    /// Check the configuration and rules; report problems with file, line and a hint.
    CheckConfig {
        /// Also build every delivery target and run its health check (reachable, credentials
        /// accepted); one line per target.
        #[arg(long)]
        online: bool,
    },
    /// Internal: a sandboxed worker that reads one job per line from standard input (see
    /// `extract::pool`).
    #[command(hide = true)]
    ExtractWorker {
        /// Extraction options as JSON.
        #[arg(long)]
        options: String,
        /// The sandbox to lock into before the first job, as JSON (none: no sandbox).
        #[arg(long)]
        sandbox: Option<String>,
    },
}

/// `documents` subcommands.
#[derive(Subcommand)]
pub enum DocumentsCommand {
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

/// `quarantine` subcommands.
#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// List the quarantine entries with their reasons, newest first.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Read a quarantined document again from its stored original (`quarantined ->
    /// received`); the running daemon takes it up within a second.
    Retry {
        /// The document's id (as `quarantine list` or `documents list` show it).
        id: String,
    },
}

/// `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the audit trail: prints how many events fit and the first
    /// that does not (edited, deleted before it or moved); exits non-zero on a break.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// `model` subcommands.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// List versions.
    List,
    /// Activate a version.
    Activate {
        /// Version id.
        version: String,
    },
    /// Re-activate the previous version.
    Rollback,
    /// Run a version in shadow on the live post: the daemon routes with the active version and
    /// logs this one's decisions beside it (see `model compare`).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["version", "off"])))]
    Shadow {
        /// Version id.
        version: Option<String>,
        /// Stop the shadow.
        #[arg(long)]
        off: bool,
    },
    /// Score the shadow version's logged decisions beside the active version's against what
    /// became of the documents (delivered as routed, or corrected by a person).
    Compare {
        /// The shadow version to score (default: the one in shadow now, else the last one).
        #[arg(long)]
        version: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Loads and validates the settings, all problems in one error.
pub fn load(path: &Path) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|e| anyhow::anyhow!("configuration invalid:\n{e}"))
}

/// Runs one command (every command but the sandboxed worker, which [`worker::run`] runs
/// before any runtime or logging starts).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { online } => admin::check_config(&cli.config, online).await,
        Command::CheckSandbox {
            json,
            read,
            write,
            connect,
        } => admin::check_sandbox(&load(&cli.config)?, json, read, write, connect).await,
        Command::Serve => {
            let settings = load(&cli.config)?;
            let exe = std::env::current_exe().context("locating own executable")?;
            let app = Application::build(settings, exe).await?;
            let cancel = tokio_util::sync::CancellationToken::new();
            let c = cancel.clone();
            tokio::spawn(async move {
                admin::shutdown_signal().await;
                tracing::info!("shutting down");
                c.cancel();
            });
            app.run(cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Route { json, files } => route::route(&load(&cli.config)?, json, &files).await,
        Command::Train {
            data,
            force,
            folds,
            budget,
        } => train::train(&load(&cli.config)?, data.as_deref(), force, folds, budget).await,
        Command::Eval { json, live, .. } if live => {
            train::eval_live(&load(&cli.config)?, json).await
        }
        Command::Eval {
            json,
            live: _,
            data,
            folds,
            twins,
            export_folds,
            budget,
            learner,
        } => train::eval(
            &load(&cli.config)?,
            json,
            data.as_deref(),
            folds,
            twins.as_deref(),
            export_folds.as_deref(),
            budget,
            learner.as_deref(),
        ),
        Command::Extract { json, files } => route::extract(&load(&cli.config)?, json, &files).await,
        Command::Documents {
            command: DocumentsCommand::List { json, state, limit },
        } => admin::documents_list(&load(&cli.config)?, json, state.as_deref(), limit).await,
        Command::Model { command } => admin::model(&load(&cli.config)?, command).await,
        Command::Quarantine { command } => admin::quarantine(&load(&cli.config)?, command).await,
        Command::Users { command } => users::run(&load(&cli.config)?, command).await,
        Command::Purge { dry_run, json } => {
            retention::purge(&load(&cli.config)?, dry_run, json).await
        }
        Command::Erase {
            document,
            sender,
            by,
        } => {
            retention::erase(
                &load(&cli.config)?,
                document.as_deref(),
                sender.as_deref(),
                &by,
            )
            .await
        }
        Command::Audit {
            command: AuditCommand::Verify { json },
        } => retention::audit_verify(&load(&cli.config)?, json).await,
        Command::Digest { send } => admin::digest(load(&cli.config)?, send).await,
        Command::Trennblatt { file } => {
            let settings = load(&cli.config)?;
            let pdf = crate::batch::sheet::separator_sheet(&settings.hot_folder.separator_barcode)?;
            std::fs::write(&file, pdf)
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!(
                "Trennblatt geschrieben: {} (Barcode-Wert „{}“)",
                file.display(),
                settings.hot_folder.separator_barcode
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ExtractWorker { .. } => bail!("extract-worker is handled before start-up"),
    }
}
