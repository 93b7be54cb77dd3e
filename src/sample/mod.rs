//! The Stichprobe: live precision, measured.
//!
//! A configurable share (`[sample] share`, default 2 %) of the documents the machine routes
//! straight through also enters a second-look sample for the Poststelle. Which documents is
//! decided by a hash of the document id ([`is_sampled`]), so a restart or a re-drive does not
//! change it; the `samples` row is written in the same transaction as the decision. The
//! document is delivered as usual.
//!
//! A person confirms a sample or overturns it (the right mailbox; overturning is a correction
//! through [`Store::assign`](crate::store::Store::assign): the document is delivered again and
//! the model learns from it). The verdicts give the measured precision per mailbox with a 95 %
//! Wilson interval ([`measure`]), shown by `eval --live`, the API and `/metrics`.
//!
//! **Raising.** After each verdict: when a mailbox has at least `min_judged` judged samples and
//! the *upper* bound of its interval is below the precision target (the evidence says, at 95 %,
//! that precision is below the target; a point estimate below it could be noise), its review
//! threshold is raised to the lowest confidence at which its judged classifier decisions
//! reach the target ([`raised_threshold`]). Decisions by recipient address or Leitweg-ID do
//! not pass the threshold and do not move it. A raise is stored with the number of judged
//! samples it rests on, so a mailbox is raised at most once per new evidence; thresholds are
//! only ever raised here, and the classifier uses the higher of its own and the raised one
//! ([`Classifier::threshold_for`](crate::classify::Classifier::threshold_for)). The admins
//! (`[sample] notify_to`) get one German e-mail per raise through the outgoing mail queue.

pub mod settings;

use crate::domain::{DocumentId, MailboxId};
use crate::outgoing::templates::{self, Sender};
use crate::pipeline::Pipeline;
use crate::store::samples::{SampleRow, ThresholdRaise, Verdict};
use crate::store::{StoreError, now_str};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The two-sided 95 % normal quantile of the Wilson interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Highest threshold a raise sets: above every confidence (they are rounded to four decimals),
/// so that every classifier decision for the mailbox waits for a person.
pub const MAX_RAISED_THRESHOLD: f64 = 1.0001;

/// The step above a confidence (decisions store confidences rounded to four decimals).
const STEP: f64 = 0.0001;

/// Whether a document enters the sample at `share` (0..=1): the first eight bytes of the
/// SHA-256 of its id, read as a fraction of 2^64, below the share. Deterministic, so a restart
/// or a second decision of the same document gives the same answer.
pub fn is_sampled(id: &DocumentId, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    if share >= 1.0 {
        return true;
    }
    let digest = Sha256::digest(id.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0) < share
}

/// The Wilson score interval of `successes` in `n` at the normal quantile `z`; (0, 1) for no
/// observations.
pub fn wilson(successes: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The measured precision of one mailbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    /// The mailbox the machine routed to.
    pub mailbox: MailboxId,
    /// Judged samples.
    pub judged: u64,
    /// Of which confirmed.
    pub confirmed: u64,
    /// Of which overturned.
    pub overturned: u64,
    /// confirmed / judged.
    pub precision: f64,
    /// Lower bound of the 95 % Wilson interval.
    pub lower: f64,
    /// Upper bound of the 95 % Wilson interval.
    pub upper: f64,
}

