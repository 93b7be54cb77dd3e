//! Wiring: builds every component from settings, runs them, shuts down cleanly.

use crate::api::{self, ApiState};
use crate::classify::rules::RuleSet;
use crate::classify::{Classifier, RecipientRoute, Router, RouterSettings};
use crate::config::Settings;
use crate::extract::Extractor;
use crate::intake::Intake;
use crate::intake::hot_folder::HotFolder;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::blobs::BlobStore;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Loads rules and the active model (training one on first start) into a classifier.
pub fn build_classifier(settings: &Settings) -> anyhow::Result<Classifier> {
    let rules = Arc::new(RuleSet::load_dir(
        &settings.classify.rules,
        &settings.mailbox_ids(),
    )?);
    let model = crate::train::ensure_model(
        &settings.classify.models,
        &settings.classify.training_data,
        &settings.mailbox_ids(),
        &rules,
        &router_settings(settings),
        settings.classify.precision_target,
    )?;
    Ok(Classifier::new(
        rules,
        model.map(Arc::new),
        settings.mailbox_ids(),
        settings.classify.review_threshold,
    ))
}

/// The router's part of the settings: address markers, e-invoice routes, mailbox addresses
/// and names, the clerk tables.
pub fn router_settings(settings: &Settings) -> RouterSettings {
    RouterSettings {
        address_markers: settings.address_markers.clone(),
        invoice_routes: settings.einvoice.routes.clone(),
        recipients: settings
            .mailboxes
            .iter()
            .filter(|m| !m.addresses.is_empty())
            .map(|m| RecipientRoute {
                mailbox: m.id.clone(),
                name: m.name.clone(),
                addresses: m.addresses.clone(),
            })
            .collect(),
        mailbox_names: settings
            .mailboxes
            .iter()
            .map(|m| (m.id.clone(), m.name.clone()))
            .collect(),
        clerks: settings.clerks.clone(),
    }
}

/// The router the daemon, `route` and `eval` decide with: rules, the active model and the
/// town's e-invoice and address routes.
pub fn build_router(settings: &Settings) -> anyhow::Result<Router> {
    Ok(Router::new(
        Arc::new(build_classifier(settings)?),
        router_settings(settings),
    ))
}

/// The running daemon's parts.
#[derive(Debug)]
pub struct Application {
    /// The pipeline (shared with the API).
    pub pipeline: Arc<Pipeline>,
    /// Intake.
    pub intake: Intake,
    /// Outgoing e-mail (acknowledgements, digests), when `[outgoing] enabled`.
    pub outgoing: Option<Arc<crate::outgoing::Outgoing>>,
    /// Told about every e-mail the IMAP intake committed, before it is marked on the server
    /// (empty by default; e.g. acknowledgements plug in here).
    pub observers: Vec<Arc<dyn crate::domain::MailObserver>>,
    settings: Arc<Settings>,
    listener: Option<tokio::net::TcpListener>,
    /// One daemon per database: held from build to the end of run.
    lock: Option<crate::store::lock::DataLock>,
    /// On PostgreSQL, the same in the database (held from build to the end of run).
    instance_lock: Option<crate::store::lock::InstanceLock>,
}

