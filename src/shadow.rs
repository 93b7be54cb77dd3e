//! The shadow model's comparison: how the version running in shadow would have routed the
//! live post, scored beside the active version against what became of each document.
//!
//! The daemon logs both decisions per document ([`crate::store::shadow`]); the shadow's never
//! routes. A document's outcome is known when
//! - a person corrected or decided it (the latest correction's mailbox), or
//! - it was delivered without a correction (the active decision was accepted);
//!
//! a document still waiting (in review, queued, sent back) is not counted. The outcome is what
//! the active version's routing led to, so the comparison leans towards the active version: a
//! wrong straight-through decision nobody corrected counts as right. A shadow version that
//! comes out not worse here is not worse on the evidence there is.

use crate::domain::DocState;
use crate::store::shadow::{ShadowRecord, SideDecision};
use crate::store::{Store, StoreError};
use serde::Serialize;

/// How many documents where the two disagree are named as examples.
pub const EXAMPLES: usize = 5;

/// The mailbox a document ended in, if that is known yet.
pub fn outcome(r: &ShadowRecord) -> Option<&str> {
    match r.state {
        // Sent back or still undecided: the mailbox is open again.
        DocState::Review => None,
        _ if r.corrected_to.is_some() => r.corrected_to.as_deref(),
        DocState::Delivered => r.mailbox.as_deref(),
        _ => None,
    }
}

/// One side's score on the documents whose outcome is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideScore {
    /// Documents whose proposed mailbox was the final one (top-1, review or not).
    pub right: usize,
    /// `right` / n.
    pub top1: f64,
    /// Documents it would have sent straight through (at its own threshold).
    pub straight_through: usize,
    /// `straight_through` / n.
    pub straight_through_share: f64,
    /// Of those, how many went to the right mailbox.
    pub straight_through_right: usize,
    /// `straight_through_right` / `straight_through` (None without any).
    pub precision: Option<f64>,
}

impl SideScore {
    /// Straight-through decisions into the wrong mailbox: post nobody would have looked at.
    pub fn straight_through_wrong(&self) -> usize {
        self.straight_through - self.straight_through_right
    }
}

/// A document where the two versions propose different mailboxes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// The document.
    pub document_id: String,
    /// Where it ended (None: not known yet).
    pub outcome: Option<String>,
    /// The active version's decision.
    pub active: SideDecision,
    /// The shadow's decision.
    pub shadow: SideDecision,
}

/// The comparison of a shadow version with the active one(s) it ran beside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The shadow version.
    pub shadow_version: String,
    /// The active versions it ran beside (usually one).
    pub active_versions: Vec<String>,
    /// Documents logged.
    pub logged: usize,
    /// Of those, documents whose outcome is known (the n of every score).
    pub known: usize,
    /// Documents where the two propose different mailboxes (all logged).
    pub disagreements: usize,
    /// The active version's score.
    pub active: SideScore,
    /// The shadow's score.
    pub shadow: SideScore,
    /// Known documents the shadow got right and the active version wrong.
    pub shadow_right_active_wrong: usize,
    /// Known documents the active version got right and the shadow wrong.
    pub active_right_shadow_wrong: usize,
    /// Documents where they differ, those with a known outcome first.
    pub examples: Vec<Example>,
    /// Whether the shadow looks not worse (None: no known outcome yet).
    pub not_worse: Option<bool>,
    /// The verdict in one line.
    pub verdict: String,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn score(sides: &[(&SideDecision, &str)]) -> SideScore {
    let n = sides.len();
    let right = sides
        .iter()
        .filter(|(d, truth)| d.mailbox.as_deref() == Some(*truth))
        .count();
    let straight: Vec<_> = sides.iter().filter(|(d, _)| !d.review).collect();
    let straight_right = straight
        .iter()
        .filter(|(d, truth)| d.mailbox.as_deref() == Some(*truth))
        .count();
    SideScore {
        right,
        top1: ratio(right, n),
        straight_through: straight.len(),
        straight_through_share: ratio(straight.len(), n),
        straight_through_right: straight_right,
        precision: (!straight.is_empty()).then(|| ratio(straight_right, straight.len())),
    }
}