/// The measured precision per mailbox from judged samples (open ones are ignored).
pub fn measure(samples: &[SampleRow]) -> Vec<Measured> {
    let mut counts: BTreeMap<&MailboxId, (u64, u64)> = BTreeMap::new();
    for s in samples {
        let Some(v) = s.verdict else { continue };
        let c = counts.entry(&s.mailbox).or_default();
        c.0 += 1;
        if v == Verdict::Confirmed {
            c.1 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(mailbox, (judged, confirmed))| {
            let (lower, upper) = wilson(confirmed, judged, Z95);
            Measured {
                mailbox: mailbox.clone(),
                judged,
                confirmed,
                overturned: judged - confirmed,
                precision: confirmed as f64 / judged as f64,
                lower,
                upper,
            }
        })
        .collect()
}

/// Whether a sample's decision passed the review threshold (rules, model or both): only those
/// can be kept from going straight through by a higher threshold.
pub fn threshold_decided(s: &SampleRow) -> bool {
    matches!(s.decided_by.as_str(), "rule" | "model" | "combined")
}

/// The raised threshold for a mailbox, or `None` when nothing is to be raised.
///
/// `measured` is the mailbox's precision from all its judged samples; `judged` are its judged
/// samples that passed the threshold, as (confidence, confirmed). Nothing is raised with fewer
/// than `min_judged` judged samples or while the interval's upper bound reaches `target`.
/// Otherwise the new threshold is the lowest confidence `t` at which the judged decisions with
/// confidence >= `t` reach `target` (at most [`MAX_RAISED_THRESHOLD`]); it is returned only
/// when above `current`.
pub fn raised_threshold(
    measured: &Measured,
    judged: &[(f64, bool)],
    target: f64,
    min_judged: u32,
    current: f64,
) -> Option<f64> {
    if measured.judged < u64::from(min_judged) || measured.upper >= target {
        return None;
    }
    let mut candidates: Vec<f64> = judged
        .iter()
        .flat_map(|(c, ok)| [Some(*c), (!ok).then_some(*c + STEP)])
        .flatten()
        .map(|c| (c * 10_000.0).round() / 10_000.0)
        .collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let t = candidates.into_iter().find(|t| {
        let above: Vec<bool> = judged
            .iter()
            .filter(|(c, _)| *c >= *t)
            .map(|(_, ok)| *ok)
            .collect();
        above.is_empty()
            || above.iter().filter(|ok| **ok).count() as f64 / above.len() as f64 >= target
    })?;
    let t = t.min(MAX_RAISED_THRESHOLD);
    (t > current + 1e-9).then_some(t)
}

/// A threshold as people read it: `99,87 %`, or `über 100 %` for one above every confidence.
pub fn threshold_de(t: f64) -> String {
    if t > 1.0 {
        "über 100 %".into()
    } else {
        percent_de(t)
    }
}

/// A share as a German percentage with two decimals: `99,87 %`.
pub fn percent_de(p: f64) -> String {
    format!("{:.2} %", p * 100.0).replace('.', ",")
}

/// Why a threshold was raised, in German (the audit event and the admins' e-mail).
pub fn raise_reason(m: &Measured, target: f64, previous: f64, threshold: f64) -> String {
    let effect = if threshold > 1.0 {
        "; bis auf Weiteres prüft die Poststelle jede Zuordnung der Regeln und des Modells zu \
         diesem Postfach"
            .to_string()
    } else {
        String::new()
    };
    format!(
        "Stichprobe: Präzision für Postfach {mb} unter dem Ziel: {ok} von {n} geprüften \
         Zuordnungen bestätigt ({p}, 95-%-Intervall {lo} bis {hi}, Ziel {target}). Schwelle \
         von {prev} auf {new} angehoben{effect}.",
        mb = m.mailbox,
        ok = m.confirmed,
        n = m.judged,
        p = percent_de(m.precision),
        lo = percent_de(m.lower),
        hi = percent_de(m.upper),
        target = percent_de(target),
        prev = threshold_de(previous),
        new = threshold_de(threshold),
    )
}

/// Errors of judging a sample.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The store failed, or the sample is not there or judged already.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admins' e-mail could not be built.
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
}

/// What came of a verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// The sample with its verdict.
    pub sample: SampleRow,
    /// The threshold raise it led to, if any.
    pub raised: Option<ThresholdRaise>,
}

