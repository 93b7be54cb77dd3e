//! The pipeline: workers that move documents through their states, with the database as the
//! durable buffer between stages. Each stage reads a document's state, does its work and writes
//! the next state in one transaction; after a crash, work resumes from the stored states.
//!
//! - `received -> extracted` (sandboxed extraction; unreadable input -> `quarantined`)
//! - `extracted -> review | queued` (classification)
//! - `queued -> delivered` (outbox: retries with backoff and jitter, `dead_letter` after N)

use crate::classify::Classifier;
use crate::config::Settings;
use crate::deliver::breaker::{Breakers, Gate};
use crate::deliver::{Delivery, DeliveryError, DeliveryItem};
use crate::domain::{DocState, DocumentId};
use crate::extract::{ExtractError, Extraction, Extractor, MediaType, zones};
use crate::faults::{pause_point, points};
use crate::store::blobs::BlobStore;
use crate::store::metadata::Rendition;
use crate::store::{DocumentRow, Store};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
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
    /// Current classifier (replaced when a new model is activated).
    pub classifier: RwLock<Arc<Classifier>>,
    /// Delivery targets by name.
    pub targets: BTreeMap<String, Arc<dyn Delivery>>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Wakes the workers.
    pub wake: Arc<Notify>,
    in_flight: Mutex<HashSet<DocumentId>>,
    extract_slots: Semaphore,
    breakers: Breakers,
}

impl Pipeline {
    /// Assembles the pipeline.
    pub fn new(
        store: Store,
        blobs: BlobStore,
        extractor: Extractor,
        classifier: Classifier,
        targets: BTreeMap<String, Arc<dyn Delivery>>,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
    ) -> Self {
        let workers = settings.extract.workers;
        let breakers = Breakers::new(
            settings.deliver.breaker_threshold,
            settings.deliver.breaker_cooldown,
        );
        Self {
            store,
            blobs,
            extractor,
            classifier: RwLock::new(Arc::new(classifier)),
            targets,
            settings,
            wake,
            in_flight: Mutex::new(HashSet::new()),
            extract_slots: Semaphore::new(workers),
            breakers,
        }
    }

