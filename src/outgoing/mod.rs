//! Outgoing e-mail: Eingangsbestätigungen (acknowledgements) to the senders of e-mails and daily
//! digests to the departments and the Poststelle.
//!
//! Every mail is formatted and stored in the queue first (`outgoing_mail`, together with the
//! decision that caused it, in one transaction); the [`worker`] sends what is due over SMTP and
//! retries with backoff from the store, so a crash or an unreachable server loses nothing.
//! Acknowledgements are decided once per message (unique key), never go to automatic senders
//! or mailing lists, and are rate-limited per sender so that two robots cannot loop.

pub mod settings;
pub mod templates;
pub mod worker;

use crate::domain::{DocumentId, InboundMail, MailObserver, MailboxId, ObserverFuture};
use crate::store::outgoing::{AckMail, AckRecord, DigestItem, DigestRun, NewMail, RateLimit};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset, TimeZone, Utc};
use settings::OutgoingSettings;
use std::sync::Arc;
use templates::{DigestFor, Sender};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Errors of outgoing mail.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message could not be built.
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    /// The SMTP transport could not be set up.
    #[error("SMTP-Verbindung kann nicht eingerichtet werden: {0}")]
    Transport(String),
}

/// Most items listed in one digest.
const DIGEST_MAX_ITEMS: i64 = 500;

// ----------------------------------------------------------------------------------------------
// Time: Europe/Berlin without a time zone database (EU rule since 1996: summer time from the
// last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC).

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let first_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    let last = first_next.pred_opt()?;
    let back = last.weekday().num_days_from_sunday();
    Some(last - Duration::days(i64::from(back)))
}

/// The UTC offset of Europe/Berlin at `t`.
pub fn berlin_offset(t: DateTime<Utc>) -> FixedOffset {
    let y = t.year();
    let switch = |m| {
        last_sunday(y, m)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .map(|n| Utc.from_utc_datetime(&n))
    };
    let summer = match (switch(3), switch(10)) {
        (Some(start), Some(end)) => t >= start && t < end,
        _ => false,
    };
    let hours = if summer { 2 } else { 1 };
    FixedOffset::east_opt(hours * 3600).unwrap_or(Utc.fix())
}

/// `t` in Berlin local time.
pub fn berlin_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&berlin_offset(t))
}

/// The UTC instant of a Berlin local date and time (in the spring gap: one hour later).
pub fn berlin_to_utc(date: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Utc>> {
    let local = date.and_hms_opt(hour, minute, 0)?;
    for h in [1i64, 2] {
        let utc = Utc.from_utc_datetime(&(local - Duration::hours(h)));
        if berlin_offset(utc).local_minus_utc() == (h * 3600) as i32 {
            return Some(utc);
        }
    }
    Some(Utc.from_utc_datetime(&(local - Duration::hours(1))))
}

/// The short reference (Vorgangsnummer) of a document: `PS-YYYYMMDD-XXXXXXXX`, the Berlin date
/// of arrival (from the time-ordered id) and eight hex digits of the id's random part.
pub fn vorgangsnummer(id: &DocumentId) -> String {
    let s = id.as_str();
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let tail = hex
        .get(hex.len().saturating_sub(8)..)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let date = uuid::Uuid::parse_str(s)
        .ok()
        .and_then(|u| u.get_timestamp())
        .and_then(|ts| {
            let (secs, nanos) = ts.to_unix();
            DateTime::<Utc>::from_timestamp(i64::try_from(secs).ok()?, nanos)
        })
        .map(|t| berlin_time(t).format("%Y%m%d").to_string())
        .unwrap_or_else(|| "00000000".into());
    format!("PS-{date}-{tail}")
}

// ----------------------------------------------------------------------------------------------
// Acknowledgements.

/// Why an e-mail gets no acknowledgement (German), or `None` when it may get one (the rate
/// limit is checked by the store).
pub fn acknowledgement_refusal(mail: &InboundMail, own_address: &str) -> Option<String> {
    if !mail.acknowledge {
        return Some(format!(
            "Eingangsbestätigungen sind für das Konto {} abgeschaltet",
            mail.account
        ));
    }
    let Some(from) = mail.from_address.as_deref().map(str::trim) else {
        return Some("keine Absenderadresse".into());
    };
    if !settings::valid_address(from) {
        return Some(format!("Absenderadresse {from:?} ist ungültig"));
    }
    if from.eq_ignore_ascii_case(own_address) {
        return Some("die Nachricht kommt von der eigenen Absenderadresse".into());
    }
    let local = from
        .rsplit_once('@')
        .map(|(l, _)| l)
        .unwrap_or(from)
        .to_ascii_lowercase();
    let squashed: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if squashed.starts_with("noreply")
        || squashed.starts_with("donotreply")
        || squashed == "mailerdaemon"
        || squashed == "postmaster"
    {
        return Some(format!("automatischer Absender ({local})"));
    }
    if let Some(a) = mail.auto_submitted.as_deref() {
        let v = a
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if v != "no" {
            return Some(format!(
                "automatisch erzeugte Nachricht (Auto-Submitted: {v})"
            ));
        }
    }
    if let Some(p) = mail.precedence.as_deref() {
        let v = p.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "list" | "junk") {
            return Some(format!("Massen- oder Listen-E-Mail (Precedence: {v})"));
        }
    }
    if mail
        .list_id
        .as_deref()
        .is_some_and(|l| !l.trim().is_empty())
    {
        return Some("Nachricht einer Mailingliste (List-Id)".into());
    }
    None
}

