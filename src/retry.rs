//! One retry policy for everything that is tried again: DMS deliveries (the outbox), outgoing
//! e-mail, IMAP messages and reconnects, and the extract/classify stages of the pipeline.
//!
//! A failed attempt is first *classified* into an [`Outcome`] (retry, retry after a delay the
//! other side asked for, or permanent). [`RetryPolicy::record`] then makes the one decision
//! every queue shares: count the attempt, and either schedule the next one after a jittered
//! exponential [`Backoff`] or give up with a German reason. Each queue implements
//! [`AttemptLog`] to store that decision in its own table (in one transaction with its audit
//! event), so the policy itself stays free of storage.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

/// How a failed attempt should be treated.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Worth retrying (timeouts, refused connections, 408, 5xx, a full disk, a store hiccup).
    Retry(String),
    /// Worth retrying, not before the delay the other side asked for (`Retry-After`).
    RetryAfter(String, Duration),
    /// Retrying will not help (a rejected request, a misconfiguration).
    Permanent(String),
}

impl Outcome {
    /// The error message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Retry(m) | Outcome::RetryAfter(m, _) | Outcome::Permanent(m) => m,
        }
    }
}

/// Exponential backoff with ±20 % jitter: `base * 2^(attempt-1)`, capped at `max`.
///
/// The jitter is deterministic per key (document id, mail id, ...) and attempt, so that a
/// restart does not change a schedule and tests can reason about it, while many items that
/// failed together (a DMS outage) spread out instead of retrying in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second attempt.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay after `attempt` failed attempts (1 = the first failed), jittered for `key`.
    pub fn delay(&self, attempt: u32, key: &str) -> Duration {
        let exp = 2u32.saturating_pow(attempt.clamp(1, 31) - 1);
        let base = self.base.saturating_mul(exp).min(self.max);
        let h = key.bytes().fold(u64::from(attempt), |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        let jitter = 0.8 + (h % 401) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

/// How many attempts, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Attempts before giving up (at least 1).
    pub max_attempts: u32,
}

/// What [`RetryPolicy::decide`] says after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again at `at` (after `delay`).
    RetryAt {
        /// Attempts made so far, this one included.
        attempts: i64,
        /// When the next attempt is due.
        at: DateTime<Utc>,
        /// The delay until then.
        delay: Duration,
        /// The error of this attempt.
        error: String,
    },
    /// Give up: the item becomes a dead letter (or is quarantined) with this German reason.
    GiveUp {
        /// Attempts made, this one included.
        attempts: i64,
        /// The reason shown to people.
        reason: String,
        /// True when the failure was permanent (not for lack of attempts).
        permanent: bool,
    },
}

/// How a queue's German reasons for giving up read.
pub trait Reasons {
    /// The German reason for a permanent failure, e.g. "Zustellung abgelehnt: …".
    fn permanent_reason(&self, error: &str) -> String;
    /// The German reason after the last attempt, e.g. "Zustellung nach 10 Versuchen aufgegeben: …".
    fn exhausted_reason(&self, attempts: i64, error: &str) -> String;
}

