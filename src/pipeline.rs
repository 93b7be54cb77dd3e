//! The pipeline: workers that move documents through their states, with the database as the
//! durable buffer between stages. Each stage reads a document's state, does its work and writes
//! the next state in one transaction; after a crash, work resumes from the stored states.
//!
//! - `received -> extracted` (sandboxed extraction; unreadable input -> `quarantined`)
//! - `extracted -> review | queued` (the [`Router`] decides, with the sender's history from
//!   the store: sender memory)
//! - `queued -> delivered` (outbox)
//!
//! Every stage retries through the one [`RetryPolicy`](crate::retry::RetryPolicy): a failed
//! attempt that is not the input's fault waits for its jittered backoff, and a stage that keeps
//! failing ends as a `dead_letter` with its German reason, which a re-drive resumes.

use crate::classify::Router;
use crate::classify::model::Model;
use crate::config::Settings;
use crate::deliver::breaker::{Breakers, Gate};
use crate::deliver::{Delivery, DeliveryError, DeliveryItem};
use crate::domain::{DocState, DocumentId, MailboxId};
use crate::extract::pool::Urgency;
use crate::extract::{ExtractError, Extraction, Extractor, MediaType, Page};
use crate::faults::{pause_point, points};
use crate::retry::{AttemptLog, Backoff, Next, Outcome, Reasons, RetryPolicy};
use crate::store::batches::{BatchRow, NewPart};
use crate::store::blobs::BlobStore;
use crate::store::metadata::Rendition;
use crate::store::shadow::SideDecision;
use crate::store::{DocumentRow, Store};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared state of the workers.
#[derive(Debug)]
pub struct Pipeline {
    /// Store.
    pub store: Store,
    /// Blobs.
    pub blobs: BlobStore,
    /// Extraction sandbox.
    pub extractor: Extractor,
    /// Current router (its classifier is replaced when a new model is activated).
    router: RwLock<Arc<Router>>,
    /// The model version running in shadow (registry `SHADOW`): it decides every routed
    /// document again, with the same rules and router settings; its decision is logged beside
    /// the active one and never routes.
    shadow: RwLock<Option<Arc<Model>>>,
    /// A shadow version that could not be loaded (not tried again until `SHADOW` changes).
    shadow_failed: Mutex<Option<String>>,
    /// Delivery targets by name.
    pub targets: BTreeMap<String, Arc<dyn Delivery>>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Wakes the workers.
    pub wake: Arc<Notify>,
    in_flight: Mutex<HashSet<DocumentId>>,
    breakers: Breakers,
    delivery_retry: RetryPolicy,
    stage_retry: RetryPolicy,
}

impl Pipeline {
    /// Assembles the pipeline.
    pub fn new(
        store: Store,
        blobs: BlobStore,
        extractor: Extractor,
        router: Router,
        targets: BTreeMap<String, Arc<dyn Delivery>>,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
    ) -> Self {
        let breakers = Breakers::new(
            settings.deliver.breaker_threshold,
            settings.deliver.breaker_cooldown,
        );
        let d = &settings.deliver;
        let delivery_retry =
            RetryPolicy::new(Backoff::new(d.retry_base, d.retry_max), d.max_attempts);
        let e = &settings.extract;
        let stage_retry = RetryPolicy::new(Backoff::new(e.retry_base, e.retry_max), e.max_attempts);
        Self {
            store,
            blobs,
            extractor,
            router: RwLock::new(Arc::new(router)),
            shadow: RwLock::new(None),
            shadow_failed: Mutex::new(None),
            targets,
            settings,
            wake,
            in_flight: Mutex::new(HashSet::new()),
            breakers,
            delivery_retry,
            stage_retry,
        }
    }