/// Scores the logged decisions of one shadow version against the documents' outcomes.
///
/// The shadow is *not worse* when it proposes the final mailbox at least as often as the
/// active version and sends no more documents straight into a wrong mailbox.
pub fn compare(shadow_version: &str, records: &[ShadowRecord]) -> Comparison {
    let mut active_versions: Vec<String> = Vec::new();
    for r in records {
        if let Some(v) = &r.active.version
            && !active_versions.contains(v)
        {
            active_versions.push(v.clone());
        }
    }
    let known: Vec<(&ShadowRecord, &str)> = records
        .iter()
        .filter_map(|r| outcome(r).map(|t| (r, t)))
        .collect();
    let active = score(
        &known
            .iter()
            .map(|(r, t)| (&r.active, *t))
            .collect::<Vec<_>>(),
    );
    let shadow = score(
        &known
            .iter()
            .map(|(r, t)| (&r.shadow, *t))
            .collect::<Vec<_>>(),
    );
    let is = |d: &SideDecision, t: &str| d.mailbox.as_deref() == Some(t);
    let shadow_right_active_wrong = known
        .iter()
        .filter(|(r, t)| is(&r.shadow, t) && !is(&r.active, t))
        .count();
    let active_right_shadow_wrong = known
        .iter()
        .filter(|(r, t)| is(&r.active, t) && !is(&r.shadow, t))
        .count();
    let mut differing: Vec<&ShadowRecord> = records
        .iter()
        .filter(|r| r.active.mailbox != r.shadow.mailbox)
        .collect();
    let disagreements = differing.len();
    // Known outcomes first, newest first within each group.
    differing.sort_by_key(|r| (outcome(r).is_none(), std::cmp::Reverse(r.at.clone())));
    let examples = differing
        .into_iter()
        .take(EXAMPLES)
        .map(|r| Example {
            document_id: r.document_id.clone(),
            outcome: outcome(r).map(str::to_string),
            active: r.active.clone(),
            shadow: r.shadow.clone(),
        })
        .collect();
    let n = known.len();
    let not_worse = (n > 0).then(|| {
        shadow.right >= active.right
            && shadow.straight_through_wrong() <= active.straight_through_wrong()
    });
    let verdict = match not_worse {
        None => format!(
            "{shadow_version}: no document with a known outcome yet ({} logged); nothing to judge",
            records.len()
        ),
        Some(ok) => format!(
            "{shadow_version} looks {} the active version on {n} documents: right {} vs {}, \
             straight into a wrong mailbox {} vs {}",
            if ok { "NOT WORSE than" } else { "WORSE than" },
            shadow.right,
            active.right,
            shadow.straight_through_wrong(),
            active.straight_through_wrong(),
        ),
    };
    Comparison {
        shadow_version: shadow_version.to_string(),
        active_versions,
        logged: records.len(),
        known: n,
        disagreements,
        active,
        shadow,
        shadow_right_active_wrong,
        active_right_shadow_wrong,
        examples,
        not_worse,
        verdict,
    }
}