/// What came of a digest for one mailbox.
#[derive(Debug, Clone)]
pub struct DigestOutcome {
    /// Mailbox id.
    pub mailbox: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Number of items.
    pub items: usize,
    /// Whether a mail was stored in the queue (false: previewed, empty, or recorded before).
    pub queued: bool,
}

/// What outgoing mail needs from the rest of the configuration: the town's name and who gets
/// which daily digest.
#[derive(Debug, Clone, Default)]
pub struct Recipients {
    /// The town's name (in every mail's sender and text).
    pub municipality: String,
    /// One entry per mailbox with `digest_to`.
    pub digests: Vec<DigestRecipient>,
    /// Department mailbox id -> name (`{postfach}` in acknowledgements).
    pub mailbox_names: std::collections::BTreeMap<String, String>,
    /// The review mailbox's name (`{postfach}` of an e-mail in review).
    pub review_name: String,
}

/// The daily digest of one mailbox and its addressees.
#[derive(Debug, Clone)]
pub struct DigestRecipient {
    /// The mailbox id.
    pub mailbox: MailboxId,
    /// Who gets the digest.
    pub to: Vec<String>,
    /// What the digest lists.
    pub what: DigestFor,
}

impl DigestRecipient {
    /// The digest of a department mailbox: what was filed into it.
    pub fn department(id: &MailboxId, name: &str, to: &[String]) -> Self {
        Self {
            mailbox: id.clone(),
            to: to.to_vec(),
            what: DigestFor::Department {
                id: id.to_string(),
                name: name.to_string(),
            },
        }
    }

    /// The digest of the review mailbox: what waits for a person.
    pub fn review(id: &MailboxId, name: &str, to: &[String]) -> Self {
        Self {
            mailbox: id.clone(),
            to: to.to_vec(),
            what: DigestFor::Review {
                name: name.to_string(),
            },
        }
    }
}

/// The outgoing-mail component: observer of committed e-mails, digest scheduler and sender.
#[derive(Debug)]
pub struct Outgoing {
    store: Store,
    settings: OutgoingSettings,
    recipients: Recipients,
    wake: Arc<Notify>,
}

impl Outgoing {
    /// A new component on `store` with its section and the recipients it needs.
    pub fn new(store: Store, settings: OutgoingSettings, recipients: Recipients) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            store,
            settings,
            recipients,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The observer the e-mail intake reports committed messages to.
    pub fn observer(self: &Arc<Self>) -> Arc<dyn MailObserver> {
        self.clone()
    }

    fn sender(&self) -> Sender {
        Sender {
            address: self.settings.from_address.clone(),
            name: self.settings.from_name.clone(),
            municipality: self.recipients.municipality.clone(),
            desk_url: self.settings.desk_url.clone(),
        }
    }