    /// The delivery targets' circuit breakers (for the admin page).
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// The router in use (rules, model, recipients).
    pub fn router(&self) -> Arc<Router> {
        match self.router.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the router (e.g. after a model activation).
    pub fn set_router(&self, r: Router) {
        self.update_router(|_| r);
    }

    /// Replaces the router by `f` of the one in use, under the lock, so that two changes at
    /// once (a model activation, a raised threshold) do not undo each other.
    pub fn update_router(&self, f: impl FnOnce(&Router) -> Router) {
        let mut g = match self.router.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let next = f(&g);
        *g = Arc::new(next);
    }

    /// Hands the Stichprobe's raised review thresholds to the classifier in use; the next
    /// decision uses them (no restart).
    pub fn set_threshold_overrides(&self, overrides: BTreeMap<MailboxId, f64>) {
        self.update_router(|r| {
            r.with_classifier(Arc::new(r.classifier().with_threshold_overrides(overrides)))
        });
    }

    /// The model running in shadow, if any.
    pub fn shadow_model(&self) -> Option<Arc<Model>> {
        match self.shadow.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_shadow(&self, m: Option<Arc<Model>>) {
        match self.shadow.write() {
            Ok(mut g) => *g = m,
            Err(p) => *p.into_inner() = m,
        }
    }

    /// The router the shadow model decides with: `router`'s rules and settings, the shadow's
    /// model. None without a shadow, or when the shadow is the active version.
    fn shadow_router(&self, router: &Router) -> Option<Router> {
        let model = self.shadow_model()?;
        if router
            .classifier()
            .model()
            .is_some_and(|m| m.meta.version == model.meta.version)
        {
            return None;
        }
        let classifier = router.classifier().with_model(Some(model));
        Some(router.with_classifier(Arc::new(classifier)))
    }

    /// Loads the registry's shadow version when it differs from the one in use, and drops the
    /// shadow when `SHADOW` is gone, so that `poststelle model shadow` takes effect without a
    /// restart. A shadow that cannot be loaded is reported once and never affects routing.
    pub async fn reload_shadow_if_changed(&self) {
        let registry = crate::train::Registry::new(&self.settings.classify.models);
        let current = self.shadow_model().map(|m| m.meta.version.clone());
        let Some(wanted) = registry.shadow_version() else {
            if let Some(v) = current {
                self.set_shadow(None);
                tracing::info!(version = v, "shadow model stopped");
            }
            *lock(&self.shadow_failed) = None;
            return;
        };
        if current.as_deref() == Some(wanted.as_str())
            || lock(&self.shadow_failed).as_deref() == Some(wanted.as_str())
        {
            return;
        }
        let (reg, version) = (registry.clone(), wanted.clone());
        match tokio::task::spawn_blocking(move || reg.load(&version)).await {
            Ok(Ok(model)) => {
                self.set_shadow(Some(Arc::new(model)));
                *lock(&self.shadow_failed) = None;
                tracing::info!(
                    version = wanted,
                    "shadow model loaded: its decisions are logged beside the active model's"
                );
            }
            Ok(Err(e)) => {
                self.set_shadow(None);
                *lock(&self.shadow_failed) = Some(wanted.clone());
                tracing::warn!(version = wanted, error = %e, "cannot load the shadow model; routing goes on without a shadow");
            }
            Err(e) => tracing::warn!(error = %e, "shadow model loading task failed"),
        }
    }

    fn claim(&self, id: &DocumentId) -> bool {
        lock(&self.in_flight).insert(id.clone())
    }

    fn release(&self, id: &DocumentId) {
        lock(&self.in_flight).remove(id);
    }

    /// Loads the registry's active model when it differs from the one in use, so that
    /// `poststelle model activate|rollback` and `train` take effect without a restart.
    pub async fn reload_model_if_changed(&self) {
        let registry = crate::train::Registry::new(&self.settings.classify.models);
        let Some(active) = registry.active_version() else {
            return;
        };
        let current = self.router();
        if current
            .classifier()
            .model()
            .is_some_and(|m| m.meta.version == active)
        {
            return;
        }
        let (reg, version) = (registry.clone(), active.clone());
        match tokio::task::spawn_blocking(move || reg.load(&version)).await {
            Ok(Ok(model)) => {
                let _ = self
                    .store
                    .record_model(
                        &active,
                        &registry.path(&active).display().to_string(),
                        &model.meta.metrics,
                        true,
                    )
                    .await;
                let model = Arc::new(model);
                // On the router in use now: a threshold raised meanwhile stays.
                self.update_router(|r| {
                    r.with_classifier(Arc::new(r.classifier().with_model(Some(model))))
                });
                tracing::info!(version = active, "activated model loaded");
            }
            Ok(Err(e)) => {
                tracing::error!(version = active, error = %e, "cannot load the activated model; keeping the current one")
            }
            Err(e) => tracing::error!(error = %e, "model loading task failed"),
        }
    }

    /// Runs the workers until cancelled; in-flight work is finished before returning. Work on a
    /// document that panics is logged, cancels `cancel` (the whole daemon stops) and makes this
    /// return an error: a panic is a bug, and a restart resumes from the stored states.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        let panicked: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let mut last_model_check = std::time::Instant::now();
        self.reload_shadow_if_changed().await;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            if last_model_check.elapsed() >= Duration::from_secs(2) {
                last_model_check = std::time::Instant::now();
                self.reload_model_if_changed().await;
                self.reload_shadow_if_changed().await;
            }
            if let Err(e) = self.dispatch(&tracker, &cancel, &panicked).await {
                tracing::error!(error = %e, "pipeline: store error; retrying");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracker.close();
        tracker.wait().await;
        let panicked = lock(&panicked).take();
        match panicked {
            Some(what) => Err(anyhow::anyhow!("pipeline work panicked: {what}")),
            None => Ok(()),
        }
    }

    /// Runs one document's work on the tracker; a panic is recorded and stops the daemon.
    fn spawn_work(
        &self,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
        panicked: &Arc<Mutex<Option<String>>>,
        id: DocumentId,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        use futures::FutureExt;
        let (cancel, panicked) = (cancel.clone(), panicked.clone());
        tracker.spawn(async move {
            if let Err(payload) = std::panic::AssertUnwindSafe(work).catch_unwind().await {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(document = %id, panic = msg, "pipeline work panicked; stopping the daemon");
                lock(&panicked).get_or_insert(format!("document {id}: {msg}"));
                cancel.cancel();
            }
        });
    }

    async fn dispatch(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
        panicked: &Arc<Mutex<Option<String>>>,
    ) -> Result<(), crate::store::StoreError> {
        // Received documents: the longest waiting and the newest, so that a letter arriving
        // while a backlog drains reaches the worker pool (which alternates between the two).
        let mut ids = self.store.ids_in_state(DocState::Received, 32).await?;
        for id in self.store.newest_in_state(DocState::Received, 32).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for state in [DocState::Extracted, DocState::Classified] {
            ids.extend(self.store.ids_in_state(state, 64).await?);
        }
        {
            for id in ids {
                if !self.claim(&id) {
                    continue;
                }
                let this = self.clone();
                let doc = id.clone();
                self.spawn_work(tracker, cancel, panicked, id, async move {
                    this.advance(&doc).await;
                    this.release(&doc);
                    this.wake.notify_one();
                });
            }
        }
        // Stacks waiting to be split (one task each; their pages queue in the pool).
        for batch in self.store.batches_due(8).await? {
            let Some(key) = DocumentId::parse(&batch.id) else {
                continue;
            };
            if !self.claim(&key) {
                continue;
            }
            let this = self.clone();
            self.spawn_work(tracker, cancel, panicked, key.clone(), async move {
                this.split_batch(&batch).await;
                this.release(&key);
                this.wake.notify_one();
            });
        }
        // Deliveries in flight (a searchable PDF being made) stay due: look past them.
        let busy = lock(&self.in_flight).len() as i64;
        for id in self.store.due_for_delivery(64 + busy).await? {
            if !self.claim(&id) {
                continue;
            }
            let this = self.clone();
            let doc = id.clone();
            self.spawn_work(tracker, cancel, panicked, id, async move {
                this.deliver(&doc).await;
                this.release(&doc);
            });
        }
        Ok(())
    }

    /// Moves one document on by one or more steps, up to review/queued.
    pub async fn advance(&self, id: &DocumentId) {
        let doc = match self.store.get(id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(document = %id, error = %e, "cannot load document");
                return;
            }
        };
        let result = match doc.state {
            DocState::Received => self.extract(&doc).await,
            DocState::Extracted | DocState::Classified => self.classify(&doc).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.stage_failed(id, &e).await;
        }
    }

    /// A stage attempt failed for a reason that is not the input's (the input's faults are
    /// quarantined): count it, wait for the backoff, give up as a dead letter after the last.
    async fn stage_failed(&self, id: &DocumentId, error: &anyhow::Error) {
        // The stage may have moved on before failing (extracted, then classification failed).
        let doc = match self.store.get(id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(document = %id, error = %e, "cannot load document after a failed step");
                return;
            }
        };
        if !matches!(
            doc.state,
            DocState::Received | DocState::Extracted | DocState::Classified
        ) {
            return;
        }
        let log = DocumentLog {
            store: &self.store,
            id,
            stage: doc.state,
        };
        let outcome = Outcome::Retry(format!("{error:#}"));
        match self
            .stage_retry
            .record(&log, doc.attempts, outcome, id.as_str())
            .await
        {
            Ok(Next::RetryAt {
                attempts, delay, ..
            }) => {
                tracing::warn!(document = %id, stage = %doc.state, attempts, retry_in = ?delay, error = %format!("{error:#}"), "pipeline step failed; will retry")
            }
            Ok(Next::GiveUp { attempts, .. }) => {
                tracing::error!(document = %id, stage = %doc.state, attempts, error = %format!("{error:#}"), "pipeline step given up: dead letter")
            }
            Err(e) => {
                tracing::error!(document = %id, error = %e, "cannot record the failed step; will retry")
            }
        }
    }