    /// The classifier in force.
    pub fn classifier(&self) -> Arc<Classifier> {
        match self.classifier.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the classifier (e.g. after a model activation).
    pub fn set_classifier(&self, c: Classifier) {
        match self.classifier.write() {
            Ok(mut g) => *g = Arc::new(c),
            Err(p) => *p.into_inner() = Arc::new(c),
        }
    }

    fn claim(&self, id: &DocumentId) -> bool {
        match self.in_flight.lock() {
            Ok(mut s) => s.insert(id.clone()),
            Err(p) => p.into_inner().insert(id.clone()),
        }
    }

    fn release(&self, id: &DocumentId) {
        match self.in_flight.lock() {
            Ok(mut s) => s.remove(id),
            Err(p) => p.into_inner().remove(id),
        };
    }

    /// Loads the registry's active model when it differs from the one in use, so that
    /// `poststelle model activate|rollback` and `train` take effect without a restart.
    pub async fn reload_model_if_changed(&self) {
        let registry = crate::train::Registry::new(&self.settings.classify.models);
        let Some(active) = registry.active_version() else {
            return;
        };
        let current = self.classifier();
        if current
            .model
            .as_ref()
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
                let mut next = (*current).clone();
                next.model = Some(Arc::new(model));
                self.set_classifier(next);
                tracing::info!(version = active, "activated model loaded");
            }
            Ok(Err(e)) => {
                tracing::error!(version = active, error = %e, "cannot load the activated model; keeping the current one")
            }
            Err(e) => tracing::error!(error = %e, "model loading task failed"),
        }
    }

    /// Runs the workers until cancelled; in-flight work is finished before returning.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let tracker = TaskTracker::new();
        let mut last_model_check = std::time::Instant::now();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            if last_model_check.elapsed() >= Duration::from_secs(2) {
                last_model_check = std::time::Instant::now();
                self.reload_model_if_changed().await;
            }
            if let Err(e) = self.dispatch(&tracker).await {
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
    }

    async fn dispatch(
        self: &Arc<Self>,
        tracker: &TaskTracker,
    ) -> Result<(), crate::store::StoreError> {
        for state in [
            DocState::Received,
            DocState::Extracted,
            DocState::Classified,
        ] {
            for id in self.store.ids_in_state(state, 64).await? {
                if !self.claim(&id) {
                    continue;
                }
                let this = self.clone();
                tracker.spawn(async move {
                    this.advance(&id).await;
                    this.release(&id);
                    this.wake.notify_one();
                });
            }
        }
        for id in self.store.due_for_delivery(64).await? {
            if !self.claim(&id) {
                continue;
            }
            let this = self.clone();
            tracker.spawn(async move {
                this.deliver(&id).await;
                this.release(&id);
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
            tracing::error!(document = %id, error = %e, "pipeline step failed; will retry");
        }
    }

    async fn extract(&self, doc: &DocumentRow) -> anyhow::Result<()> {
        let media = MediaType::from_mime(&doc.media_type)
            .ok_or_else(|| anyhow::anyhow!("unknown media type {}", doc.media_type))?;
        let path = self.blobs.path(&doc.sha256);
        let permit = self.extract_slots.acquire().await?;
        let started = std::time::Instant::now();
        let result = self.extractor.extract(&path, media).await;
        drop(permit);
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
            Err(e) if e.is_input_fault() => self.quarantine(doc, &e).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }

    async fn quarantine(&self, doc: &DocumentRow, e: &ExtractError) -> anyhow::Result<()> {
        let reason = e.reason_de();
        tracing::warn!(document = %doc.id, file = doc.original_name, error = %e, "quarantined");
        let bytes = self.blobs.get(&doc.sha256)?;
        let name = format!(
            "{}-{}",
            doc.id,
            crate::intake::safe_name(&doc.original_name)
        );
        let dir = self.settings.hot_folder.quarantine.clone();
        let r = reason.clone();
        let path = tokio::task::spawn_blocking(move || {
            crate::intake::write_quarantine(&dir, &name, &r, None, Some(&bytes))
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
        let zones = zones::find(&ex, &self.settings.address_markers);
        let mut meta = crate::extract::metadata::extract(&zones, &self.settings.address_markers);
        if let Some(inv) = &ex.invoice {
            crate::extract::metadata::merge_invoice(&mut meta, inv);
        }
        self.store.set_metadata(&doc.id, &meta).await?;
        let routed = ex.invoice.as_ref().and_then(|inv| {
            crate::classify::einvoice::decide(inv, &self.settings.einvoice.routes, &zones)
        });
        let decision = match routed {
            Some(d) => d,
            None => {
                let classifier = self.classifier();
                let decision =
                    tokio::task::spawn_blocking(move || classifier.decide(&zones)).await?;
                match ex.pages.first() {
                    Some(page1) if doc.media_type == MediaType::Eml.mime() => {
                        let recipients = crate::extract::mail::recipients_in_text(&page1.text);
                        by_recipient(&self.settings, &recipients, decision)
                    }
                    _ => decision,
                }
            }
        };
        let next = self.store.set_decision(&doc.id, &decision).await?;
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
        let rendition = self.rendition(&doc).await?;
        let bytes = self.blobs.get(&rendition.sha256)?;
        let ext = MediaType::from_mime(&rendition.media_type)
            .map(|m| m.extension())
            .unwrap_or("bin");
        let metadata = self.store.metadata(id).await?.unwrap_or_default();
        let mut sidecar = sidecar(&doc, &mb.name);
        sidecar["metadata"] = serde_json::json!(metadata);
        sidecar["delivered"] = serde_json::json!({
            "media_type": rendition.media_type, "sha256": rendition.sha256,
            "size_bytes": bytes.len(),
        });
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
        };
        let result = target.deliver(&item).await;
        match &result {
            Ok(_) | Err(DeliveryError::Permanent(_)) => {
                if self.breakers.success(&mb.target) {
                    self.resume_target(&mb.target).await;
                }
            }
            Err(DeliveryError::Retriable(_)) => {
                self.note_failure(&mb.target, None);
            }
            Err(DeliveryError::RetryAfter(_, d)) => {
                self.note_failure(&mb.target, Some(*d));
            }
        }
        match result {
            Ok(receipt) => {
                pause_point(points::AFTER_DELIVER).await;
                self.store
                    .mark_delivered(id, target.name(), &receipt.reference)
                    .await?;
                tracing::info!(document = %id, mailbox = %mailbox, reference = receipt.reference, "delivered");
            }
            Err(e) => {
                let attempts = doc.attempts + 1;
                let max = i64::from(self.settings.deliver.max_attempts);
                match e {
                    DeliveryError::Permanent(msg) => {
                        self.store
                            .dead_letter(id, attempts, &format!("Zustellung abgelehnt: {msg}"))
                            .await?;
                    }
                    DeliveryError::Retriable(msg) | DeliveryError::RetryAfter(msg, _)
                        if attempts >= max =>
                    {
                        self.store
                            .dead_letter(
                                id,
                                attempts,
                                &format!("Zustellung nach {attempts} Versuchen aufgegeben: {msg}"),
                            )
                            .await?;
                    }
                    DeliveryError::Retriable(msg) => {
                        let delay = backoff(&self.settings.deliver, attempts, id);
                        self.retry_later(id, attempts, delay, &msg).await?;
                    }
                    DeliveryError::RetryAfter(msg, asked) => {
                        let delay = backoff(&self.settings.deliver, attempts, id).max(asked);
                        self.retry_later(id, attempts, delay, &msg).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn note_failure(&self, target: &str, retry_after: Option<Duration>) {
        if let Some(pause) = self.breakers.failure(target, retry_after) {
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

    async fn retry_later(
        &self,
        id: &DocumentId,
        attempts: i64,
        delay: Duration,
        msg: &str,
    ) -> anyhow::Result<()> {
        let next = chrono::Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
        tracing::warn!(document = %id, attempts, error = msg, retry_in = ?delay, "delivery failed");
        self.store.schedule_retry(id, attempts, next, msg).await?;
        Ok(())
    }
}

impl Pipeline {
    /// The bytes to deliver: for scans (OCR'd documents) a searchable PDF, made once in the
    /// sandbox and linked to the document; else the original. The first link is kept, so a
    /// retried delivery sends the same bytes. A scan whose searchable PDF cannot be made is
    /// delivered as it arrived (recorded in the audit trail).
    async fn rendition(&self, doc: &DocumentRow) -> anyhow::Result<Rendition> {
        if let Some(r) = self.store.rendition(&doc.id).await? {
            return Ok(r);
        }
        let original = Rendition {
            sha256: doc.sha256.clone(),
            media_type: doc.media_type.clone(),
        };
        if doc.media_type == MediaType::Eml.mime()
            && self.settings.imap.deliver_as == crate::config::MailDelivery::Pdf
        {
            return self.mail_rendition(doc, original).await;
        }
        #[derive(serde::Deserialize)]
        struct Kind {
            method: crate::extract::Method,
            page_count: u32,
            #[serde(default)]
            invoice: Option<serde_json::Value>,
        }
        // A scanned ZUGFeRD PDF keeps its bytes: the embedded XML is the invoice.
        let (scanned, pages) = match self.store.extraction(&doc.id).await? {
            Some(j) => {
                let k = serde_json::from_str::<Kind>(&j)?;
                (
                    k.method == crate::extract::Method::Ocr && k.invoice.is_none(),
                    k.page_count,
                )
            }
            None => (false, 1),
        };
        let media = MediaType::from_mime(&doc.media_type);
        let Some(media) = media.filter(|_| scanned) else {
            return Ok(original);
        };
        let path = self.blobs.path(&doc.sha256);
        let permit = self.extract_slots.acquire().await?;
        let started = std::time::Instant::now();
        // A TIFF's page count is only known as far as routing read it.
        let pages = match media {
            MediaType::Tiff => self.settings.extract.max_pages,
            _ => pages,
        };
        let made = self.extractor.searchable_pdf(&path, media, pages).await;
        drop(permit);
        self.link_rendition(doc, original, "searchable_pdf", started, made)
            .await
    }

    /// Stores a made rendition (or, when the input cannot be rendered, records that the original
    /// is delivered) and links it to the document, so every retry sends the same bytes.
    async fn link_rendition(
        &self,
        doc: &DocumentRow,
        original: Rendition,
        kind: &str,
        started: std::time::Instant,
        made: Result<Vec<u8>, ExtractError>,
    ) -> anyhow::Result<Rendition> {
        let (rendition, detail) = match made {
            Ok(pdf) => {
                let blobs = self.blobs.clone();
                let size = pdf.len();
                let sha = tokio::task::spawn_blocking(move || blobs.put(&pdf)).await??;
                (
                    Rendition {
                        sha256: sha.clone(),
                        media_type: MediaType::Pdf.mime().to_string(),
                    },
                    serde_json::json!({
                        "kind": kind, "sha256": sha, "size_bytes": size,
                        "millis": started.elapsed().as_millis() as u64,
                    }),
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
        let permit = self.extract_slots.acquire().await?;
        let started = std::time::Instant::now();
        let made = self.extractor.mail_pdf(&path).await;
        drop(permit);
        self.link_rendition(doc, original, "mail_pdf", started, made)
            .await
    }
}

/// An e-mail to an address that config gives to a mailbox (`[[mailboxes]] addresses`) goes
/// there, decided by the recipient and explained in German; mail to general addresses keeps the
/// classifier's decision. Addresses of several mailboxes leave it to a person.
pub fn by_recipient(
    settings: &Settings,
    recipients: &[String],
    mut decision: crate::domain::Decision,
) -> crate::domain::Decision {
    use crate::domain::{Candidate, DecidedBy, RuleHit};
    let mut hits: Vec<(&crate::config::MailboxSettings, &String)> = Vec::new();
    for r in recipients {
        if let Some(mb) = settings.mailboxes.iter().find(|m| m.addresses.contains(r))
            && !hits.iter().any(|(m, _)| m.id == mb.id)
        {
            hits.push((mb, r));
        }
    }
    let Some((mb, addr)) = hits.first().copied() else {
        return decision;
    };
    let rule_hits: Vec<RuleHit> = hits
        .iter()
        .map(|(m, a)| RuleHit {
            rule: format!(
                "Empfängeradresse {a} gehört laut Konfiguration zum Postfach {} ({})",
                m.id, m.name
            ),
            mailbox: m.id.clone(),
            weight: 0.0,
            zone: "recipient".into(),
            matched: vec![(*a).clone()],
            position: None,
        })
        .collect();
    let mut rules = rule_hits;
    rules.append(&mut decision.explanation.rules);
    decision.explanation.rules = rules;
    if hits.len() > 1 {
        let names: Vec<String> = hits
            .iter()
            .map(|(m, a)| format!("{a} ({})", m.id))
            .collect();
        decision.needs_review = true;
        decision.explanation.review_reason = Some(format!(
            "Die E-Mail ist an Adressen mehrerer Fachbereiche gerichtet: {}.",
            names.join(", ")
        ));
        return decision;
    }
    decision
        .explanation
        .candidates
        .retain(|c| c.mailbox != mb.id);
    decision.explanation.candidates.insert(
        0,
        Candidate {
            mailbox: mb.id.clone(),
            score: 1.0,
        },
    );
    decision.explanation.review_reason = None;
    tracing::debug!(address = %addr, mailbox = %mb.id, "routed by recipient address");
    decision.mailbox = Some(mb.id.clone());
    decision.confidence = 1.0;
    decision.decided_by = DecidedBy::Recipient;
    decision.needs_review = false;
    decision
}

/// Exponential backoff with ±20 % jitter (deterministic per document and attempt).
pub fn backoff(s: &crate::config::DeliverSettings, attempts: i64, id: &DocumentId) -> Duration {
    let exp = 2u32.saturating_pow(attempts.clamp(1, 30) as u32 - 1);
    let base = s.retry_base.saturating_mul(exp).min(s.retry_max);
    let h = id.as_str().bytes().fold(attempts as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(b as u64)
    });
    let jitter = 0.8 + (h % 401) as f64 / 1000.0;
    base.mul_f64(jitter)
}

/// The JSON sidecar delivered with a document: metadata, decision and explanation.
pub fn sidecar(doc: &DocumentRow, mailbox_name: &str) -> serde_json::Value {
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