impl Application {
    /// Builds everything; `exe` is the binary whose `extract-worker` command reads files (the
    /// sandboxed workers of `extract::pool`).
    pub async fn build(settings: Settings, exe: PathBuf) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        // Before anything is opened: a second daemon on the same data stops here.
        let (lock, instance_lock) = match crate::store::Backend::from_url(&settings.store.url) {
            Some(crate::store::Backend::Postgres) => (
                Some(crate::store::lock::DataLock::acquire_beside(
                    settings.store.blobs.clone(),
                )?),
                Some(crate::store::lock::InstanceLock::acquire(&settings.store.url).await?),
            ),
            _ => (
                crate::store::lock::DataLock::acquire(&settings.store.url)?,
                None,
            ),
        };
        let store = Store::open(&settings.store.url)
            .await
            .context("opening the store")?;
        let blobs = BlobStore::open(&settings.store.blobs).context("opening blob storage")?;
        // Uploads and hot-folder files a crash broke off; no one else writes them (the lock).
        match blobs.remove_stale_incoming() {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed unfinished incoming blobs"),
            Err(e) => tracing::warn!(error = %e, "cannot clean up unfinished incoming blobs"),
        }
        let router = build_router(&settings)?;
        if let Some(m) = router.classifier().model() {
            let path = crate::train::Registry::new(&settings.classify.models).path(&m.meta.version);
            store
                .record_model(
                    &m.meta.version,
                    &path.display().to_string(),
                    &m.meta.metrics,
                    true,
                )
                .await
                .context("recording the active model")?;
        }
        let targets = crate::deliver::build_all(&settings.deliver)
            .context("building the delivery targets")?;
        let wake = Arc::new(Notify::new());
        // Worker directories (copies of documents being read) that a killed daemon on the same
        // data left behind; no worker of ours has started yet, no one else uses the prefix.
        let extractor = match &lock {
            Some(lock) => {
                // Absolute, so that another installation's relative path never matches.
                let lock_file =
                    std::fs::canonicalize(lock.path()).unwrap_or_else(|_| lock.path().to_owned());
                let prefix = crate::extract::pool::owned_dir_prefix(&lock_file);
                match crate::extract::pool::remove_stale_dirs(&prefix) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(directories = n, "removed stale worker directories"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove stale worker directories"),
                }
                Extractor::with_dir_prefix(exe, &settings.extract, prefix)
            }
            None => Extractor::new(exe, &settings.extract),
        };
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            blobs.clone(),
            extractor,
            router,
            targets,
            settings.clone(),
            wake.clone(),
        ));
        // Thresholds the Stichprobe raised hold across restarts.
        crate::sample::apply_raises(&pipeline)
            .await
            .context("loading the thresholds raised by the Stichprobe")?;
        let outgoing = settings.outgoing.enabled.then(|| {
            crate::outgoing::Outgoing::new(
                store.clone(),
                settings.outgoing.clone(),
                settings.outgoing_recipients(),
            )
        });
        let intake = Intake {
            store,
            blobs,
            quarantine_dir: settings.hot_folder.quarantine.clone(),
            wake,
        };
        let listener = if settings.api.enabled {
            let l = tokio::net::TcpListener::bind(&settings.api.listen)
                .await
                .with_context(|| format!("binding the API to {}", settings.api.listen))?;
            Some(l)
        } else {
            None
        };
        // Acknowledgements hear of every committed e-mail before it is marked on the server.
        let observers = outgoing.iter().map(|o| o.observer()).collect();
        Ok(Application {
            pipeline,
            intake,
            outgoing,
            observers,
            settings,
            listener,
            lock,
            instance_lock,
        })
    }

    /// The API's bound address (useful with port 0).
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until `cancel` fires. A task that panics (or whose pipeline work panicked) is
    /// logged, stops every other task and makes this return an error, so the process exits
    /// non-zero and its supervisor (systemd) restarts it, instead of running on without it.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let _lock = self.lock;
        let _instance_lock = self.instance_lock;
        if self.settings.api.token.is_empty() {
            tracing::warn!(
                "no API token configured (POSTSTELLE__API__TOKEN or api.token_file): the API refuses every /api request"
            );
        }
        let mut tasks = tokio::task::JoinSet::new();
        let (pipeline, c) = (self.pipeline.clone(), cancel.clone());
        let warm = self.pipeline.clone();
        tokio::spawn(async move { warm.extractor.warm_up().await });
        tasks.spawn(async move { pipeline.run(c).await.context("pipeline") });
        if let Some(outgoing) = &self.outgoing {
            let (o, c) = (outgoing.clone(), cancel.clone());
            tasks.spawn(async move {
                o.run(c).await;
                Ok(())
            });
        }
        if self.settings.hot_folder.enabled {
            let hf = HotFolder::new(self.settings.hot_folder.clone(), self.intake.clone())
                .context("preparing the hot folder")?;
            let c = cancel.clone();
            tasks.spawn(async move {
                hf.run(c).await;
                Ok(())
            });
        }
        if self.settings.retention.enabled {
            let r = &self.settings.retention;
            let folders = vec![
                (self.settings.hot_folder.processed.clone(), r.content_days),
                (
                    self.settings.hot_folder.quarantine.clone(),
                    r.quarantine_days,
                ),
            ];
            let (store, blobs, r, c) = (
                self.pipeline.store.clone(),
                self.pipeline.blobs.clone(),
                r.clone(),
                cancel.clone(),
            );
            tasks.spawn(async move {
                crate::retention::run(store, blobs, r, folders, c).await;
                Ok(())
            });
        }
        if self.settings.imap.enabled {
            let imap = crate::intake::imap::ImapIntake {
                intake: self.intake.clone(),
                settings: self.settings.imap.clone(),
                observers: self.observers.clone(),
            };
            let c = cancel.clone();
            tasks.spawn(async move {
                imap.run(c).await;
                Ok(())
            });
        }
        if let Some(listener) = self.listener {
            let auth = crate::auth::Authenticator::new(
                self.pipeline.store.clone(),
                self.settings.auth.clone(),
                self.settings.api.token.clone(),
            );
            let router = api::router(ApiState {
                pipeline: self.pipeline.clone(),
                intake: self.intake.clone(),
                auth,
                training: Default::default(),
                page_images: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                uploads: Arc::new(tokio::sync::Semaphore::new(
                    self.settings.upload.max_concurrent,
                )),
            });
            let c = cancel.clone();
            tracing::info!(addr = ?listener.local_addr().ok(), "API listening");
            tasks.spawn(async move {
                // The peer address lets `/metrics` answer local scrapers without a token.
                let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, service)
                    .with_graceful_shutdown(async move { c.cancelled().await })
                    .await
                {
                    tracing::error!(error = %e, "API server stopped");
                }
                Ok(())
            });
        }
        let mut failure: Option<anyhow::Error> = None;
        while let Some(joined) = tasks.join_next().await {
            let error = match joined {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) if e.is_panic() => anyhow::anyhow!("a daemon task panicked: {e}"),
                Err(e) => anyhow::anyhow!("a daemon task was aborted: {e}"),
            };
            tracing::error!(error = %format!("{error:#}"), "daemon task failed; shutting down");
            cancel.cancel();
            failure.get_or_insert(error);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