    async fn extract(&self, doc: &DocumentRow) -> anyhow::Result<()> {
        let media = MediaType::from_mime(&doc.media_type)
            .ok_or_else(|| anyhow::anyhow!("unknown media type {}", doc.media_type))?;
        let path = self.blobs.path(&doc.sha256);
        let started = std::time::Instant::now();
        let result = self
            .extractor
            .extract(&path, media, Urgency::route(arrived_ms(doc)))
            .await;
        match result {
            Ok(ex) => {
                let text = ex.text();
                let detail = serde_json::json!({
                    "method": ex.method, "pages_read": ex.pages.len(), "page_count": ex.page_count,
                    "chars": text.chars().count(), "millis": started.elapsed().as_millis() as u64,
                });
                self.store
                    .set_extracted(&doc.id, &text, &serde_json::to_string(&ex)?, detail)
                    .await?;
                self.classify(&self.store.get(&doc.id).await?).await
            }
            Err(e @ (ExtractError::Timeout(_) | ExtractError::Crashed(_))) => {
                self.worker_fault(doc, &e).await
            }
            Err(e) if e.is_input_fault() => self.quarantine(doc, &e).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }

    /// The sandboxed worker ran out of time or died on this document. That may be the file
    /// (a bomb, a parser bug) or the machine (load, the system's OOM killer), so the document
    /// is read again after the stage's backoff, `[extract] worker_fault_attempts` times in
    /// all, before it is quarantined with the reason.
    async fn worker_fault(&self, doc: &DocumentRow, e: &ExtractError) -> anyhow::Result<()> {
        let attempts = doc.attempts + 1;
        let allowed = i64::from(self.settings.extract.worker_fault_attempts);
        if attempts >= allowed {
            return self.quarantine_after(doc, e, attempts).await;
        }
        let delay = self
            .stage_retry
            .backoff
            .delay(attempts as u32, doc.id.as_str());
        let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        tracing::warn!(document = %doc.id, attempts, retry_in = ?delay, error = %e, "the reader ran out of time or died; will read again");
        self.store
            .stage_failed(
                &doc.id,
                DocState::Received,
                attempts,
                at,
                &format!("{e} (Versuch {attempts} von {allowed})"),
            )
            .await?;
        Ok(())
    }

    async fn quarantine(&self, doc: &DocumentRow, e: &ExtractError) -> anyhow::Result<()> {
        self.quarantine_after(doc, e, 1).await
    }

    /// Quarantines a document the reader gave up on after `attempts` attempts.
    async fn quarantine_after(
        &self,
        doc: &DocumentRow,
        e: &ExtractError,
        attempts: i64,
    ) -> anyhow::Result<()> {
        let reason = match attempts {
            1 => e.reason_de(),
            n => format!("{} ({n} Versuche)", e.reason_de()),
        };
        tracing::warn!(document = %doc.id, file = doc.original_name, error = %e, "quarantined");
        let original = self.blobs.path(&doc.sha256);
        let name = format!(
            "{}-{}",
            doc.id,
            crate::intake::safe_name(&doc.original_name)
        );
        let dir = self.settings.hot_folder.quarantine.clone();
        let r = reason.clone();
        // Copied from the blob store (which keeps the original), not read into memory.
        let path = tokio::task::spawn_blocking(move || {
            crate::intake::write_quarantine(
                &dir,
                &name,
                &r,
                crate::intake::QuarantineSource::Copy(&original),
            )
        })
        .await??;
        self.store
            .quarantine_document(
                &doc.id,
                &reason,
                &e.to_string(),
                Some(&path.display().to_string()),
            )
            .await?;
        Ok(())
    }

    async fn classify(&self, doc: &DocumentRow) -> anyhow::Result<()> {
        let ex: Extraction = match self.store.extraction(&doc.id).await? {
            Some(j) => serde_json::from_str(&j)?,
            None => anyhow::bail!("no extraction stored"),
        };
        crate::faults::panic_point(points::BEFORE_ROUTE);
        let router = self.router();
        let reader = router.clone();
        let reading = tokio::task::spawn_blocking(move || reader.read(&ex)).await?;
        // Sender memory: where earlier documents of the same sender went.
        let keys = router.sender_keys(&reading);
        let history = self
            .store
            .sender_history(&doc.id, &keys, crate::classify::sender::HISTORY_DEPTH)
            .await?;
        let shadow = self.shadow_router(&router);
        let (routed, shadow_decision) = tokio::task::spawn_blocking(move || {
            let shadow_reading = shadow.as_ref().map(|_| reading.clone());
            let routed = router.decide_reading(reading, Some(&history));
            // The shadow decides the same reading with the same sender history; whatever
            // happens to it, routing goes on.
            let shadow_decision = shadow.zip(shadow_reading).map(|(s, r)| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    s.decide_reading(r, Some(&history)).decision
                }))
                .map_err(|_| ())
            });
            (routed, shadow_decision)
        })
        .await?;
        let mut decision = routed.decision;
        // A letter of a stack whose split is uncertain waits for a person, whatever its routing.
        if let Some(reason) = self.split_review_reason(doc).await? {
            decision.needs_review = true;
            decision.explanation.review_reason = Some(match decision.explanation.review_reason {
                Some(r) => format!("{reason} {r}"),
                None => reason,
            });
        }
        self.store
            .set_metadata(&doc.id, &routed.metadata, &keys)
            .await?;
        // The Stichprobe: a share of what goes straight through gets a second look too.
        let sampled = !decision.needs_review
            && decision.mailbox.is_some()
            && crate::sample::is_sampled(&doc.id, self.settings.sample.share);
        let next = self
            .store
            .set_decision_sampled(&doc.id, &decision, sampled)
            .await?;
        if let Some(shadow) = shadow_decision {
            self.log_shadow(&doc.id, &decision, shadow).await;
        }
        tracing::info!(
            document = %doc.id, mailbox = ?decision.mailbox.as_ref().map(|m| m.as_str()),
            confidence = decision.confidence, decided_by = ?decision.decided_by, state = %next,
            "classified"
        );
        if next == DocState::Queued {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Logs the shadow's decision beside the active one; a failure is only a warning.
    async fn log_shadow(
        &self,
        id: &DocumentId,
        active: &crate::domain::Decision,
        shadow: Result<crate::domain::Decision, ()>,
    ) {
        let shadow = match shadow {
            Ok(d) => d,
            Err(()) => {
                tracing::warn!(document = %id, "the shadow model failed on this document (panic); routing is not affected");
                return;
            }
        };
        let Some(version) = shadow.explanation.model_version.clone() else {
            return;
        };
        let (a, s) = (SideDecision::of(active), SideDecision::of(&shadow));
        match self.store.record_shadow(id, &version, &a, &s).await {
            Ok(()) => tracing::debug!(
                document = %id, shadow = version, active_mailbox = ?a.mailbox,
                shadow_mailbox = ?s.mailbox, "shadow decision logged"
            ),
            Err(e) => {
                tracing::warn!(document = %id, shadow = version, error = %e, "cannot log the shadow decision")
            }
        }
    }

    /// One delivery attempt for a queued document.
    pub async fn deliver(&self, id: &DocumentId) {
        if let Err(e) = self.try_deliver(id).await {
            tracing::error!(document = %id, error = %e, "delivery bookkeeping failed; will retry");
        }
    }

    async fn try_deliver(&self, id: &DocumentId) -> anyhow::Result<()> {
        let doc = self.store.get(id).await?;
        if doc.state != DocState::Queued {
            return Ok(());
        }
        let mailbox = doc
            .mailbox
            .clone()
            .ok_or_else(|| anyhow::anyhow!("queued without mailbox"))?;
        let Some(mb) = self.settings.mailbox(&mailbox) else {
            let reason = format!("Postfach {mailbox} ist nicht (mehr) konfiguriert.");
            self.store.dead_letter(id, doc.attempts, &reason).await?;
            return Ok(());
        };
        let Some(target) = self.targets.get(&mb.target) else {
            let reason = format!("Zustellziel {} ist nicht konfiguriert.", mb.target);
            self.store.dead_letter(id, doc.attempts, &reason).await?;
            return Ok(());
        };
        if let Gate::Wait(pause) = self.breakers.gate(&mb.target) {
            // The target is paused: the document waits without spending an attempt.
            let until = chrono::Utc::now()
                + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::seconds(60));
            let reason = format!(
                "Zustellziel {} ist vorübergehend pausiert (wiederholte Fehler).",
                mb.target
            );
            self.store
                .defer_delivery(id, &mb.target, until, &reason)
                .await?;
            return Ok(());
        }
        let (rendition, recognised) = self.rendition(&doc).await?;
        let capture = self
            .capture_record(&doc, &rendition, recognised.as_deref())
            .await?;
        let bytes = self.blobs.get(&rendition.sha256)?;
        let ext = MediaType::from_mime(&rendition.media_type)
            .map(|m| m.extension())
            .unwrap_or("bin");
        let metadata = self.store.metadata(id).await?.unwrap_or_default();
        // The clerk of the mailbox it goes to now (a person may have assigned another one).
        let clerk = self.router().clerk(Some(&mailbox), &metadata);
        let mut doc = doc;
        if let Some(d) = doc.decision.as_mut()
            && d.explanation.clerk != clerk
        {
            self.store
                .set_clerk(id, doc.version, clerk.as_ref())
                .await?;
            d.explanation.clerk = clerk.clone();
        }
        let mut sidecar = sidecar(&doc, &mb.name);
        sidecar["metadata"] = serde_json::json!(metadata);
        if let Some(c) = &clerk {
            sidecar["clerk"] = serde_json::json!({"id": c.id, "name": c.name, "reason": c.reason});
        }
        sidecar["delivered"] = serde_json::json!({
            "media_type": rendition.media_type, "sha256": rendition.sha256,
            "size_bytes": bytes.len(),
        });
        sidecar["capture"] = serde_json::json!(capture);
        let item = DeliveryItem {
            document_id: doc.id.clone(),
            mailbox: mailbox.clone(),
            mailbox_name: mb.name.clone(),
            original_name: doc.original_name.clone(),
            media_type: rendition.media_type.clone(),
            extension: ext.to_string(),
            bytes,
            sidecar,
            metadata,
            clerk,
        };
        let result = target.deliver(&item).await;
        match &result {
            Ok(_) | Err(DeliveryError::Permanent(_)) => {
                if self.breakers.success(&mb.target) {
                    self.resume_target(&mb.target).await;
                }
            }
            Err(DeliveryError::Retriable(e)) => {
                self.note_failure(&mb.target, None, e);
            }
            Err(DeliveryError::RetryAfter(e, d)) => {
                self.note_failure(&mb.target, Some(*d), e);
            }
        }
        match result {
            Ok(receipt) => {
                pause_point(points::AFTER_DELIVER).await;
                if self
                    .store
                    .mark_delivered(id, target.name(), &receipt.reference, &mailbox, doc.version)
                    .await?
                {
                    tracing::info!(document = %id, mailbox = %mailbox, reference = receipt.reference, "delivered");
                } else {
                    // A person re-assigned it while it was on its way: the next pass delivers
                    // it to its new mailbox (or it waits in review).
                    tracing::info!(document = %id, mailbox = %mailbox, "delivered, but re-assigned meanwhile");
                    self.wake.notify_one();
                }
            }
            Err(_)
                if self
                    .decided_anew_meanwhile(id, &mailbox, doc.version)
                    .await? =>
            {
                // The failed attempt was for a mailbox the document no longer has: not counted.
                tracing::info!(document = %id, mailbox = %mailbox, "delivery failed, but re-assigned meanwhile");
            }
            Err(e) => {
                let log = DocumentLog {
                    store: &self.store,
                    id,
                    stage: DocState::Queued,
                };
                match self
                    .delivery_retry
                    .record(&log, doc.attempts, Outcome::from(e), id.as_str())
                    .await?
                {
                    Next::RetryAt {
                        attempts,
                        delay,
                        error,
                        ..
                    } => {
                        tracing::warn!(document = %id, attempts, error, retry_in = ?delay, "delivery failed")
                    }
                    Next::GiveUp {
                        attempts, reason, ..
                    } => tracing::error!(document = %id, attempts, %reason, "delivery given up"),
                }
            }
        }
        Ok(())
    }

    /// Whether the document's decision changed (re-assigned, sent back) since its delivery to
    /// `mailbox` with decision `version` began.
    async fn decided_anew_meanwhile(
        &self,
        id: &DocumentId,
        mailbox: &crate::domain::MailboxId,
        version: i64,
    ) -> anyhow::Result<bool> {
        let now = self.store.get(id).await?;
        Ok(now.state != DocState::Queued
            || now.mailbox.as_ref() != Some(mailbox)
            || now.version != version)
    }

    fn note_failure(&self, target: &str, retry_after: Option<Duration>, error: &str) {
        if let Some(pause) = self.breakers.failure(target, retry_after, error) {
            tracing::warn!(target, pause = ?pause, "delivery target paused (circuit breaker)");
        }
    }

    /// The target works again: documents that wait for it are due now.
    async fn resume_target(&self, target: &str) {
        let mailboxes: Vec<_> = self
            .settings
            .mailboxes
            .iter()
            .chain(std::iter::once(&self.settings.review))
            .filter(|m| m.target == target)
            .map(|m| m.id.clone())
            .collect();
        match self.store.resume_target(target, &mailboxes).await {
            Ok(n) if n > 0 => {
                tracing::info!(target, documents = n, "delivery target answers again");
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(target, error = %e, "cannot resume waiting documents"),
        }
    }
}