/// Records a person's verdict on a sample (overturning assigns the document to `correct`),
/// then raises the mailbox's threshold when its measured precision says so, and hands the
/// raised thresholds to the running classifier.
pub async fn judge(
    pipeline: &Pipeline,
    id: &DocumentId,
    verdict: Verdict,
    correct: Option<&MailboxId>,
    actor: &str,
) -> Result<Judgement, SampleError> {
    let sample = pipeline
        .store
        .judge_sample(id, verdict, correct, actor)
        .await?;
    if verdict == Verdict::Overturned {
        pipeline.wake.notify_one();
    }
    tracing::info!(document = %id, mailbox = %sample.mailbox, verdict = verdict.as_str(), actor, "sample judged");
    let raised = maybe_raise(pipeline, &sample.mailbox).await?;
    Ok(Judgement { sample, raised })
}

/// After a correction (a forward, a new assignment, a send-back) of document `id`: when that
/// correction judged the document's sample ([`Store::assign`](crate::store::Store::assign)
/// does so in its transaction), the sample's mailbox may need a higher threshold. Errors are
/// logged, not returned: the correction itself is committed.
pub async fn after_correction(pipeline: &Pipeline, id: &DocumentId) {
    let sample = match pipeline.store.sample(id).await {
        Ok(Some(s)) if s.verdict.is_some() => s,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(document = %id, error = %e, "Stichprobe: sample not read after a correction");
            return;
        }
    };
    if let Err(e) = maybe_raise(pipeline, &sample.mailbox).await {
        tracing::warn!(document = %id, mailbox = %sample.mailbox, error = %e, "Stichprobe: threshold not checked after a correction");
    }
}

/// Raises `mailbox`'s threshold when its judged samples say so (see the module's text).
pub async fn maybe_raise(
    pipeline: &Pipeline,
    mailbox: &MailboxId,
) -> Result<Option<ThresholdRaise>, SampleError> {
    let settings = &pipeline.settings;
    let samples = pipeline.store.judged_samples(Some(mailbox)).await?;
    let Some(m) = measure(&samples).into_iter().next() else {
        return Ok(None);
    };
    let target = settings.classify.precision_target;
    let current = pipeline.router().classifier().threshold_for(mailbox);
    let judged: Vec<(f64, bool)> = samples
        .iter()
        .filter(|s| threshold_decided(s))
        .map(|s| (s.confidence, s.verdict == Some(Verdict::Confirmed)))
        .collect();
    let Some(threshold) =
        raised_threshold(&m, &judged, target, settings.sample.min_judged, current)
    else {
        return Ok(None);
    };
    let reason = raise_reason(&m, target, current, threshold);
    let raise = ThresholdRaise {
        mailbox: mailbox.clone(),
        threshold,
        previous: current,
        judged: m.judged as i64,
        confirmed: m.confirmed as i64,
        reason: reason.clone(),
        at: now_str(),
    };
    let mail = match (
        settings.outgoing.enabled,
        settings.sample.notify_to.is_empty(),
    ) {
        (true, false) => {
            let sender = Sender {
                address: settings.outgoing.from_address.clone(),
                name: settings.outgoing.from_name.clone(),
                municipality: settings.municipality.clone(),
                desk_url: settings.outgoing.desk_url.clone(),
            };
            let name = settings
                .mailbox(mailbox)
                .map(|mb| format!(" ({})", mb.name))
                .unwrap_or_default();
            let subject = format!(
                "Stichprobe: Präzision für Postfach {mailbox}{name} unter dem Ziel – Schwelle auf {} angehoben",
                threshold_de(threshold)
            );
            let body = raise_mail_body(&sender, &reason);
            let r =
                templates::digest_message(&sender, &settings.sample.notify_to, &subject, &body)?;
            Some(crate::store::outgoing::NewMail {
                kind: "threshold_raised".into(),
                dedup_key: format!("threshold:{mailbox}:{}", m.judged),
                document_id: None,
                envelope_from: r.envelope_from,
                recipients: r.recipients,
                subject: r.subject,
                message_id: r.message_id,
                message: r.message,
            })
        }
        _ => None,
    };
    if !pipeline
        .store
        .record_threshold_raise(&raise, mail.as_ref())
        .await?
    {
        return Ok(None);
    }
    tracing::warn!(mailbox = %mailbox, threshold, previous = current, judged = m.judged, confirmed = m.confirmed, "Stichprobe: review threshold raised");
    apply_raises(pipeline).await?;
    Ok(Some(raise))
}

