//! IMAP intake: reads the configured accounts and folders, commits each message (the raw `.eml`
//! as a blob, via [`Intake::ingest`]) and only then marks it on the server: moved to the
//! processed folder (MOVE, or COPY + `\Deleted` + EXPUNGE), or flagged with a keyword where
//! moving is not possible.
//!
//! - De-duplication: by UIDVALIDITY + UID (`imap_messages`), by Message-ID together with a hash
//!   of the body (which survives a changed UIDVALIDITY and copies in other folders), and by the
//!   bytes' SHA-256 (the store).
//! - A message being worked on has an `in_flight` row; one task per account works through its
//!   folders in order, so a slow run and the next poll never take the same message twice.
//! - Failures are retried with backoff; after `max_failures` the message moves to the quarantine
//!   folder and the store records the German reason. Messages over `max_message_mb` go there at
//!   once. Connection trouble is not the message's fault: the account reconnects with backoff.
//! - After the commit and before marking, every [`MailObserver`] is told.
//! - Plain connections are refused by config validation unless the host is a loopback address.

use super::settings::{ImapAccount, ImapSettings, ImapTls};
use super::{Intake, IntakeError, Outcome, QuarantineSource, safe_name};
use crate::domain::{DocumentId, InboundMail, MailObserver};
use crate::faults::pause_point;
use crate::retry::{self, Backoff, Next, Reasons, RetryPolicy};
use crate::store::StoreError;
use crate::store::imap::{ImapKey, ImapState};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// Pause points of the IMAP intake (see [`crate::faults`]).
pub mod points {
    /// Message fetched from the server, nothing committed yet.
    pub const AFTER_FETCH: &str = "imap_after_fetch";
    /// Message committed to the store, not yet marked on the server.
    pub const AFTER_COMMIT: &str = "imap_after_commit";
}

/// Keyword set on messages that are done but could not be moved.
pub const DONE_KEYWORD: &str = "$PoststelleErledigt";

/// A connection the IMAP client can run over (TCP, or TLS over TCP).
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Conn for T {}

type Session = async_imap::Session<Box<dyn Conn>>;

/// Errors of one attempt.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The connection failed, timed out or was refused: reconnect, not the message's fault.
    #[error("IMAP connection: {0}")]
    Connection(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Intake failed locally.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// Something about this one message failed (German reason).
    #[error("{0}")]
    Message(String),
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        ImapError::Connection(e.to_string())
    }
}

/// The IMAP intake of all configured accounts.
#[derive(Debug, Clone)]
pub struct ImapIntake {
    /// Shared intake (store, blobs, quarantine folder).
    pub intake: Intake,
    /// Settings.
    pub settings: ImapSettings,
    /// Told about every committed message before it is marked on the server.
    pub observers: Vec<Arc<dyn MailObserver>>,
}

struct Caps {
    mv: bool,
    uidplus: bool,
    idle: bool,
}