/// The guarded value, also after a panic elsewhere poisoned the lock (the sets and slots it
/// guards stay consistent: every update is a single call).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A document's side of the retry policy: in the outbox (`queued`) a failed delivery waits or
/// becomes a dead letter; in the extract/classify stages a failed step does the same.
struct DocumentLog<'a> {
    store: &'a Store,
    id: &'a DocumentId,
    stage: DocState,
}

impl AttemptLog for DocumentLog<'_> {
    type Error = crate::store::StoreError;

    async fn schedule(
        &self,
        attempts: i64,
        at: chrono::DateTime<chrono::Utc>,
        error: &str,
    ) -> Result<(), Self::Error> {
        match self.stage {
            DocState::Queued => {
                self.store
                    .schedule_retry(self.id, attempts, at, error)
                    .await
            }
            stage => {
                self.store
                    .stage_failed(self.id, stage, attempts, at, error)
                    .await
            }
        }
    }

    async fn give_up(&self, attempts: i64, reason: &str) -> Result<(), Self::Error> {
        match self.stage {
            DocState::Queued => self.store.dead_letter(self.id, attempts, reason).await,
            stage => {
                self.store
                    .stage_dead_letter(self.id, stage, attempts, reason)
                    .await
            }
        }
    }
}

impl Reasons for DocumentLog<'_> {
    fn permanent_reason(&self, error: &str) -> String {
        match self.stage {
            DocState::Queued => format!("Zustellung abgelehnt: {error}"),
            _ => self.exhausted_reason(1, error),
        }
    }

    fn exhausted_reason(&self, attempts: i64, error: &str) -> String {
        match self.stage {
            DocState::Queued => format!("Zustellung nach {attempts} Versuchen aufgegeben: {error}"),
            DocState::Received => format!(
                "Das Dokument konnte nach {attempts} Versuchen nicht gelesen werden (Fehler im System, nicht in der Datei): {error}"
            ),
            _ => format!(
                "Die Zuordnung ist nach {attempts} Versuchen gescheitert (Fehler im System, nicht im Dokument): {error}"
            ),
        }
    }
}