/// Hands the stored raised thresholds to the running classifier (at start and after a raise).
pub async fn apply_raises(pipeline: &Pipeline) -> Result<(), StoreError> {
    let raises = pipeline.store.threshold_raises().await?;
    pipeline.set_threshold_overrides(raises.into_iter().map(|(m, r)| (m, r.threshold)).collect());
    Ok(())
}

fn raise_mail_body(sender: &Sender, reason: &str) -> String {
    let desk = sender
        .desk_url
        .as_deref()
        .map(|u| {
            format!(
                "\nDie offene Stichprobe: {}/stichprobe\n",
                u.trim_end_matches('/')
            )
        })
        .unwrap_or_default();
    format!(
        "Guten Tag,\n\n\
         {reason}\n\n\
         Dokumente, die Regeln und Modell diesem Postfach mit geringerer Sicherheit zuordnen, \
         warten ab sofort im Prüfkorb auf eine Entscheidung der Poststelle. Die angehobene \
         Schwelle gilt auch nach einem Neustart und neben der eines neu trainierten Modells \
         (die höhere zählt); die korrigierten Stichproben gehen in das nächste Training ein.\n\
         {desk}\n\
         Diese Nachricht wurde automatisch erstellt.\n\n\
         {name}\n\
         Stadtverwaltung {town}\n",
        name = sender.name,
        town = sender.municipality,
    )
}

