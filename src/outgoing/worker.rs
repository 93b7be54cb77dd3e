//! The sender: takes due mails from the queue, sends them over SMTP, records the outcome and
//! schedules retries through the shared [`RetryPolicy`]. After `max_attempts` (or a permanent
//! refusal) a mail is `dead`, with the reason.

use super::OutgoingError;
use super::settings::{OutgoingSettings, SmtpTls};
use crate::faults::pause_point;
use crate::retry::{AttemptLog, Backoff, Next, Outcome, Reasons, RetryPolicy};
use crate::store::Store;
use crate::store::outgoing::MailRow;
use chrono::Utc;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The SMTP sender.
#[derive(Debug)]
pub struct Worker {
    store: Store,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    retry: RetryPolicy,
    send_timeout: std::time::Duration,
    wake: Arc<Notify>,
}

/// What one pass over the queue did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Mails the server accepted.
    pub sent: usize,
    /// Mails scheduled for another attempt.
    pub retried: usize,
    /// Mails given up.
    pub dead: usize,
}

enum SendError {
    Envelope(String),
    Timeout(std::time::Duration),
    Smtp(lettre::transport::smtp::Error),
}

/// The error with its causes (lettre's `Display` alone hides e.g. the TLS reason).
fn smtp_error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn transport(s: &OutgoingSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, OutgoingError> {
    let smtp = &s.smtp;
    let tls_params = || -> Result<TlsParameters, OutgoingError> {
        let mut b = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| OutgoingError::Transport(format!("{}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| OutgoingError::Transport(format!("{}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| OutgoingError::Transport(e.to_string()))
    };
    let tls = match smtp.tls {
        SmtpTls::Tls => Tls::Wrapper(tls_params()?),
        SmtpTls::StartTls => Tls::Required(tls_params()?),
        SmtpTls::Plain => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout));
    if let Some(user) = &smtp.user {
        b = b.credentials(Credentials::new(
            user.clone(),
            smtp.password.expose().to_string(),
        ));
    }
    Ok(b.build())
}

impl Worker {
    /// A sender for these settings.
    pub fn new(
        store: Store,
        settings: &OutgoingSettings,
        wake: Arc<Notify>,
    ) -> Result<Worker, OutgoingError> {
        Ok(Worker {
            store,
            transport: transport(settings)?,
            retry: RetryPolicy::new(
                Backoff::new(settings.retry_base, settings.retry_max),
                settings.max_attempts,
            ),
            send_timeout: settings.smtp.timeout.saturating_mul(2),
            wake,
        })
    }

    async fn send_one(&self, mail: &MailRow) -> Result<String, SendError> {
        let from = mail.envelope_from.parse().ok();
        let to: Vec<lettre::Address> = mail
            .recipients
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        let envelope = lettre::address::Envelope::new(from, to)
            .map_err(|e| SendError::Envelope(e.to_string()))?;
        // lettre bounds the connect; a server that stops answering later on is bounded here.
        let resp = tokio::time::timeout(
            self.send_timeout,
            self.transport.send_raw(&envelope, &mail.message),
        )
        .await
        .map_err(|_| SendError::Timeout(self.send_timeout))?
        .map_err(SendError::Smtp)?;
        Ok(resp.message().collect::<Vec<_>>().join(" "))
    }

    /// Sends every mail that is due now.
    pub async fn send_due(&self) -> Result<Pass, OutgoingError> {
        let mut pass = Pass::default();
        loop {
            let due = self.store.outgoing_due(Utc::now(), 20).await?;
            if due.is_empty() {
                return Ok(pass);
            }
            for mail in due {
                pause_point(crate::faults::points::BEFORE_MAIL_SEND).await;
                match self.send_one(&mail).await {
                    Ok(resp) => {
                        pause_point(crate::faults::points::AFTER_MAIL_SEND).await;
                        self.store.outgoing_sent(&mail, &resp).await?;
                        tracing::info!(mail = %mail.id, kind = %mail.kind, "mail sent");
                        pass.sent += 1;
                    }
                    Err(e) => {
                        let outcome = match &e {
                            SendError::Envelope(m) => {
                                Outcome::Permanent(format!("Umschlag ungültig: {m}"))
                            }
                            SendError::Timeout(d) => Outcome::Retry(format!(
                                "keine Antwort des SMTP-Servers in {} s",
                                d.as_secs()
                            )),
                            SendError::Smtp(e) if e.is_permanent() => {
                                Outcome::Permanent(smtp_error_text(e))
                            }
                            SendError::Smtp(e) => Outcome::Retry(smtp_error_text(e)),
                        };
                        let log = MailLog {
                            store: &self.store,
                            mail: &mail,
                        };
                        match self
                            .retry
                            .record(&log, mail.attempts, outcome, &mail.id)
                            .await?
                        {
                            Next::GiveUp { reason, .. } => {
                                tracing::error!(mail = %mail.id, %reason, "mail given up");
                                pass.dead += 1;
                            }
                            Next::RetryAt {
                                attempts, error, ..
                            } => {
                                tracing::warn!(mail = %mail.id, attempt = attempts, %error, "mail send failed; will retry");
                                pass.retried += 1;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends due mails until `cancel` fires; wakes on new mail or when the next retry is due.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.send_due().await {
                tracing::error!(error = %e, "outgoing mail pass failed");
            }
            let wait = match self.store.outgoing_next_due().await {
                Ok(Some(t)) => chrono::DateTime::parse_from_rfc3339(&t)
                    .ok()
                    .and_then(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().ok())
                    .unwrap_or(std::time::Duration::from_millis(200))
                    .clamp(
                        std::time::Duration::from_millis(200),
                        std::time::Duration::from_secs(30),
                    ),
                _ => std::time::Duration::from_secs(30),
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The mail queue's side of the retry policy.
struct MailLog<'a> {
    store: &'a Store,
    mail: &'a MailRow,
}

impl AttemptLog for MailLog<'_> {
    type Error = crate::store::StoreError;

    async fn schedule(
        &self,
        _attempts: i64,
        at: chrono::DateTime<Utc>,
        error: &str,
    ) -> Result<(), Self::Error> {
        self.store
            .outgoing_retry(self.mail, at, &format!("Versand fehlgeschlagen: {error}"))
            .await
    }

    async fn give_up(&self, _attempts: i64, reason: &str) -> Result<(), Self::Error> {
        self.store.outgoing_dead(self.mail, reason).await
    }
}

impl Reasons for MailLog<'_> {
    fn permanent_reason(&self, error: &str) -> String {
        format!("Der SMTP-Server lehnt die E-Mail dauerhaft ab: {error}")
    }

    fn exhausted_reason(&self, attempts: i64, error: &str) -> String {
        format!("Versand nach {attempts} Versuchen aufgegeben: {error}")
    }
}
