//! Uploads received as a stream: the body (or one multipart field) goes piece by piece into an
//! [`Incoming`] blob in the data directory, hashed on the way, with the size limit enforced
//! while it streams in. No upload is ever held in memory whole; a slot of
//! [`ApiState::uploads`] bounds how many are received at once, and `[intake.upload]
//! timeout_secs` bounds each one.

use super::{ApiError, ApiState};
use crate::store::blobs::{BlobStore, Incoming};
use axum::body::Bytes;
use futures::{Stream, StreamExt};
use std::time::Duration;

/// Pieces queued between the request and the thread that writes them.
const QUEUED_PIECES: usize = 8;
/// Bytes of a refused upload read past (and thrown away) so that the sender gets the answer
/// instead of a connection closed in the middle of its request; beyond this the connection is
/// simply closed.
const READ_PAST_LIMIT: u64 = 256 * 1024 * 1024;

/// Why a streamed upload was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// More than the limit (in bytes).
    #[error("Die Datei ist größer als die erlaubten {} MB.", .0 / (1024 * 1024))]
    TooLarge(u64),
    /// The sender broke off or sent something unreadable.
    #[error("Der Upload ist abgebrochen: {0}")]
    Aborted(String),
    /// Writing the file failed (local trouble).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StreamError> for ApiError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
            StreamError::Aborted(_) => ApiError::BadRequest(e.to_string()),
            StreamError::Io(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// A slot for one upload: waits for one while the daemon receives `max_concurrent` others,
/// at most half of the upload's time limit `timeout` (the other half is left for the
/// transfer); 503 when none became free. A slot held by an upload that stalls is freed at the
/// latest when that upload's own time limit ends it.
pub async fn slot(
    s: &ApiState,
    timeout: Duration,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(timeout / 2, s.uploads.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) | Err(_) => Err(ApiError::Unavailable(
            "Es werden gerade zu viele Dateien gleichzeitig hochgeladen. Bitte gleich erneut versuchen."
                .into(),
        )),
    }
}

/// The German answer to an upload that ran out of time.
pub fn timed_out(limit: Duration) -> ApiError {
    ApiError::Timeout(format!(
        "Der Upload hat länger als {} Sekunden gedauert und wurde abgebrochen.",
        limit.as_secs()
    ))
}

/// Refuses a request whose declared length (`Content-Length`) already exceeds what an
/// upload of `max` bytes can take (plus `overhead` for the multipart framing).
pub fn check_declared_length(
    headers: &axum::http::HeaderMap,
    max: u64,
    overhead: u64,
) -> Result<(), StreamError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max.saturating_add(overhead) => Err(StreamError::TooLarge(max)),
        _ => Ok(()),
    }
}

/// Streams `pieces` into a new incoming blob of `blobs`, at most `max` bytes. The pieces are
/// written by a blocking thread behind a short queue, so memory holds a few pieces at most.
/// More than `max` bytes: [`StreamError::TooLarge`], and what was written is removed.
pub async fn receive<S, E>(
    blobs: &BlobStore,
    mut pieces: S,
    max: u64,
) -> Result<Incoming, StreamError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let blobs = blobs.clone();
    let incoming = tokio::task::spawn_blocking(move || blobs.incoming())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_PIECES);
    let writer = tokio::task::spawn_blocking(move || {
        let mut incoming = incoming;
        while let Some(piece) = rx.blocking_recv() {
            incoming.write(&piece)?;
        }
        Ok::<_, std::io::Error>(incoming)
    });
    let mut total = 0u64;
    let mut failure = None;
    while let Some(piece) = pieces.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                failure = Some(StreamError::Aborted(e.to_string()));
                break;
            }
        };
        total += piece.len() as u64;
        if total > max {
            failure = Some(StreamError::TooLarge(max));
            break;
        }
        if tx.send(piece).await.is_err() {
            // The writer stopped: its error is below.
            break;
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    match failure {
        // The incoming blob is dropped with its temporary file.
        Some(e) => {
            if matches!(e, StreamError::TooLarge(_)) {
                read_past(&mut pieces).await;
            }
            Err(e)
        }
        None => Ok(written?),
    }
}

/// Reads the rest of a refused body and throws it away (at most [`READ_PAST_LIMIT`] bytes).
pub async fn read_past<S, E>(pieces: &mut S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut seen = 0u64;
    while let Some(Ok(piece)) = pieces.next().await {
        seen += piece.len() as u64;
        if seen > READ_PAST_LIMIT {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(n: usize, size: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures::stream::iter((0..n).map(move |i| Ok(Bytes::from(vec![(i % 251) as u8; size]))))
    }

    #[tokio::test]
    async fn a_stream_within_the_limit_becomes_an_incoming_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(dir.path()).expect("blobs");
        let incoming = receive(&blobs, pieces(10, 1000), 10_000)
            .await
            .expect("received");
        assert_eq!(incoming.len(), 10_000);
        let sha = incoming.commit().expect("commit");
        assert_eq!(blobs.get(&sha).expect("blob").len(), 10_000);
    }

    #[tokio::test]
    async fn a_stream_over_the_limit_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(dir.path()).expect("blobs");
        let err = receive(&blobs, pieces(11, 1000), 10_000)
            .await
            .expect_err("too large");
        assert!(matches!(err, StreamError::TooLarge(10_000)), "{err:?}");
        let left = std::fs::read_dir(dir.path().join(".incoming"))
            .expect("incoming")
            .count();
        assert_eq!(left, 0);
    }
}