/// The comparison for `version`, else for the version in shadow now (`current`), else for the
/// version logged most recently; None when nothing was ever logged.
pub async fn compare_in_store(
    store: &Store,
    version: Option<&str>,
    current: Option<String>,
) -> Result<Option<Comparison>, StoreError> {
    let version = match version {
        Some(v) => Some(v.to_string()),
        None => match current {
            Some(v) => Some(v),
            None => store.latest_shadow_version().await?,
        },
    };
    let Some(version) = version else {
        return Ok(None);
    };
    let records = store.shadow_records(&version).await?;
    Ok(Some(compare(&version, &records)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(version: &str, mailbox: Option<&str>, review: bool) -> SideDecision {
        SideDecision {
            version: Some(version.into()),
            mailbox: mailbox.map(str::to_string),
            confidence: if review { 0.5 } else { 0.95 },
            review,
        }
    }

    /// A record: active and shadow proposals (mailbox, review), state, mailbox now, correction.
    fn rec(
        id: &str,
        active: (Option<&str>, bool),
        shadow: (Option<&str>, bool),
        state: DocState,
        mailbox: Option<&str>,
        corrected_to: Option<&str>,
    ) -> ShadowRecord {
        ShadowRecord {
            document_id: id.into(),
            shadow_version: "vS".into(),
            active: side("vA", active.0, active.1),
            shadow: side("vS", shadow.0, shadow.1),
            state,
            mailbox: mailbox.map(str::to_string),
            corrected_to: corrected_to.map(str::to_string),
            at: format!("2026-01-01T00:00:{id}Z"),
        }
    }

    #[test]
    fn the_outcome_is_the_correction_or_the_accepted_delivery() {
        let delivered = rec(
            "01",
            (Some("34"), false),
            (Some("33"), false),
            DocState::Delivered,
            Some("34"),
            None,
        );
        assert_eq!(outcome(&delivered), Some("34"));
        let corrected = ShadowRecord {
            corrected_to: Some("33".into()),
            mailbox: Some("33".into()),
            state: DocState::Queued,
            ..delivered.clone()
        };
        assert_eq!(outcome(&corrected), Some("33"));
        let waiting = ShadowRecord {
            state: DocState::Review,
            ..delivered.clone()
        };
        assert_eq!(outcome(&waiting), None);
        let queued = ShadowRecord {
            state: DocState::Queued,
            ..delivered.clone()
        };
        assert_eq!(
            outcome(&queued),
            None,
            "queued without a correction: not yet"
        );
        let sent_back = ShadowRecord {
            state: DocState::Review,
            corrected_to: Some("33".into()),
            ..delivered
        };
        assert_eq!(outcome(&sent_back), None, "in review again: open");
    }

    #[test]
    fn both_sides_are_scored_against_the_outcomes() {
        let records = vec![
            // Accepted: active right, shadow wrong (straight through both).
            rec(
                "01",
                (Some("34"), false),
                (Some("33"), false),
                DocState::Delivered,
                Some("34"),
                None,
            ),
            // Corrected to 33: shadow right, active wrong (the active went straight through).
            rec(
                "02",
                (Some("34"), false),
                (Some("33"), true),
                DocState::Delivered,
                Some("33"),
                Some("33"),
            ),
            // Both right.
            rec(
                "03",
                (Some("70"), false),
                (Some("70"), false),
                DocState::Delivered,
                Some("70"),
                None,
            ),
            // A person decided in review: both proposed nothing useful.
            rec(
                "04",
                (None, true),
                (Some("11"), true),
                DocState::Queued,
                Some("10"),
                Some("10"),
            ),
            // Still in review: not counted, but a disagreement.
            rec(
                "05",
                (None, true),
                (Some("11"), false),
                DocState::Review,
                None,
                None,
            ),
        ];
        let c = compare("vS", &records);
        assert_eq!(c.logged, 5);
        assert_eq!(c.known, 4);
        assert_eq!(c.active_versions, vec!["vA".to_string()]);
        assert_eq!(c.active.right, 2);
        assert_eq!(c.shadow.right, 2);
        assert!((c.active.top1 - 0.5).abs() < 1e-9);
        assert_eq!(c.active.straight_through, 3);
        assert_eq!(c.active.straight_through_right, 2);
        assert_eq!(c.active.precision, Some(2.0 / 3.0));
        assert_eq!(c.shadow.straight_through, 2);
        assert_eq!(c.shadow.straight_through_right, 1);
        assert_eq!(c.shadow.precision, Some(0.5));
        assert!((c.shadow.straight_through_share - 0.5).abs() < 1e-9);
        assert_eq!(c.shadow_right_active_wrong, 1);
        assert_eq!(c.active_right_shadow_wrong, 1);
        assert_eq!(c.disagreements, 4);
        let ids: Vec<&str> = c.examples.iter().map(|e| e.document_id.as_str()).collect();
        assert_eq!(
            ids,
            ["04", "02", "01", "05"],
            "known outcomes first, newest first"
        );
        assert_eq!(c.examples[1].outcome.as_deref(), Some("33"));
        // Equally often right, one wrong straight-through each: not worse.
        assert_eq!(c.not_worse, Some(true));
        assert!(c.verdict.contains("NOT WORSE"), "{}", c.verdict);
    }

    #[test]
    fn a_shadow_that_sends_more_post_into_wrong_mailboxes_is_worse() {
        let records = vec![
            rec(
                "01",
                (Some("34"), true),
                (Some("33"), false),
                DocState::Queued,
                Some("34"),
                Some("34"),
            ),
            rec(
                "02",
                (Some("70"), false),
                (Some("70"), false),
                DocState::Delivered,
                Some("70"),
                None,
            ),
        ];
        let c = compare("vS", &records);
        assert_eq!(c.shadow.straight_through_wrong(), 1);
        assert_eq!(c.active.straight_through_wrong(), 0);
        assert_eq!(c.active_right_shadow_wrong, 1);
        assert_eq!(c.not_worse, Some(false));
        assert!(c.verdict.contains("WORSE than"), "{}", c.verdict);
    }

    #[test]
    fn without_known_outcomes_there_is_nothing_to_judge() {
        let records = vec![rec(
            "01",
            (Some("34"), true),
            (Some("33"), true),
            DocState::Review,
            None,
            None,
        )];
        let c = compare("vS", &records);
        assert_eq!(c.known, 0);
        assert_eq!(c.active.precision, None);
        assert_eq!(c.not_worse, None);
        assert!(c.verdict.contains("nothing to judge"));
        assert_eq!(c.examples.len(), 1);
        let empty = compare("vS", &[]);
        assert_eq!((empty.logged, empty.disagreements), (0, 0));
    }
}