/// The store side of a retried queue: where a scheduled retry and a dead letter are written.
pub trait AttemptLog: Reasons {
    /// The error type of the store behind it.
    type Error;
    /// Records the failed attempt and when the next one is due.
    fn schedule(
        &self,
        attempts: i64,
        at: DateTime<Utc>,
        error: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Records that the item is given up, with the reason people see.
    fn give_up(
        &self,
        attempts: i64,
        reason: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts with `backoff` between them.
    pub fn new(backoff: Backoff, max_attempts: u32) -> Self {
        Self {
            backoff,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The decision after an attempt failed with `outcome`; `previous` attempts failed before.
    /// `key` spreads the jitter; `now` is the time of the failure.
    pub fn decide(
        &self,
        previous: i64,
        outcome: &Outcome,
        key: &str,
        now: DateTime<Utc>,
        log: &impl Reasons,
    ) -> Next {
        let attempts = previous.max(0) + 1;
        match outcome {
            Outcome::Permanent(msg) => Next::GiveUp {
                attempts,
                reason: log.permanent_reason(msg),
                permanent: true,
            },
            Outcome::Retry(msg) | Outcome::RetryAfter(msg, _)
                if attempts >= i64::from(self.max_attempts) =>
            {
                Next::GiveUp {
                    attempts,
                    reason: log.exhausted_reason(attempts, msg),
                    permanent: false,
                }
            }
            Outcome::Retry(msg) | Outcome::RetryAfter(msg, _) => {
                let n = u32::try_from(attempts).unwrap_or(u32::MAX);
                let mut delay = self.backoff.delay(n, key);
                if let Outcome::RetryAfter(_, asked) = outcome {
                    delay = delay.max(*asked);
                }
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                Next::RetryAt {
                    attempts,
                    at,
                    delay,
                    error: msg.clone(),
                }
            }
        }
    }

    /// Records one failed attempt in `log`: schedules the next one or gives up. Returns what
    /// was decided.
    pub async fn record<L: AttemptLog + Sync>(
        &self,
        log: &L,
        previous: i64,
        outcome: Outcome,
        key: &str,
    ) -> Result<Next, L::Error> {
        let next = self.decide(previous, &outcome, key, Utc::now(), log);
        match &next {
            Next::RetryAt {
                attempts,
                at,
                error,
                ..
            } => log.schedule(*attempts, *at, error).await?,
            Next::GiveUp {
                attempts, reason, ..
            } => log.give_up(*attempts, reason).await?,
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl AttemptLog for Log {
        type Error = std::convert::Infallible;
        async fn schedule(
            &self,
            attempts: i64,
            _at: DateTime<Utc>,
            error: &str,
        ) -> Result<(), Self::Error> {
            self.0
                .lock()
                .map(|mut v| v.push(format!("retry {attempts} {error}")))
                .ok();
            Ok(())
        }
        async fn give_up(&self, attempts: i64, reason: &str) -> Result<(), Self::Error> {
            self.0
                .lock()
                .map(|mut v| v.push(format!("dead {attempts} {reason}")))
                .ok();
            Ok(())
        }
    }

    impl Reasons for Log {
        fn permanent_reason(&self, error: &str) -> String {
            format!("abgelehnt: {error}")
        }
        fn exhausted_reason(&self, attempts: i64, error: &str) -> String {
            format!("nach {attempts} Versuchen aufgegeben: {error}")
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            Backoff::new(Duration::from_secs(5), Duration::from_secs(60)),
            3,
        )
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        for (attempt, nominal) in [(1u32, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 60.0)] {
            let d = b.delay(attempt, "doc-1").as_secs_f64();
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(&d),
                "attempt {attempt}: {d}"
            );
        }
        assert!(b.delay(40, "doc-1") <= Duration::from_secs(72));
        // Deterministic per key and attempt, different across keys.
        assert_eq!(b.delay(2, "a"), b.delay(2, "a"));
        let spread: std::collections::BTreeSet<_> = (0..20)
            .map(|i| b.delay(2, &format!("doc-{i}")).as_millis())
            .collect();
        assert!(spread.len() > 5, "jitter spreads: {spread:?}");
    }

    #[tokio::test]
    async fn retry_then_give_up_after_max_attempts() {
        let (p, log) = (policy(), Log::default());
        let n1 = p
            .record(&log, 0, Outcome::Retry("503".into()), "k")
            .await
            .unwrap_or_else(|e| match e {});
        assert!(matches!(n1, Next::RetryAt { attempts: 1, .. }), "{n1:?}");
        p.record(&log, 1, Outcome::Retry("503".into()), "k")
            .await
            .unwrap_or_else(|e| match e {});
        let n3 = p
            .record(&log, 2, Outcome::Retry("503".into()), "k")
            .await
            .unwrap_or_else(|e| match e {});
        assert!(
            matches!(&n3, Next::GiveUp { attempts: 3, permanent: false, reason } if reason == "nach 3 Versuchen aufgegeben: 503"),
            "{n3:?}"
        );
        let seen = log.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            [
                "retry 1 503",
                "retry 2 503",
                "dead 3 nach 3 Versuchen aufgegeben: 503"
            ]
        );
    }

    #[test]
    fn permanent_gives_up_at_once_and_retry_after_is_honoured() {
        let (p, log) = (policy(), Log::default());
        let now = Utc::now();
        let n = p.decide(0, &Outcome::Permanent("400".into()), "k", now, &log);
        assert_eq!(
            n,
            Next::GiveUp {
                attempts: 1,
                reason: "abgelehnt: 400".into(),
                permanent: true
            }
        );
        let asked = Duration::from_secs(600);
        match p.decide(0, &Outcome::RetryAfter("429".into(), asked), "k", now, &log) {
            Next::RetryAt { delay, at, .. } => {
                assert_eq!(delay, asked);
                assert_eq!(at, now + chrono::Duration::seconds(600));
            }
            other => panic!("{other:?}"),
        }
    }
}
