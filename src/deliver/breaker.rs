//! Circuit breaker per delivery target: after `threshold` consecutive temporary failures the
//! target is paused for a cool-down instead of being hammered; then one probe delivery is let
//! through. Its success closes the breaker, its failure opens it again. A server's
//! `Retry-After` pauses the target for that long at once. Documents of a paused target stay
//! queued and no attempt is counted for them (see the pipeline).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker says before a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Deliver.
    Pass,
    /// The target is paused for this long still.
    Wait(Duration),
}

#[derive(Debug, Default, Clone)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    last_error: Option<String>,
}

/// A target's breaker as the admin page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerStatus {
    /// Temporary failures in a row.
    pub failures: u32,
    /// The target is paused for this long still (the breaker is open).
    pub paused_for: Option<Duration>,
    /// The last temporary failure's message (kept until a success).
    pub last_error: Option<String>,
}

/// Breakers of all targets.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    /// Breakers opening after `threshold` failures for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, target: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = match self.states.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(g.entry(target.to_string()).or_default())
    }

    /// May a delivery to `target` go now? A breaker whose cool-down is over lets exactly one
    /// probe through (the others keep waiting for another cool-down).
    pub fn gate(&self, target: &str) -> Gate {
        let now = Instant::now();
        let (threshold, cooldown) = (self.threshold, self.cooldown);
        self.with(target, |s| {
            let open = s.open_until;
            match open {
                Some(t) if t > now => Gate::Wait(t - now),
                _ if s.failures >= threshold => {
                    s.open_until = Some(now + cooldown);
                    Gate::Pass
                }
                _ => Gate::Pass,
            }
        })
    }

    /// The target accepted a document (or refused it for a reason of the document: it is up).
    /// Returns true when the breaker was open or counting (documents may wait for it).
    pub fn success(&self, target: &str) -> bool {
        self.with(target, |s| {
            let was = s.failures > 0 || s.open_until.is_some();
            *s = State::default();
            was
        })
    }

    /// The breaker of `target` now.
    pub fn status(&self, target: &str) -> BreakerStatus {
        let now = Instant::now();
        self.with(target, |s| BreakerStatus {
            failures: s.failures,
            paused_for: s.open_until.filter(|t| *t > now).map(|t| t - now),
            last_error: s.last_error.clone(),
        })
    }

    /// A temporary failure with its message; returns the pause when the breaker opens now.
    pub fn failure(
        &self,
        target: &str,
        retry_after: Option<Duration>,
        error: &str,
    ) -> Option<Duration> {
        let now = Instant::now();
        let (threshold, cooldown) = (self.threshold, self.cooldown);
        self.with(target, |s| {
            s.last_error = Some(error.chars().take(300).collect());
            s.failures = s.failures.saturating_add(1);
            let pause = if s.failures >= threshold {
                Some(cooldown.max(retry_after.unwrap_or_default()))
            } else {
                retry_after
            };
            if let Some(p) = pause {
                s.open_until = Some(now + p);
            }
            pause
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_k_failures_probes_once_and_closes_on_success() {
        let b = Breakers::new(3, Duration::from_millis(200));
        assert_eq!(b.gate("d"), Gate::Pass);
        assert_eq!(b.failure("d", None, "HTTP 503"), None);
        assert_eq!(b.failure("d", None, "HTTP 503"), None);
        assert_eq!(b.gate("d"), Gate::Pass, "below the threshold");
        assert_eq!(
            b.failure("d", None, "HTTP 503"),
            Some(Duration::from_millis(200))
        );
        assert!(matches!(b.gate("d"), Gate::Wait(_)), "open");
        assert_eq!(b.gate("other"), Gate::Pass, "per target");
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(b.gate("d"), Gate::Pass, "one probe");
        assert!(matches!(b.gate("d"), Gate::Wait(_)), "only one probe");
        assert!(
            b.failure("d", None, "HTTP 503").is_some(),
            "failed probe reopens"
        );
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(b.gate("d"), Gate::Pass);
        assert!(b.success("d"));
        assert_eq!(b.gate("d"), Gate::Pass);
        assert_eq!(b.gate("d"), Gate::Pass, "closed again");
        assert!(!b.success("d"));
    }

    #[test]
    fn retry_after_pauses_at_once() {
        let b = Breakers::new(5, Duration::from_secs(60));
        assert_eq!(
            b.failure("p", Some(Duration::from_millis(100)), "HTTP 429"),
            Some(Duration::from_millis(100))
        );
        assert!(matches!(b.gate("p"), Gate::Wait(d) if d <= Duration::from_millis(100)));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(b.gate("p"), Gate::Pass);
    }

    #[test]
    fn status_shows_failures_pause_and_last_error_until_a_success() {
        let b = Breakers::new(2, Duration::from_secs(60));
        assert_eq!(b.status("d").failures, 0);
        b.failure("d", None, "HTTP 503");
        b.failure("d", None, "Zeitüberschreitung");
        let st = b.status("d");
        assert_eq!(st.failures, 2);
        assert!(st.paused_for.is_some());
        assert_eq!(st.last_error.as_deref(), Some("Zeitüberschreitung"));
        b.success("d");
        assert_eq!(
            b.status("d"),
            BreakerStatus {
                failures: 0,
                paused_for: None,
                last_error: None
            }
        );
    }
}