impl Pipeline {
    /// The bytes to deliver: for scans (OCR'd documents) a searchable PDF, made once in the
    /// sandbox and linked to the document; else the original. The first link is kept, so a
    /// retried delivery sends the same bytes. A scan whose searchable PDF cannot be made is
    /// delivered as it arrived (recorded in the audit trail).
    /// Also answers the pages recognised for a searchable PDF made now (every page once: the
    /// capture record's quality check reads them).
    async fn rendition(&self, doc: &DocumentRow) -> anyhow::Result<(Rendition, Option<Vec<Page>>)> {
        if let Some(r) = self.store.rendition(&doc.id).await? {
            return Ok((r, None));
        }
        let original = Rendition {
            sha256: doc.sha256.clone(),
            media_type: doc.media_type.clone(),
        };
        if doc.media_type == MediaType::Eml.mime()
            && self.settings.imap.deliver_as == crate::intake::settings::MailDelivery::Pdf
        {
            return Ok((self.mail_rendition(doc, original).await?, None));
        }
        // A scanned ZUGFeRD PDF keeps its bytes: the embedded XML is the invoice.
        let ex: Option<Extraction> = match self.store.extraction(&doc.id).await? {
            Some(j) => Some(serde_json::from_str(&j)?),
            None => None,
        };
        let Some(ex) =
            ex.filter(|e| e.method == crate::extract::Method::Ocr && e.invoice.is_none())
        else {
            return Ok((original, None));
        };
        let Some(media) = MediaType::from_mime(&doc.media_type) else {
            return Ok((original, None));
        };
        let path = self.blobs.path(&doc.sha256);
        let started = std::time::Instant::now();
        let urgency = Urgency::background(arrived_ms(doc));
        let mut recognised = None;
        let made = match self.remaining_pages(doc, &ex, media, urgency).await {
            Ok(pages) => {
                // Pages recognised for the PDF alone: routing read the others.
                let later = pages.len().saturating_sub(ex.pages.len());
                let made = self
                    .extractor
                    .searchable_pdf(&path, media, &pages, urgency)
                    .await;
                recognised = Some(pages);
                made.map(|(pdf, made)| {
                    let detail = serde_json::json!({
                        "pages": made.pages, "text_pages": made.text_pages,
                        "recognised_after_routing": later, "pdfa": made.pdfa,
                        "pdfa_obstacles": made.pdfa_obstacles,
                    });
                    (pdf, detail)
                })
            }
            Err(e) => Err(e),
        };
        let rendition = self
            .link_rendition(doc, original, "searchable_pdf", started, made)
            .await?;
        Ok((rendition, recognised))
    }

    /// Every page of a scan recognised once: the pages routing read come from its extraction,
    /// the rest are recognised now, in the background (after page 1 of newer documents), all at
    /// once so that idle workers share them. A page that cannot be read gets no text layer.
    async fn remaining_pages(
        &self,
        doc: &DocumentRow,
        ex: &Extraction,
        media: MediaType,
        urgency: Urgency,
    ) -> Result<Vec<Page>, ExtractError> {
        let mut pages = ex.pages.clone();
        let read = pages.len() as u32;
        let last = ex.page_count.min(self.settings.extract.max_pages);
        if last <= read {
            return Ok(pages);
        }
        let path = self.blobs.path(&doc.sha256);
        let jobs = (read + 1..=last).map(|n| {
            let path = path.clone();
            async move { (n, self.extractor.ocr_page(&path, media, n, urgency).await) }
        });
        for (n, result) in futures::future::join_all(jobs).await {
            match result {
                Ok(Some(page)) => pages.push(page),
                Ok(None) => {}
                Err(e) if e.is_input_fault() => {
                    tracing::warn!(document = %doc.id, page = n, error = %e, "page not recognised; it gets no text layer");
                }
                Err(e) => return Err(e),
            }
        }
        pages.sort_by_key(|p| p.number);
        Ok(pages)
    }

