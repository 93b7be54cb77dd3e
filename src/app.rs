//! Wiring: builds every component from settings, runs them, shuts down cleanly.

use crate::api::{self, ApiState};
use crate::classify::Classifier;
use crate::classify::rules::RuleSet;
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
    let model = crate::train::ensure_model(settings, &rules)?;
    Ok(Classifier {
        rules,
        model: model.map(Arc::new),
        mailboxes: settings.mailbox_ids(),
        config_threshold: settings.classify.review_threshold,
    })
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
}

impl Application {
    /// Builds everything; `exe` is the binary whose `extract-worker` command reads files.
    pub async fn build(settings: Settings, exe: PathBuf) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let store = Store::open(&settings.store.url)
            .await
            .context("opening the store")?;
        let blobs = BlobStore::open(&settings.store.blobs).context("opening blob storage")?;
        let classifier = build_classifier(&settings)?;
        if let Some(m) = &classifier.model {
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
        let extractor = Extractor::new(exe, &settings.extract);
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            blobs.clone(),
            extractor,
            classifier,
            targets,
            settings.clone(),
            wake.clone(),
        ));
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
        })
    }

    /// The API's bound address (useful with port 0).
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        if self.settings.api.token.is_empty() {
            tracing::warn!(
                "no API token configured (POSTSTELLE__API__TOKEN or api.token_file): the API refuses every /api request"
            );
        }
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.pipeline.clone().run(cancel.clone()));
        if let Some(outgoing) = &self.outgoing {
            tasks.spawn(outgoing.clone().run(cancel.clone()));
        }
        if self.settings.hot_folder.enabled {
            let hf = HotFolder::new(self.settings.hot_folder.clone(), self.intake.clone())
                .context("preparing the hot folder")?;
            tasks.spawn(hf.run(cancel.clone()));
        }
        if self.settings.imap.enabled {
            let imap = crate::intake::imap::ImapIntake {
                intake: self.intake.clone(),
                settings: self.settings.imap.clone(),
                observers: self.observers.clone(),
            };
            tasks.spawn(imap.run(cancel.clone()));
        }
        if let Some(listener) = self.listener {
            let router = api::router(ApiState {
                pipeline: self.pipeline.clone(),
                intake: self.intake.clone(),
            });
            let c = cancel.clone();
            tracing::info!(addr = ?listener.local_addr().ok(), "API listening");
            tasks.spawn(async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { c.cancelled().await })
                    .await
                {
                    tracing::error!(error = %e, "API server stopped");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}