/// The live precision per mailbox as a table for people (`eval --live`).
pub fn live_table(
    measured: &[Measured],
    raises: &BTreeMap<MailboxId, ThresholdRaise>,
    open: i64,
    target: f64,
) -> String {
    let mut out = format!(
        "Stichprobe: gemessene Präzision je Postfach (Ziel {}, {open} offen)\n",
        percent_de(target)
    );
    out.push_str(&format!(
        "{:<12} {:>9} {:>10} {:>10} {:>10}  {:<22} {}\n",
        "Postfach",
        "geprüft",
        "bestätigt",
        "verworfen",
        "Präzision",
        "95-%-Intervall",
        "Schwelle angehoben"
    ));
    if measured.is_empty() {
        out.push_str("(noch keine geprüften Stichproben)\n");
    }
    for m in measured {
        let raised = raises
            .get(&m.mailbox)
            .map(|r| threshold_de(r.threshold))
            .unwrap_or_else(|| "–".into());
        let flag = if m.upper < target { " unter Ziel" } else { "" };
        out.push_str(&format!(
            "{:<12} {:>9} {:>10} {:>10} {:>10}  {:<22} {raised}{flag}\n",
            m.mailbox.as_str(),
            m.judged,
            m.confirmed,
            m.overturned,
            percent_de(m.precision),
            format!("{} – {}", percent_de(m.lower), percent_de(m.upper)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("id")
    }

    #[test]
    fn the_sampled_share_follows_the_setting_and_is_stable() {
        let ids: Vec<DocumentId> = (0..20_000).map(|_| DocumentId::new()).collect();
        let share = ids.iter().filter(|d| is_sampled(d, 0.02)).count() as f64 / 20_000.0;
        assert!((0.015..=0.025).contains(&share), "{share}");
        assert!(ids.iter().all(|d| is_sampled(d, 1.0)));
        assert!(!ids.iter().any(|d| is_sampled(d, 0.0)));
        for d in ids.iter().take(200) {
            assert_eq!(is_sampled(d, 0.3), is_sampled(d, 0.3));
            // A larger share keeps every document a smaller one sampled.
            if is_sampled(d, 0.1) {
                assert!(is_sampled(d, 0.3));
            }
        }
    }

    #[test]
    fn wilson_interval_matches_known_values() {
        // 19 of 20: 0.7639 .. 0.9911 (Wilson, z = 1.96).
        let (lo, hi) = wilson(19, 20, Z95);
        assert!((lo - 0.7639).abs() < 1e-3, "{lo}");
        assert!((hi - 0.9911).abs() < 1e-3, "{hi}");
        // 20 of 20: the upper bound is 1, the lower one 0.8389.
        let (lo, hi) = wilson(20, 20, Z95);
        assert!((lo - 0.8389).abs() < 1e-3, "{lo}");
        assert!((hi - 1.0).abs() < 1e-9, "{hi}");
        // 0 of 10: 0 .. 0.2775.
        let (lo, hi) = wilson(0, 10, Z95);
        assert!(lo.abs() < 1e-9 && (hi - 0.2775).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    fn measured(judged: &[(f64, bool)]) -> Measured {
        let confirmed = judged.iter().filter(|(_, ok)| *ok).count() as u64;
        let n = judged.len() as u64;
        let (lower, upper) = wilson(confirmed, n, Z95);
        Measured {
            mailbox: id("20"),
            judged: n,
            confirmed,
            overturned: n - confirmed,
            precision: confirmed as f64 / n as f64,
            lower,
            upper,
        }
    }

    #[test]
    fn a_threshold_is_raised_above_the_overturned_decisions_once_the_evidence_suffices() {
        // 20 judged: 18 confirmed at 0.90..0.99, 2 overturned at 0.86 and 0.91.
        let mut judged: Vec<(f64, bool)> = (0..18)
            .map(|i| (0.90 + f64::from(i) * 0.005, true))
            .collect();
        judged.push((0.86, false));
        judged.push((0.91, false));
        let m = measured(&judged);
        assert!(m.upper < crate::train::DEFAULT_PRECISION_TARGET, "{m:?}");
        let t = raised_threshold(&m, &judged, crate::train::DEFAULT_PRECISION_TARGET, 20, 0.8);
        assert_eq!(t, Some(0.9101));
        // Not below the threshold in force, and not with too little evidence.
        assert_eq!(
            raised_threshold(
                &m,
                &judged,
                crate::train::DEFAULT_PRECISION_TARGET,
                20,
                0.95
            ),
            None
        );
        assert_eq!(
            raised_threshold(&m, &judged, crate::train::DEFAULT_PRECISION_TARGET, 21, 0.8),
            None
        );
        // All confirmed: the interval reaches the target, nothing is raised.
        let good: Vec<(f64, bool)> = (0..40)
            .map(|i| (0.8 + f64::from(i) * 0.001, true))
            .collect();
        assert_eq!(
            raised_threshold(
                &measured(&good),
                &good,
                crate::train::DEFAULT_PRECISION_TARGET,
                20,
                0.8
            ),
            None
        );
        // An overturned decision at full confidence: above every confidence.
        let sure = [(1.0, false), (0.99, true), (0.98, true)];
        assert_eq!(
            raised_threshold(
                &measured(&sure),
                &sure,
                crate::train::DEFAULT_PRECISION_TARGET,
                3,
                0.8
            ),
            Some(MAX_RAISED_THRESHOLD)
        );
    }

    #[test]
    fn the_reason_is_german_with_interval_and_thresholds() {
        let judged = [(0.9, true), (0.95, false)];
        let r = raise_reason(&measured(&judged), 0.995, 0.8, 0.9501);
        assert!(
            r.contains("Präzision für Postfach 20 unter dem Ziel"),
            "{r}"
        );
        assert!(r.contains("1 von 2"), "{r}");
        assert!(r.contains("Ziel 99,50 %"), "{r}");
        assert!(r.contains("von 80,00 % auf 95,01 % angehoben"), "{r}");
    }
}