    /// Decides and (when allowed) queues the acknowledgement of one committed e-mail. Calling
    /// it again for the same message changes nothing.
    pub async fn acknowledge(&self, mail: &InboundMail) -> Result<AckRecord, OutgoingError> {
        let out = &self.settings;
        if !out.enabled || !out.acknowledgements.enabled {
            return Ok(AckRecord::Suppressed(
                "Eingangsbestätigungen sind abgeschaltet".into(),
            ));
        }
        let key = match mail.message_id.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => format!(
                "ack:mid:{}",
                m.trim_start_matches('<').trim_end_matches('>')
            ),
            _ => format!("ack:doc:{}", mail.document_id),
        };
        let sender = mail
            .from_address
            .as_deref()
            .map(|a| a.trim().to_ascii_lowercase());
        // With texts per mailbox the mail is written once routing has decided the mailbox
        // (Outgoing::write_pending); with one text for all it is written now.
        let later = !out.acknowledgements.templates.per_mailbox.is_empty();
        let mail_or_reason = match acknowledgement_refusal(mail, &out.from_address) {
            Some(reason) => Err(reason),
            None if later => serde_json::to_string(mail)
                .map(AckMail::Later)
                .map_err(|e| e.to_string()),
            None => self
                .render_acknowledgement(
                    &key,
                    mail,
                    out.acknowledgements.templates.for_mailbox(None).1,
                    &self.recipients.review_name,
                )
                .map(AckMail::Now),
        };
        let now = Utc::now();
        let limits = [
            RateLimit {
                since: now - Duration::hours(1),
                max: out.acknowledgements.max_per_sender_per_hour,
                reason: format!(
                    "Höchstzahl von {} Eingangsbestätigungen pro Stunde an diesen Absender erreicht",
                    out.acknowledgements.max_per_sender_per_hour
                ),
            },
            RateLimit {
                since: now - Duration::days(1),
                max: out.acknowledgements.max_per_sender_per_day,
                reason: format!(
                    "Höchstzahl von {} Eingangsbestätigungen pro Tag an diesen Absender erreicht",
                    out.acknowledgements.max_per_sender_per_day
                ),
            },
        ];
        let rec = self
            .store
            .record_acknowledgement(
                &key,
                &mail.document_id,
                sender.as_deref(),
                mail_or_reason,
                &limits,
            )
            .await?;
        match &rec {
            AckRecord::Queued(id) => {
                tracing::info!(document = %mail.document_id, mail = %id, "acknowledgement queued");
                self.wake.notify_one();
            }
            AckRecord::Suppressed(reason) => {
                tracing::info!(document = %mail.document_id, %reason, "no acknowledgement")
            }
            AckRecord::Pending => {
                tracing::info!(document = %mail.document_id, "acknowledgement waits for the routing decision")
            }
            AckRecord::AlreadyHandled => {}
        }
        Ok(rec)
    }

    fn render_acknowledgement(
        &self,
        key: &str,
        mail: &InboundMail,
        template: &str,
        mailbox: &str,
    ) -> Result<NewMail, String> {
        match templates::acknowledgement(&self.sender(), mail, template, mailbox) {
            Ok(r) => Ok(NewMail {
                kind: "acknowledgement".into(),
                dedup_key: key.to_string(),
                document_id: Some(mail.document_id.clone()),
                envelope_from: r.envelope_from,
                recipients: r.recipients,
                subject: r.subject,
                message_id: r.message_id,
                message: r.message,
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes the acknowledgements that waited for their e-mail's mailbox (per-mailbox
    /// templates): an e-mail routed to a mailbox (queued or delivered) gets that mailbox's
    /// text, one in review (or quarantined, a dead letter) the default text. The time of
    /// receipt is the document's commit. Returns how many were written.
    pub async fn write_pending(&self) -> Result<usize, OutgoingError> {
        let pending = self.store.decided_pending_acknowledgements(100).await?;
        let mut written = 0;
        for p in pending {
            let mut mail: InboundMail = match serde_json::from_str(&p.mail) {
                Ok(m) => m,
                Err(e) => {
                    self.store
                        .queue_pending_acknowledgement(
                            &p.key,
                            Err(format!("unlesbar: {e}")),
                            "default",
                        )
                        .await?;
                    continue;
                }
            };
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&p.received_at) {
                mail.received_at = t.with_timezone(&Utc);
            }
            let routed = matches!(p.state.as_str(), "queued" | "delivered")
                .then_some(p.mailbox.as_deref())
                .flatten();
            let templates = &self.settings.acknowledgements.templates;
            let (name, template) = templates.for_mailbox(routed);
            let mailbox = routed
                .and_then(|m| self.recipients.mailbox_names.get(m))
                .unwrap_or(&self.recipients.review_name);
            let rendered = self.render_acknowledgement(&p.key, &mail, template, mailbox);
            if let AckRecord::Queued(id) = self
                .store
                .queue_pending_acknowledgement(&p.key, rendered, name)
                .await?
            {
                tracing::info!(document = %mail.document_id, mail = %id, template = name, "acknowledgement queued");
                written += 1;
            }
        }
        if written > 0 {
            self.wake.notify_one();
        }
        Ok(written)
    }

    // ------------------------------------------------------------------------------------------
    // Digests.

    /// The scheduled slot in force at `now`: the latest configured time of day not after `now`.
    fn current_slot(&self, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        let d = &self.settings.digest;
        let today = berlin_time(now).date_naive();
        let slot = berlin_to_utc(today, d.hour, d.minute)?;
        if slot <= now {
            Some((today.format("%Y-%m-%d").to_string(), slot))
        } else {
            let y = today.pred_opt()?;
            Some((
                y.format("%Y-%m-%d").to_string(),
                berlin_to_utc(y, d.hour, d.minute)?,
            ))
        }
    }

    /// Builds the digests due at `now`. `record`: store the runs and queue the mails;
    /// `scheduled`: only mailboxes whose run for the current daily slot is not recorded yet
    /// (otherwise a manual run that closes the window now).
    pub async fn digests(
        &self,
        now: DateTime<Utc>,
        record: bool,
        scheduled: bool,
    ) -> Result<Vec<DigestOutcome>, OutgoingError> {
        let Some((period, slot)) = self.current_slot(now) else {
            return Ok(vec![]);
        };
        let period = if scheduled {
            period
        } else {
            format!("manual-{}", now.format("%Y%m%dT%H%M%S%.3fZ"))
        };
        let targets: Vec<(String, Vec<String>, DigestFor)> = self
            .recipients
            .digests
            .iter()
            .map(|d| (d.mailbox.to_string(), d.to.clone(), d.what.clone()))
            .collect();
        let sender = self.sender();
        let mut out = Vec::new();
        for (mailbox, to, what) in targets {
            let run_key = format!("{mailbox}:{period}");
            if scheduled && self.store.digest_run_exists(&run_key).await? {
                continue;
            }
            let since = self
                .store
                .last_digest_until(&mailbox)
                .await?
                .unwrap_or(slot - Duration::days(1));
            let items: Vec<DigestItem> = match &what {
                DigestFor::Department { .. } => {
                    let id = crate::domain::MailboxId::parse(&mailbox)
                        .ok_or_else(|| StoreError::Corrupt(format!("mailbox id {mailbox:?}")))?;
                    let mut v = self.store.delivered_between(&id, since, now).await?;
                    v.truncate(DIGEST_MAX_ITEMS as usize);
                    v
                }
                DigestFor::Review { .. } => self.store.waiting_in_review(DIGEST_MAX_ITEMS).await?,
            };
            let (subject, body) = templates::digest_text(&sender, &what, &items, since, now);
            let mut queued = false;
            if record {
                let run = DigestRun {
                    run_key: run_key.clone(),
                    mailbox: mailbox.clone(),
                    period: period.clone(),
                    since,
                    until: now,
                    items: items.len() as i64,
                };
                let mail = if items.is_empty() {
                    None
                } else {
                    let r = templates::digest_message(&sender, &to, &subject, &body)?;
                    Some(NewMail {
                        kind: "digest".into(),
                        dedup_key: format!("digest:{run_key}"),
                        document_id: None,
                        envelope_from: r.envelope_from,
                        recipients: r.recipients,
                        subject: r.subject,
                        message_id: r.message_id,
                        message: r.message,
                    })
                };
                let has_mail = mail.is_some();
                if self.store.record_digest_run(&run, mail.as_ref()).await? && has_mail {
                    queued = true;
                    tracing::info!(%mailbox, items = items.len(), "digest queued");
                    self.wake.notify_one();
                }
            }
            out.push(DigestOutcome {
                mailbox,
                to,
                subject,
                body,
                items: items.len(),
                queued,
            });
        }
        Ok(out)
    }

    /// One pass of the sender over the queue now (for the command line).
    pub async fn send_now(&self) -> Result<worker::Pass, OutgoingError> {
        worker::Worker::new(self.store.clone(), &self.settings, self.wake.clone())?
            .send_due()
            .await
    }

    /// Runs the sender and (when enabled) the digest schedule until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let worker =
            match worker::Worker::new(self.store.clone(), &self.settings, self.wake.clone()) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "outgoing mail disabled");
                    return;
                }
            };
        let sched = {
            let me = self.clone();
            let cancel = cancel.clone();
            async move {
                if !me.settings.digest.enabled {
                    return;
                }
                loop {
                    if let Err(e) = me.digests(Utc::now(), true, true).await {
                        tracing::error!(error = %e, "digest run failed");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                    }
                }
            }
        };
        let pending = {
            let me = self.clone();
            let cancel = cancel.clone();
            async move {
                if !me.settings.acknowledgements.enabled
                    || me
                        .settings
                        .acknowledgements
                        .templates
                        .per_mailbox
                        .is_empty()
                {
                    return;
                }
                loop {
                    if let Err(e) = me.write_pending().await {
                        tracing::error!(error = %e, "cannot write waiting acknowledgements");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        tokio::join!(worker.run(cancel.clone()), sched, pending);
    }
}

impl MailObserver for Outgoing {
    fn committed<'a>(&'a self, mail: &'a InboundMail) -> ObserverFuture<'a> {
        Box::pin(async move {
            self.acknowledge(mail)
                .await
                .map(|_| ())
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn berlin_time_follows_summer_time() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            berlin_offset(utc("2026-03-29T00:59:59Z")).local_minus_utc(),
            3600
        );
        assert_eq!(
            berlin_offset(utc("2026-03-29T01:00:00Z")).local_minus_utc(),
            7200
        );
        assert_eq!(
            berlin_offset(utc("2026-10-25T00:59:59Z")).local_minus_utc(),
            7200
        );
        assert_eq!(
            berlin_offset(utc("2026-10-25T01:00:00Z")).local_minus_utc(),
            3600
        );
        assert_eq!(
            berlin_time(utc("2026-07-01T10:00:00Z"))
                .format("%H:%M")
                .to_string(),
            "12:00"
        );
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        assert_eq!(berlin_to_utc(d, 7, 0), Some(utc("2026-12-01T06:00:00Z")));
        let d = NaiveDate::from_ymd_opt(2026, 6, 1).expect("date");
        assert_eq!(berlin_to_utc(d, 7, 0), Some(utc("2026-06-01T05:00:00Z")));
    }

    #[test]
    fn vorgangsnummer_is_date_and_id_tail() {
        let id = DocumentId::new();
        let n = vorgangsnummer(&id);
        let today = berlin_time(Utc::now()).format("%Y%m%d").to_string();
        assert_eq!(n.len(), "PS-20260101-ABCDEF12".len(), "{n}");
        assert!(n.starts_with(&format!("PS-{today}-")), "{n}");
        let tail = id.as_str().replace('-', "").to_ascii_uppercase();
        assert!(tail.ends_with(&n[12..]), "{n} vs {id}");
    }

    fn mail(from: &str) -> InboundMail {
        InboundMail {
            document_id: DocumentId::new(),
            account: "poststelle".into(),
            message_id: Some("a@b".into()),
            from_address: Some(from.into()),
            from_name: None,
            to: vec![],
            subject: None,
            received_at: Utc::now(),
            auto_submitted: None,
            precedence: None,
            list_id: None,
            acknowledge: true,
        }
    }

    #[test]
    fn automatic_senders_get_no_acknowledgement() {
        let own = "poststelle@musterstadt.de";
        assert_eq!(acknowledgement_refusal(&mail("eva@example.org"), own), None);
        for a in [
            "no-reply@example.org",
            "NoReply@example.org",
            "do-not-reply@example.org",
            "MAILER-DAEMON@example.org",
            "postmaster@example.org",
            own,
        ] {
            assert!(acknowledgement_refusal(&mail(a), own).is_some(), "{a}");
        }
        let mut m = mail("eva@example.org");
        m.auto_submitted = Some("No".into());
        assert_eq!(acknowledgement_refusal(&m, own), None);
        m.auto_submitted = Some("auto-replied; owner-email=x@y".into());
        assert!(acknowledgement_refusal(&m, own).is_some());
        let mut m = mail("eva@example.org");
        m.precedence = Some(" Bulk".into());
        assert!(acknowledgement_refusal(&m, own).is_some());
        let mut m = mail("eva@example.org");
        m.list_id = Some("<l.example.org>".into());
        assert!(acknowledgement_refusal(&m, own).is_some());
        let mut m = mail("eva@example.org");
        m.acknowledge = false;
        assert!(acknowledgement_refusal(&m, own).is_some());
    }
}