    /// Stores a made rendition (or, when the input cannot be rendered, records that the original
    /// is delivered) and links it to the document, so every retry sends the same bytes.
    async fn link_rendition(
        &self,
        doc: &DocumentRow,
        original: Rendition,
        kind: &str,
        started: std::time::Instant,
        made: Result<(Vec<u8>, serde_json::Value), ExtractError>,
    ) -> anyhow::Result<Rendition> {
        // Until the rendition is linked, the purge must not take its blob for an orphan.
        let _blob = self.blobs.hold().await;
        let (rendition, detail) = match made {
            Ok((pdf, made)) => {
                let blobs = self.blobs.clone();
                let size = pdf.len();
                let sha = tokio::task::spawn_blocking(move || blobs.put(&pdf)).await??;
                (
                    Rendition {
                        sha256: sha.clone(),
                        media_type: MediaType::Pdf.mime().to_string(),
                    },
                    {
                        let mut detail = serde_json::json!({
                            "kind": kind, "sha256": sha, "size_bytes": size,
                            "millis": started.elapsed().as_millis() as u64,
                        });
                        if let (Some(d), Some(m)) = (detail.as_object_mut(), made.as_object()) {
                            d.extend(m.clone());
                        }
                        detail
                    },
                )
            }
            Err(e) if e.is_input_fault() => {
                tracing::warn!(document = %doc.id, rendition = kind, error = %e, "rendition failed; delivering the original");
                let mut detail = serde_json::json!({"kind": "original", "detail": e.to_string()});
                detail[format!("{kind}_failed")] = serde_json::json!(e.reason_de());
                (original, detail)
            }
            Err(e) => return Err(anyhow::anyhow!(e)),
        };
        Ok(self
            .store
            .set_rendition(&doc.id, &rendition, detail)
            .await?)
    }
}

impl Pipeline {
    /// An e-mail delivered as PDF (`[intake.imap] deliver_as = "pdf"`): made once in the
    /// sandbox from the stored `.eml` and linked like a searchable PDF. A message the PDF cannot
    /// be made of is delivered as it arrived (recorded in the audit trail).
    async fn mail_rendition(
        &self,
        doc: &DocumentRow,
        original: Rendition,
    ) -> anyhow::Result<Rendition> {
        let path = self.blobs.path(&doc.sha256);
        let started = std::time::Instant::now();
        let made = self
            .extractor
            .mail_pdf(&path, Urgency::background(arrived_ms(doc)))
            .await
            .map(|pdf| (pdf, serde_json::json!({})));
        self.link_rendition(doc, original, "mail_pdf", started, made)
            .await
    }
}

impl Pipeline {
    /// The document's capture record (Erfassungsprotokoll): the stored one, else made now and
    /// stored once with its audit event (and, for a share of the scans, its place in the
    /// Sichtkontrolle). The scan parameters are read from the file in the sandbox; the
    /// quality check reads the pages recognised for the searchable PDF (`recognised`), else
    /// those routing read.
    async fn capture_record(
        &self,
        doc: &DocumentRow,
        rendition: &Rendition,
        recognised: Option<&[Page]>,
    ) -> anyhow::Result<crate::capture::CaptureRecord> {
        use crate::capture::{Facts, StackOrigin};
        use crate::extract::Method;
        if let Some(r) = self.store.capture_record(&doc.id).await? {
            return Ok(r);
        }
        let ex: Option<Extraction> = match self.store.extraction(&doc.id).await? {
            Some(j) => serde_json::from_str(&j).ok(),
            None => None,
        };
        let ocr = ex.as_ref().is_some_and(|e| e.method == Method::Ocr);
        let media = MediaType::from_mime(&doc.media_type);
        let scanned = match media {
            Some(MediaType::Png | MediaType::Jpeg | MediaType::Tiff) => media,
            Some(MediaType::Pdf) if ocr => media,
            _ => None,
        };
        let scan = match scanned {
            Some(media) => {
                let path = self.blobs.path(&doc.sha256);
                let urgency = Urgency::background(arrived_ms(doc));
                match self.extractor.scan_parameters(&path, media, urgency).await {
                    Ok(p) => Some(p),
                    Err(e) if e.is_input_fault() => {
                        tracing::warn!(document = %doc.id, error = %e, "scan parameters not readable; the capture record goes without them");
                        None
                    }
                    Err(e) => return Err(anyhow::anyhow!(e)),
                }
            }
            None => None,
        };
        let ocr_pages: Vec<Page> = match recognised {
            Some(pages) => pages.to_vec(),
            None if ocr => ex.as_ref().map(|e| e.pages.clone()).unwrap_or_default(),
            None => Vec::new(),
        };
        let (received_at, stack, blank) = match &doc.batch_id {
            Some(id) => {
                let batch = self.store.batch(id).await?;
                let pages = doc.batch_pages.clone().unwrap_or_default();
                let blank = batch
                    .plan
                    .as_ref()
                    .map(|p| crate::capture::blank_pages_of(p, &pages))
                    .unwrap_or_default();
                (
                    batch.created_at.clone(),
                    Some(StackOrigin {
                        id: batch.id,
                        file: batch.original_name,
                        pages,
                        sha256: batch.sha256,
                    }),
                    blank,
                )
            }
            None => (doc.created_at.clone(), None, Vec::new()),
        };
        let uploaded_by = match doc.source.as_str() {
            "upload" => self.store.received_by(&doc.id).await?,
            _ => None,
        };
        let now = crate::store::now_str();
        let record = crate::capture::build(Facts {
            document_id: doc.id.as_str(),
            received_at: &received_at,
            source: &doc.source,
            station: self.settings.hot_folder.station.as_deref(),
            uploaded_by: uploaded_by.as_deref(),
            stack,
            blank_pages_removed: blank,
            scan,
            page_count: ex.as_ref().map_or(1, |e| e.page_count.max(1)),
            ocr_pages: &ocr_pages,
            sha256_original: &doc.sha256,
            rendition: (&rendition.sha256, &rendition.media_type),
            visual_check_share: self.settings.capture.visual_check_share,
            now: &now,
        });
        let stored = self.store.record_capture(&record).await?;
        if stored.visual_check {
            tracing::info!(document = %doc.id, "scan queued for the Sichtkontrolle");
        }
        Ok(stored)
    }
}

/// When the document arrived, in milliseconds since 1970 (its place in the worker queue).
fn arrived_ms(doc: &DocumentRow) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&doc.arrived_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// The JSON sidecar delivered with a document: metadata, decision and explanation; for a
/// letter of a stack, the stack's id and its pages there.
pub fn sidecar(doc: &DocumentRow, mailbox_name: &str) -> serde_json::Value {
    let mut sidecar = sidecar_fields(doc, mailbox_name);
    if let Some(batch) = &doc.batch_id {
        sidecar["batch"] = serde_json::json!({"id": batch, "pages": doc.batch_pages});
    }
    sidecar
}

fn sidecar_fields(doc: &DocumentRow, mailbox_name: &str) -> serde_json::Value {
    serde_json::json!({
        "document_id": doc.id,
        "mailbox": doc.mailbox,
        "mailbox_name": mailbox_name,
        "original_name": doc.original_name,
        "media_type": doc.media_type,
        "sha256": doc.sha256,
        "size_bytes": doc.size_bytes,
        "source": doc.source,
        "received_at": doc.created_at,
        "confidence": doc.confidence,
        "decided_by": doc.decided_by,
        "decision": doc.decision,
    })
}