impl ImapIntake {
    /// Runs one task per account until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        let this = Arc::new(self);
        for account in this.settings.accounts.clone() {
            let (this, cancel) = (this.clone(), cancel.clone());
            tasks.spawn(async move { this.account_loop(account, cancel).await });
        }
        while let Some(joined) = tasks.join_next().await {
            // An account's loop only ends on cancel; a panic is passed on to the daemon.
            if let Err(e) = joined
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    async fn account_loop(&self, account: ImapAccount, cancel: CancellationToken) {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            let started = std::time::Instant::now();
            let result = self.session_cycle(&account, &cancel).await;
            if started.elapsed() > Duration::from_secs(30) {
                // The connection worked for a while: the trouble is new, retry soon.
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = backoff.delay(failures, &account.name);
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(account = account.name, error = %e, retry_in = ?delay, "IMAP account: reconnecting");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn t<T, E: Into<ImapError>>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, ImapError> {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(ImapError::Connection(format!("{what}: timed out"))),
        }
    }

    /// Connects, then polls (and IDLEs) until cancelled or the connection fails.
    async fn session_cycle(
        &self,
        account: &ImapAccount,
        cancel: &CancellationToken,
    ) -> Result<(), ImapError> {
        let mut session = self.t("connect", connect(account)).await?;
        let caps = self.t("CAPABILITY", session.capabilities()).await?;
        let caps = Caps {
            mv: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
            idle: caps.has_str("IDLE"),
        };
        for f in [&account.processed_folder, &account.quarantine_folder] {
            // Exists already in the normal case; a real problem shows when moving.
            let _ = self.t("CREATE", session.create(f)).await;
        }
        tracing::info!(
            account = account.name,
            host = account.host,
            "IMAP account connected"
        );
        loop {
            for folder in &account.folders {
                if cancel.is_cancelled() {
                    let _ = self.t("LOGOUT", session.logout()).await;
                    return Ok(());
                }
                self.folder(&mut session, account, folder, &caps, cancel)
                    .await?;
            }
            while session.unsolicited_responses.try_recv().is_ok() {}
            if caps.idle {
                self.t("SELECT", session.select(&account.folders[0]))
                    .await?;
                let mut handle = session.idle();
                self.t("IDLE", handle.init()).await?;
                let woke = {
                    let (fut, _stop) = handle.wait_with_timeout(account.poll);
                    tokio::select! {
                        _ = cancel.cancelled() => None,
                        r = fut => Some(r),
                    }
                };
                match woke {
                    None => return Ok(()),
                    Some(r) => {
                        r?;
                    }
                }
                session = self.t("DONE", handle.done()).await?;
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(account.poll) => {}
                }
            }
        }
    }

    async fn folder(
        &self,
        session: &mut Session,
        account: &ImapAccount,
        folder: &str,
        caps: &Caps,
        cancel: &CancellationToken,
    ) -> Result<(), ImapError> {
        let store = &self.intake.store;
        let mb = self.t("SELECT", session.select(folder)).await?;
        let uidvalidity = mb.uid_validity.unwrap_or(0);
        let previous = store.imap_folder_uidvalidity(&account.name, folder).await?;
        if previous != Some(uidvalidity) {
            if let Some(p) = previous {
                tracing::warn!(
                    account = account.name,
                    folder,
                    from = p,
                    to = uidvalidity,
                    "UIDVALIDITY changed: messages are re-identified by Message-ID and content"
                );
            }
            store
                .set_imap_folder_uidvalidity(&account.name, folder, previous, uidvalidity)
                .await?;
        }
        let query = format!("NOT DELETED NOT KEYWORD {DONE_KEYWORD}");
        let mut uids: Vec<u32> = self
            .t("UID SEARCH", session.uid_search(&query))
            .await?
            .into_iter()
            .collect();
        uids.sort_unstable();
        // Committed messages that left the folder: the move went through, but the process
        // stopped before recording it.
        for uid in store
            .imap_unmarked_uids(&account.name, folder, uidvalidity)
            .await?
        {
            if uids.binary_search(&uid).is_err() {
                let key = ImapKey {
                    account: account.name.clone(),
                    folder: folder.to_string(),
                    uidvalidity,
                    uid,
                };
                store
                    .imap_marked(&key, ImapState::Marked, "no longer in the folder")
                    .await?;
            }
        }
        for uid in uids {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let key = ImapKey {
                account: account.name.clone(),
                folder: folder.to_string(),
                uidvalidity,
                uid,
            };
            match self.message(session, account, &key, caps).await {
                Ok(()) => {}
                Err(ImapError::Connection(e)) => return Err(ImapError::Connection(e)),
                Err(e) => self.failed(session, account, &key, caps, &e).await?,
            }
        }
        Ok(())
    }

    /// One message: commit (unless done before), tell observers, mark.
    async fn message(
        &self,
        session: &mut Session,
        account: &ImapAccount,
        key: &ImapKey,
        caps: &Caps,
    ) -> Result<(), ImapError> {
        let store = &self.intake.store;
        let row = store.imap_message(key).await?;
        if let Some(r) = &row {
            if matches!(r.state, ImapState::InFlight | ImapState::Committed)
                && let Some(next) = &r.next_attempt_at
                && next.as_str() > crate::store::now_str().as_str()
            {
                // Failed before: waits for its backoff.
                return Ok(());
            }
            match r.state {
                ImapState::Quarantined => {
                    return self
                        .move_to(session, key, caps, &account.quarantine_folder)
                        .await
                        .map(|_| ());
                }
                ImapState::Marked | ImapState::Committed => {
                    // Committed before (a crash or an error came before the marking).
                    let doc = r.document_id.clone().ok_or_else(|| {
                        ImapError::Store(StoreError::Corrupt("committed without document".into()))
                    })?;
                    let bytes = self.fetch_body(session, key).await?;
                    return self.finish(session, account, key, caps, &doc, &bytes).await;
                }
                ImapState::InFlight => {}
            }
        }
        store.imap_claim(key).await?;
        let size = self.fetch_size(session, key).await?;
        if u64::from(size) > self.settings.max_message_bytes {
            let reason = format!(
                "Die E-Mail ist mit {} MB größer als die erlaubten {} MB.",
                u64::from(size).div_ceil(1024 * 1024),
                self.settings.max_message_bytes / (1024 * 1024)
            );
            return self
                .quarantine(session, account, key, caps, &reason, None)
                .await;
        }
        let bytes = self.fetch_body(session, key).await?;
        pause_point(points::AFTER_FETCH).await;
        let head = parse_head(&bytes);
        let body_sha = body_sha256(&bytes);
        let source = format!("imap:{}", account.name);
        let doc = match store
            .imap_find_identity(&account.name, head.message_id.as_deref(), &body_sha)
            .await?
        {
            Some(doc) => {
                store
                    .imap_committed(
                        key,
                        &doc,
                        head.message_id.as_deref(),
                        &body_sha,
                        Some(doc.as_str()),
                    )
                    .await?;
                doc
            }
            None => {
                if let Some(mid) = &head.message_id
                    && store
                        .imap_message_id_conflict(&account.name, mid, &body_sha)
                        .await?
                {
                    tracing::warn!(
                        account = account.name,
                        message_id = mid,
                        "Message-ID seen before with another body; taken as a message of its own"
                    );
                }
                let name = format!("mail-{}-{}-{}.eml", account.name, key.uidvalidity, key.uid);
                match self
                    .intake
                    .ingest(
                        &source,
                        &safe_name(&name),
                        &bytes,
                        self.settings.max_message_bytes,
                    )
                    .await?
                {
                    Outcome::New(doc) => {
                        store
                            .imap_committed(key, &doc, head.message_id.as_deref(), &body_sha, None)
                            .await?;
                        doc
                    }
                    Outcome::Duplicate(doc) | Outcome::Retried(doc) => {
                        store
                            .imap_committed(
                                key,
                                &doc,
                                head.message_id.as_deref(),
                                &body_sha,
                                Some(doc.as_str()),
                            )
                            .await?;
                        doc
                    }
                    Outcome::Quarantined(reason) => {
                        return self
                            .quarantine(session, account, key, caps, &reason, Some(&bytes))
                            .await;
                    }
                }
            }
        };
        pause_point(points::AFTER_COMMIT).await;
        self.finish(session, account, key, caps, &doc, &bytes).await
    }

    /// Tells the observers, then marks the message on the server.
    async fn finish(
        &self,
        session: &mut Session,
        account: &ImapAccount,
        key: &ImapKey,
        caps: &Caps,
        doc: &DocumentId,
        bytes: &[u8],
    ) -> Result<(), ImapError> {
        let head = parse_head(bytes);
        // The time of receipt is the commit (what counts for deadlines), not this moment.
        let received_at = match self.intake.store.get(doc).await {
            Ok(row) => chrono::DateTime::parse_from_rfc3339(&row.created_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now()),
            Err(_) => chrono::Utc::now(),
        };
        let mail = InboundMail {
            document_id: doc.clone(),
            account: account.name.clone(),
            message_id: head.message_id,
            from_address: head.from_address,
            from_name: head.from_name,
            to: head.to,
            subject: head.subject,
            received_at,
            auto_submitted: head.auto_submitted,
            precedence: head.precedence,
            list_id: head.list_id,
            acknowledge: account.acknowledge,
        };
        for o in &self.observers {
            o.committed(&mail).await.map_err(|e| {
                ImapError::Message(format!("Nachbearbeitung der E-Mail fehlgeschlagen: {e}"))
            })?;
        }
        let how = self
            .move_to(session, key, caps, &account.processed_folder)
            .await?;
        self.intake
            .store
            .imap_marked(key, ImapState::Marked, how)
            .await?;
        tracing::info!(account = account.name, folder = key.folder, uid = key.uid, document = %doc, how, "e-mail taken");
        Ok(())
    }

    /// Records a failed attempt (backoff), or quarantines after too many.
    async fn failed(
        &self,
        session: &mut Session,
        account: &ImapAccount,
        key: &ImapKey,
        caps: &Caps,
        e: &ImapError,
    ) -> Result<(), ImapError> {
        let store = &self.intake.store;
        let previous = store
            .imap_message(key)
            .await?
            .map(|r| r.failures)
            .unwrap_or(0);
        let reason = match e {
            ImapError::Message(m) => m.clone(),
            other => format!("Verarbeitung fehlgeschlagen: {other}"),
        };
        tracing::warn!(account = account.name, uid = key.uid, failures = previous + 1, error = %e, "e-mail attempt failed");
        let policy = RetryPolicy::new(
            Backoff::new(account.retry_base, account.retry_max),
            account.max_failures,
        );
        let jitter_key = format!("{}/{}/{}", account.name, key.uidvalidity, key.uid);
        match policy.decide(
            previous,
            &retry::Outcome::Retry(reason),
            &jitter_key,
            chrono::Utc::now(),
            &MessageReasons,
        ) {
            Next::GiveUp { reason, .. } => {
                // The quarantine needs the session (the move on the server), so it is done here.
                let bytes = self.fetch_body(session, key).await.ok();
                self.quarantine(session, account, key, caps, &reason, bytes.as_deref())
                    .await
            }
            Next::RetryAt {
                attempts,
                at,
                error,
                ..
            } => Ok(store.imap_failed(key, attempts, at, &error).await?),
        }
    }

    /// Quarantine entry in the store (with the bytes, if fetched), then the move on the server.
    async fn quarantine(
        &self,
        session: &mut Session,
        account: &ImapAccount,
        key: &ImapKey,
        caps: &Caps,
        reason: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(), ImapError> {
        let name = format!("mail-{}-{}-{}.eml", account.name, key.uidvalidity, key.uid);
        let detail = format!(
            "imap account={} folder={} uidvalidity={} uid={}",
            account.name, key.folder, key.uidvalidity, key.uid
        );
        self.intake
            .quarantine(
                &format!("imap:{}", account.name),
                &name,
                reason,
                &detail,
                match bytes {
                    Some(b) => QuarantineSource::Bytes(b),
                    None => QuarantineSource::Nothing,
                },
            )
            .await?;
        self.intake.store.imap_quarantined(key, reason).await?;
        tracing::warn!(
            account = account.name,
            uid = key.uid,
            reason,
            "e-mail quarantined"
        );
        self.move_to(session, key, caps, &account.quarantine_folder)
            .await?;
        Ok(())
    }

    /// `UID FETCH` of one message's `items`, within the account's timeout.
    async fn uid_fetch(
        &self,
        session: &mut Session,
        key: &ImapKey,
        items: &str,
    ) -> Result<Vec<async_imap::types::Fetch>, ImapError> {
        self.t("UID FETCH", async {
            session
                .uid_fetch(key.uid.to_string(), items)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
    }

    async fn fetch_size(&self, session: &mut Session, key: &ImapKey) -> Result<u32, ImapError> {
        self.uid_fetch(session, key, "(UID RFC822.SIZE)")
            .await?
            .iter()
            .find(|f| f.uid == Some(key.uid))
            .and_then(|f| f.size)
            .ok_or_else(|| {
                ImapError::Message("Der Server nennt die Größe der E-Mail nicht.".into())
            })
    }

    async fn fetch_body(&self, session: &mut Session, key: &ImapKey) -> Result<Vec<u8>, ImapError> {
        self.uid_fetch(session, key, "(UID BODY.PEEK[])")
            .await?
            .iter()
            .find(|f| f.uid == Some(key.uid))
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                ImapError::Message("Der Server hat den Inhalt der E-Mail nicht geliefert.".into())
            })
    }

    /// Moves one message; returns how (`moved`, `copied`, `flagged`).
    async fn move_to(
        &self,
        session: &mut Session,
        key: &ImapKey,
        caps: &Caps,
        target: &str,
    ) -> Result<&'static str, ImapError> {
        let uid = key.uid.to_string();
        if caps.mv {
            match self.t("UID MOVE", session.uid_mv(&uid, target)).await {
                Ok(()) => return Ok("moved"),
                Err(ImapError::Connection(e)) if !e.starts_with("no response") => {
                    return Err(ImapError::Connection(e));
                }
                Err(e) => {
                    tracing::warn!(folder = key.folder, error = %e, "MOVE refused; flagging instead")
                }
            }
        } else if caps.uidplus {
            match self.t("UID COPY", session.uid_copy(&uid, target)).await {
                Ok(()) => {
                    self.t("UID STORE", async {
                        session
                            .uid_store(&uid, "+FLAGS.SILENT (\\Deleted)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                    self.t("UID EXPUNGE", async {
                        session
                            .uid_expunge(&uid)
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                    return Ok("copied");
                }
                Err(ImapError::Connection(e)) if !e.starts_with("no response") => {
                    return Err(ImapError::Connection(e));
                }
                Err(e) => {
                    tracing::warn!(folder = key.folder, error = %e, "COPY refused; flagging instead")
                }
            }
        }
        self.t("UID STORE", async {
            session
                .uid_store(&uid, format!("+FLAGS.SILENT ({DONE_KEYWORD})"))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok("flagged")
    }
}

async fn connect(account: &ImapAccount) -> Result<Session, ImapError> {
    let tcp = tokio::net::TcpStream::connect((account.host.as_str(), account.port))
        .await
        .map_err(|e| ImapError::Connection(format!("connect {}: {e}", account.host)))?;
    let stream: Box<dyn Conn> = match account.tls {
        ImapTls::Plain => Box::new(tcp),
        ImapTls::Tls => Box::new(tls(account, tcp).await?),
        ImapTls::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            Box::new(tls(account, client.into_inner()).await?)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if account.tls != ImapTls::StartTls {
        greeting(&mut client).await?;
    }
    client
        .login(&account.user, account.password.expose())
        .await
        .map_err(|(e, _)| ImapError::Connection(format!("login as {}: {e}", account.user)))
}

async fn greeting<T: Conn>(client: &mut async_imap::Client<T>) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Connection("no greeting".into())),
        Err(e) => Err(ImapError::Connection(format!("greeting: {e}"))),
    }
}

/// Reads the CA certificates of a PEM file (`ca_file`): at least one must be in it.
pub fn ca_certificates(
    path: &std::path::Path,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: contains no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

async fn tls(
    account: &ImapAccount,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ImapError> {
    use tokio_rustls::rustls;
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &account.ca_file {
        // Validated at start; read again so a renewed CA file is picked up on reconnect.
        for cert in ca_certificates(file).map_err(ImapError::Connection)? {
            roots
                .add(cert)
                .map_err(|e| ImapError::Connection(format!("ca_file {}: {e}", file.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::Connection(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(account.host.clone())
        .map_err(|e| ImapError::Connection(format!("TLS name {}: {e}", account.host)))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            use rustls::{CertificateError as C, Error as R};
            let cert = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<R>())
                .and_then(|r| match r {
                    R::InvalidCertificate(c) => Some(c),
                    _ => None,
                });
            let hint = match (cert, &account.ca_file) {
                (Some(C::NotValidForName | C::NotValidForNameContext { .. }), _) => {
                    "; the server's certificate does not name this host: set host to a name the certificate holds"
                }
                (Some(_), None) => {
                    "; the server's certificate is not trusted: if it comes from the town's own CA, name it in ca_file"
                }
                (Some(_), Some(_)) => {
                    "; the server's certificate is trusted neither by the web roots nor by ca_file"
                }
                (None, _) => "",
            };
            ImapError::Connection(format!("TLS to {}: {e}{hint}", account.host))
        })
}

/// Header facts of a message (headers only are parsed here, in the daemon; the body is read in
/// the extraction sandbox).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MailHead {
    /// `Message-ID` without angle brackets.
    pub message_id: Option<String>,
    /// Reply-To or From address, lower case.
    pub from_address: Option<String>,
    /// Display name of the sender.
    pub from_name: Option<String>,
    /// To and Cc addresses, lower case.
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// `Auto-Submitted`.
    pub auto_submitted: Option<String>,
    /// `Precedence`.
    pub precedence: Option<String>,
    /// `List-Id`.
    pub list_id: Option<String>,
}

/// Reads the header facts of a message.
pub fn parse_head(bytes: &[u8]) -> MailHead {
    use mail_parser::MessageParser;
    let Some(m) = MessageParser::default().parse_headers(bytes) else {
        return MailHead::default();
    };
    let text = |name: &str| {
        m.header_raw(name)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let from = m.reply_to().or(m.from()).and_then(|a| a.first());
    let mut to = Vec::new();
    for a in m.to().into_iter().chain(m.cc()).flat_map(|a| a.iter()) {
        if let Some(x) = a.address() {
            to.push(x.trim().to_lowercase());
        }
    }
    MailHead {
        message_id: m.message_id().map(|s| s.trim().to_string()),
        from_address: from
            .and_then(|a| a.address())
            .map(|s| s.trim().to_lowercase()),
        from_name: m
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.name())
            .map(str::to_string),
        to,
        subject: m.subject().map(str::to_string),
        auto_submitted: text("Auto-Submitted"),
        precedence: text("Precedence"),
        list_id: text("List-Id"),
    }
}

/// SHA-256 of the body (everything after the first empty line): the same message delivered
/// twice differs in its trace headers, not in its body.
pub fn body_sha256(bytes: &[u8]) -> String {
    let start = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(0);
    hex::encode(Sha256::digest(&bytes[start..]))
}

/// Wording of the IMAP intake's reasons for giving up a message.
struct MessageReasons;

impl Reasons for MessageReasons {
    fn permanent_reason(&self, error: &str) -> String {
        format!("Die E-Mail kann nicht verarbeitet werden: {error}")
    }

    fn exhausted_reason(&self, attempts: i64, error: &str) -> String {
        format!(
            "Die E-Mail konnte nach {attempts} Versuchen nicht verarbeitet werden. Letzter Fehler: {error}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_body_hash() {
        let a = b"Received: x\r\nMessage-ID: <m1@x>\r\nFrom: A <A@x.de>\r\nTo: b@y.de\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nText";
        let b = b"Received: other\r\nMessage-ID: <m1@x>\r\nFrom: A <A@x.de>\r\nTo: b@y.de\r\nSubject: x\r\n\r\nText";
        let h = parse_head(a);
        assert_eq!(h.message_id.as_deref(), Some("m1@x"));
        assert_eq!(h.from_address.as_deref(), Some("a@x.de"));
        assert_eq!(h.to, vec!["b@y.de"]);
        assert_eq!(h.subject.as_deref(), Some("Grüße"));
        assert_eq!(body_sha256(a), body_sha256(b));
        assert_ne!(body_sha256(a), body_sha256(b"X: y\r\n\r\nAnders"));
    }
}