impl Pipeline {
    /// The German review reason of a stack's letter whose split is uncertain, from the stack's
    /// plan; `None` for any other document.
    async fn split_review_reason(&self, doc: &DocumentRow) -> anyhow::Result<Option<String>> {
        let (Some(batch), Some(pages)) = (&doc.batch_id, &doc.batch_pages) else {
            return Ok(None);
        };
        let batch = self.store.batch(batch).await?;
        let Some(plan) = batch.plan else {
            return Ok(None);
        };
        let plan: crate::batch::Plan = serde_json::from_value(plan)?;
        Ok(plan
            .parts
            .iter()
            .find(|p| &p.range() == pages)
            .and_then(|p| p.review_reason.clone()))
    }

    /// The separation's settings.
    fn split_settings(&self) -> crate::batch::SplitSettings {
        let h = &self.settings.hot_folder;
        crate::batch::SplitSettings {
            separator_barcode: h.separator_barcode.clone(),
            drop_blank_pages: h.drop_blank_pages,
            min_confidence: h.split_min_confidence,
            address_markers: self.settings.address_markers.clone(),
        }
    }

    /// Splits one stack (see [`crate::batch`]); a failure that is not the stack's fault is
    /// retried after the stage's backoff, and after the last attempt the stack is quarantined
    /// with the reason.
    pub async fn split_batch(&self, batch: &BatchRow) {
        let result = self.try_split_batch(batch, None).await;
        let Err(e) = result else { return };
        let attempts = batch.attempts + 1;
        let error = format!("{e:#}");
        if attempts >= i64::from(self.settings.extract.max_attempts) {
            tracing::error!(batch = batch.id, attempts, error, "stack given up");
            let reason = format!(
                "Der Stapel konnte nach {attempts} Versuchen nicht geteilt werden (Fehler im \
                 System, nicht in der Datei): {error}"
            );
            if let Err(e) = self.quarantine_stack(batch, &reason, &error).await {
                tracing::error!(batch = batch.id, error = %e, "cannot quarantine the stack");
            }
            return;
        }
        let delay = self.stage_retry.backoff.delay(attempts as u32, &batch.id);
        let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        tracing::warn!(batch = batch.id, attempts, retry_in = ?delay, error, "splitting the stack failed; will retry");
        if let Err(e) = self
            .store
            .batch_failed(&batch.id, attempts, at, &error)
            .await
        {
            tracing::error!(batch = batch.id, error = %e, "cannot record the failed attempt");
        }
    }

    /// Splits a stack: its pages analysed (those kept from an earlier attempt are not read
    /// again), the plan made, one PDF per part, then the parts committed in one transaction.
    /// With `starts` (a person's split points) a split stack is split anew.
    pub async fn try_split_batch(
        &self,
        batch: &BatchRow,
        starts: Option<&[u32]>,
    ) -> anyhow::Result<Vec<DocumentId>> {
        use crate::extract::batch::{AnalyseSpec, PageAnalysis, StoredPage};
        let path = self.blobs.path(&batch.sha256);
        let media = MediaType::from_mime(&batch.media_type).unwrap_or(MediaType::Pdf);
        let spec = AnalyseSpec {
            separator_barcode: self.settings.hot_folder.separator_barcode.clone(),
        };
        let urgency = Urgency::background(
            chrono::DateTime::parse_from_rfc3339(&batch.arrived_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0),
        );
        let mut pages: BTreeMap<u32, StoredPage> = BTreeMap::new();
        for (n, json) in self.store.batch_pages(&batch.id).await? {
            pages.insert(n, serde_json::from_str(&json)?);
        }
        let stored_count = |pages: &BTreeMap<u32, StoredPage>| {
            pages.values().find_map(|p| match p {
                StoredPage::Analysed(a) => Some(a.page_count),
                StoredPage::Broken(_) => None,
            })
        };
        let count = match stored_count(&pages) {
            Some(c) => c,
            None => {
                // Page 1 tells the page count (and whether the stack can be read at all).
                match self
                    .extractor
                    .analyse_page(&path, media, 1, &spec, urgency)
                    .await
                {
                    Ok(Some(a)) => {
                        let count = a.page_count;
                        let stored = StoredPage::Analysed(a);
                        self.store
                            .save_batch_page(&batch.id, 1, count, &serde_json::to_string(&stored)?)
                            .await?;
                        pages.insert(1, stored);
                        count
                    }
                    Ok(None) => {
                        let reason = "Der Stapel hat keine Seiten.";
                        self.quarantine_stack(batch, reason, "no pages").await?;
                        anyhow::bail!("stack {} has no pages", batch.id);
                    }
                    Err(e) if e.is_input_fault() && stack_unreadable(&e) => {
                        self.quarantine_stack(batch, &e.reason_de(), &e.to_string())
                            .await?;
                        anyhow::bail!("stack {} unreadable: {e}", batch.id);
                    }
                    Err(e) if e.is_input_fault() => {
                        let stored = StoredPage::Broken(e.reason_de());
                        // The count is not known from a broken page 1: ask page 2 below.
                        self.store
                            .save_batch_page(&batch.id, 1, 0, &serde_json::to_string(&stored)?)
                            .await?;
                        pages.insert(1, stored);
                        0
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let count = if count == 0 {
            self.page_count_after_broken_first(&path, media, &spec, urgency, batch, &mut pages)
                .await?
        } else {
            count
        };
        let missing: Vec<u32> = (1..=count).filter(|n| !pages.contains_key(n)).collect();
        let jobs = missing.iter().map(|&n| {
            let (path, spec) = (path.clone(), spec.clone());
            async move {
                let result = self
                    .extractor
                    .analyse_page(&path, media, n, &spec, urgency)
                    .await;
                let stored = match result {
                    Ok(Some(a)) => StoredPage::Analysed(a),
                    Ok(None) => StoredPage::Broken("Die Seite fehlt im Stapel.".into()),
                    Err(e) if e.is_input_fault() => StoredPage::Broken(e.reason_de()),
                    Err(e) => return Err(anyhow::anyhow!(e)),
                };
                self.store
                    .save_batch_page(&batch.id, n, count, &serde_json::to_string(&stored)?)
                    .await?;
                Ok::<_, anyhow::Error>((n, stored))
            }
        });
        for r in futures::future::join_all(jobs).await {
            let (n, stored) = r?;
            pages.insert(n, stored);
        }
        pause_point(points::BATCH_ANALYSED).await;
        let list: Vec<(u32, Result<PageAnalysis, String>)> = pages
            .into_iter()
            .map(|(n, p)| match p {
                StoredPage::Analysed(a) => (n, Ok(a)),
                StoredPage::Broken(r) => (n, Err(r)),
            })
            .collect();
        let plan = crate::batch::plan(&list, &self.split_settings(), starts);
        let analysed: BTreeMap<u32, &PageAnalysis> = list
            .iter()
            .filter_map(|(n, a)| a.as_ref().ok().map(|a| (*n, a)))
            .collect();
        let _blob = self.blobs.hold().await;
        let mut parts = Vec::new();
        for part in &plan.parts {
            let pdf = match self
                .extractor
                .select_pages(&path, media, &part.pages, urgency)
                .await
            {
                Ok(pdf) => pdf,
                Err(e) if e.is_input_fault() => {
                    // The part cannot be cut out: the stack's original goes to the quarantine
                    // in its place, with the reason.
                    let reason = format!(
                        "Die Seiten {} des Stapels konnten nicht herausgelöst werden: {}",
                        part.range(),
                        e.reason_de()
                    );
                    let original = self.blobs.path(&batch.sha256);
                    let sha = batch.sha256.clone();
                    parts.push((part, sha, 0, Some(reason), original));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let blobs = self.blobs.clone();
            let size = pdf.len();
            let sha = tokio::task::spawn_blocking(move || blobs.put(&pdf)).await??;
            let file = self.blobs.path(&sha);
            parts.push((part, sha, size, part.broken.clone(), file));
        }
        let mut new_parts = Vec::new();
        for (part, sha, size, broken, file) in parts {
            let broken = match broken {
                Some(reason) => {
                    let name = format!(
                        "{}-Seiten-{}-{}",
                        batch.id,
                        part.range(),
                        crate::intake::safe_name(&batch.original_name)
                    );
                    let (dir, r) = (self.settings.hot_folder.quarantine.clone(), reason.clone());
                    let path = tokio::task::spawn_blocking(move || {
                        crate::intake::write_quarantine(
                            &dir,
                            &name,
                            &r,
                            crate::intake::QuarantineSource::Copy(&file),
                        )
                    })
                    .await??;
                    Some((reason, path.display().to_string()))
                }
                None => None,
            };
            let extraction = if broken.is_none() {
                let ex = part_extraction(part, &analysed);
                Some((ex.text(), serde_json::to_string(&ex)?))
            } else {
                None
            };
            new_parts.push(NewPart {
                sha256: sha,
                size_bytes: size as i64,
                pages: part.range(),
                extraction,
                broken,
            });
        }
        pause_point(points::BATCH_BEFORE_SPLIT).await;
        let plan_json = serde_json::to_value(&plan)?;
        let ids = match starts {
            None => {
                self.store
                    .split_batch(&batch.id, &plan_json, &new_parts, "system")
                    .await?
            }
            Some(_) => {
                self.store
                    .resplit_batch(&batch.id, &plan_json, &new_parts, "system")
                    .await?
            }
        };
        tracing::info!(
            batch = batch.id,
            pages = count,
            letters = ids.len(),
            uncertain = plan.uncertain(),
            "stack split"
        );
        self.wake.notify_one();
        Ok(ids)
    }

    /// The page count of a stack whose page 1 is broken: the first page that reads tells it.
    async fn page_count_after_broken_first(
        &self,
        path: &std::path::Path,
        media: MediaType,
        spec: &crate::extract::batch::AnalyseSpec,
        urgency: Urgency,
        batch: &BatchRow,
        pages: &mut BTreeMap<u32, crate::extract::batch::StoredPage>,
    ) -> anyhow::Result<u32> {
        use crate::extract::batch::StoredPage;
        let mut n = 2;
        loop {
            match self
                .extractor
                .analyse_page(path, media, n, spec, urgency)
                .await
            {
                Ok(Some(a)) => {
                    let count = a.page_count;
                    let stored = StoredPage::Analysed(a);
                    self.store
                        .save_batch_page(&batch.id, n, count, &serde_json::to_string(&stored)?)
                        .await?;
                    pages.insert(n, stored);
                    return Ok(count);
                }
                Ok(None) => return Ok(n - 1),
                Err(e) if e.is_input_fault() => {
                    let stored = StoredPage::Broken(e.reason_de());
                    self.store
                        .save_batch_page(&batch.id, n, 0, &serde_json::to_string(&stored)?)
                        .await?;
                    pages.insert(n, stored);
                    n += 1;
                    if n > 10_000 {
                        anyhow::bail!("no readable page in stack {}", batch.id);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Quarantines a stack that cannot be split: a copy of its original beside the reason.
    async fn quarantine_stack(
        &self,
        batch: &BatchRow,
        reason: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let original = self.blobs.path(&batch.sha256);
        let name = format!(
            "{}-{}",
            batch.id,
            crate::intake::safe_name(&batch.original_name)
        );
        let (dir, r) = (
            self.settings.hot_folder.quarantine.clone(),
            reason.to_string(),
        );
        let path = tokio::task::spawn_blocking(move || {
            crate::intake::write_quarantine(
                &dir,
                &name,
                &r,
                crate::intake::QuarantineSource::Copy(&original),
            )
        })
        .await??;
        self.store
            .quarantine_batch(&batch.id, reason, detail, Some(&path.display().to_string()))
            .await?;
        Ok(())
    }
}

/// Whether an error of page 1 means the whole stack cannot be read (not one broken page).
fn stack_unreadable(e: &ExtractError) -> bool {
    match e {
        ExtractError::BrokenPdf(d) => d.starts_with("stack:"),
        ExtractError::Encrypted(_) | ExtractError::Empty => true,
        _ => false,
    }
}

/// The extraction of one part, from the stack's analysed pages: its pages renumbered from 1,
/// every page read once (a kept blank page has no words).
fn part_extraction(
    part: &crate::batch::Part,
    analysed: &BTreeMap<u32, &crate::extract::batch::PageAnalysis>,
) -> Extraction {
    let pages: Vec<Page> = part
        .pages
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let number = i as u32 + 1;
            match analysed.get(n) {
                Some(a) => match &a.ocr {
                    Some(p) => Page {
                        number,
                        ..p.clone()
                    },
                    None => Page {
                        number,
                        text: String::new(),
                        words: Vec::new(),
                        width: a.width as f32,
                        height: a.height as f32,
                        units_per_mm: a.units_per_mm,
                    },
                },
                None => Page {
                    number,
                    text: String::new(),
                    words: Vec::new(),
                    width: 0.0,
                    height: 0.0,
                    units_per_mm: 0.0,
                },
            }
        })
        .collect();
    Extraction {
        media_type: MediaType::Pdf,
        method: crate::extract::Method::Ocr,
        page_count: pages.len() as u32,
        pages,
        invoice: None,
    }
}
