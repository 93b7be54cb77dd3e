//! Classify: rules and model combine into one decision with its explanation.
//!
//! Combination: each mailbox's score is `ln p_model(m) + Σ weights of rules that fired for m`,
//! turned back into probabilities with softmax. A rule weight is thus a log-odds boost (weight
//! 3 multiplies the odds by 20) and the result stays a probability the threshold can act on.
//! Without a model, rule evidence alone is used. Below the threshold, a person decides.

pub mod clerk;
pub mod einvoice;
pub mod learners;
pub mod model;
pub mod router;
pub mod rules;
pub mod select;
pub mod sender;
pub mod settings;
pub mod text;

pub use router::{RecipientRoute, Routed, Router, RouterSettings};

use crate::domain::{Candidate, DecidedBy, Decision, Explanation, MailboxId};
use crate::extract::zones::Zones;
use model::Model;
use rules::RuleSet;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The classifier: rules, model (optional) and the review threshold. It scores zones; the
/// [`Router`] around it makes the whole decision (e-invoice, recipient address, review).
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Arc<RuleSet>,
    model: Option<Arc<Model>>,
    mailboxes: Vec<MailboxId>,
    config_threshold: f64,
    threshold_overrides: Arc<BTreeMap<MailboxId, f64>>,
}

impl Classifier {
    /// A classifier over `mailboxes` from rules and an optional model; `config_threshold` is
    /// the review threshold used when the model stores none.
    pub fn new(
        rules: Arc<RuleSet>,
        model: Option<Arc<Model>>,
        mailboxes: Vec<MailboxId>,
        config_threshold: f64,
    ) -> Self {
        Self {
            rules,
            model,
            mailboxes,
            config_threshold,
            threshold_overrides: Arc::default(),
        }
    }

    /// The same classifier with these raised review thresholds per mailbox (the Stichprobe's:
    /// see [`crate::sample`]). They only ever raise: [`Classifier::threshold_for`] takes the
    /// higher of the threshold in force and the mailbox's raised one.
    pub fn with_threshold_overrides(&self, overrides: BTreeMap<MailboxId, f64>) -> Self {
        Self {
            threshold_overrides: Arc::new(overrides),
            ..self.clone()
        }
    }

    /// The raised review thresholds per mailbox.
    pub fn threshold_overrides(&self) -> &BTreeMap<MailboxId, f64> {
        &self.threshold_overrides
    }

    /// The same classifier with another model (or none).
    pub fn with_model(&self, model: Option<Arc<Model>>) -> Self {
        Self {
            model,
            ..self.clone()
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The model in use, if any.
    pub fn model(&self) -> Option<&Arc<Model>> {
        self.model.as_ref()
    }

    /// The threshold in force: the one stored with the model, else the configured one.
    pub fn threshold(&self) -> f64 {
        self.model
            .as_ref()
            .and_then(|m| m.meta.threshold)
            .unwrap_or(self.config_threshold)
    }

    /// The threshold training chose for `mailbox` (its own where its data sufficed, else the
    /// overall one), before any raise by the Stichprobe.
    pub fn base_threshold_for(&self, mailbox: &MailboxId) -> f64 {
        self.model
            .as_ref()
            .and_then(|m| m.meta.thresholds.get(mailbox).copied())
            .unwrap_or_else(|| self.threshold())
    }

    /// The review threshold for a decision for `mailbox`: the mailbox's own (chosen at training
    /// where its data sufficed), else [`Classifier::threshold`]; or the Stichprobe's raised
    /// threshold for the mailbox when that is higher.
    pub fn threshold_for(&self, mailbox: &MailboxId) -> f64 {
        let base = self.base_threshold_for(mailbox);
        self.threshold_overrides
            .get(mailbox)
            .map_or(base, |t| t.max(base))
    }

    /// Decides a document's mailbox, with the full explanation.
    pub fn decide(&self, zones: &Zones) -> Decision {
        self.decide_with(zones, true)
    }

    /// Decides; `explain_model` = false skips naming the model's features (evaluation runs).
    pub fn decide_with(&self, zones: &Zones, explain_model: bool) -> Decision {
        self.decide_with_sender(zones, explain_model, &[])
    }

    /// Decides with the evidence of the sender's history (`sender`, hits from
    /// [`sender::evidence`]); see [`Classifier::decide_given_with_sender`].
    pub fn decide_with_sender(
        &self,
        zones: &Zones,
        explain_model: bool,
        sender: &[crate::domain::RuleHit],
    ) -> Decision {
        let model_probs: Option<BTreeMap<MailboxId, f64>> = self.model.as_ref().map(|m| {
            m.meta
                .classes
                .iter()
                .cloned()
                .zip(m.predict(zones))
                .collect()
        });
        self.decide_given_with_sender(zones, model_probs, explain_model, sender)
    }

    /// Decides with model probabilities computed elsewhere (evaluation has them from held-out
    /// logits); `None` decides by the rules alone. The model's features are explained only
    /// when this classifier holds the model and `explain_model` is set.
    pub fn decide_given(
        &self,
        zones: &Zones,
        model_probs: Option<BTreeMap<MailboxId, f64>>,
        explain_model: bool,
    ) -> Decision {
        self.decide_given_with_sender(zones, model_probs, explain_model, &[])
    }

    /// [`Classifier::decide_given`] with the evidence of the sender's history
    /// ([`sender::evidence`]): its hits count like rule hits (their weights add to their
    /// mailboxes' scores, the explanation lists them), but like keyword rules they never
    /// overrule a model that is at least [`CONFLICT_MODEL_PROBABILITY`] sure of another
    /// mailbox: such a document goes to review, with the reason in German.
    pub fn decide_given_with_sender(
        &self,
        zones: &Zones,
        model_probs: Option<BTreeMap<MailboxId, f64>>,
        explain_model: bool,
        sender: &[crate::domain::RuleHit],
    ) -> Decision {
        let mut hits = self.rules.eval(zones);
        hits.extend(sender.iter().cloned());
        let rule_scores = RuleSet::scores(&hits);
        let mut labels: Vec<MailboxId> = self.mailboxes.clone();
        for m in rule_scores.keys() {
            if !labels.contains(m) {
                labels.push(m.clone());
            }
        }
        if let Some(mp) = &model_probs {
            for m in mp.keys() {
                if !labels.contains(m) {
                    labels.push(m.clone());
                }
            }
        }
        let has_text = zones.all.chars().filter(|c| c.is_alphanumeric()).count() >= 3;
        let mut logits: Vec<f64> = labels
            .iter()
            .map(|m| {
                let prior = match &model_probs {
                    Some(mp) => mp.get(m).copied().unwrap_or(1e-6).max(1e-9).ln(),
                    None => 0.0,
                };
                prior + rule_scores.get(m).copied().unwrap_or(0.0)
            })
            .collect();
        softmax(&mut logits);
        let mut candidates: Vec<Candidate> = labels
            .iter()
            .cloned()
            .zip(logits)
            .map(|(mailbox, score)| Candidate {
                mailbox,
                score: (score * 10_000.0).round() / 10_000.0,
            })
            .collect();
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.mailbox.cmp(&b.mailbox)));
        let best = candidates.first().cloned();
        let threshold = best
            .as_ref()
            .map_or_else(|| self.threshold(), |b| self.threshold_for(&b.mailbox));
        let raised = best
            .as_ref()
            .is_some_and(|b| threshold > self.base_threshold_for(&b.mailbox));
        let model_top = model_probs.as_ref().and_then(|mp| {
            mp.iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(m, _)| m.clone())
        });
        let rules_for_best = best
            .as_ref()
            .is_some_and(|b| rule_scores.get(&b.mailbox).copied().unwrap_or(0.0) > 0.0);
        let decided_by = match (&best, rules_for_best, &model_top) {
            _ if !has_text => DecidedBy::Nothing,
            (None, _, _) => DecidedBy::Nothing,
            (Some(_), false, None) => DecidedBy::Nothing,
            (Some(_), false, Some(_)) => DecidedBy::Model,
            (Some(b), true, Some(mt)) if *mt == b.mailbox => DecidedBy::Combined,
            (Some(_), true, _) => DecidedBy::Rule,
        };
        let confidence = match decided_by {
            DecidedBy::Nothing => 0.0,
            _ => best.as_ref().map(|b| b.score).unwrap_or(0.0),
        };
        // Topic rules (keywords anywhere in the letter) see the same words the model has learnt
        // from; when they overturn a choice the model is at least even-odds sure of, the two
        // disagree and a person decides. Address rules (the department named in the address field, Solingen's way)
        // and strong patterns keep the right to overrule the model.
        let conflict = match (&best, &model_top) {
            (Some(b), Some(mt))
                if decided_by == DecidedBy::Rule
                    && *mt != b.mailbox
                    && model_probs
                        .as_ref()
                        .and_then(|mp| mp.get(mt))
                        .is_some_and(|p| *p >= CONFLICT_MODEL_PROBABILITY) =>
            {
                let overruling = hits
                    .iter()
                    .any(|h| h.mailbox == b.mailbox && h.weight > 0.0 && is_overruling(h));
                let by_sender = hits
                    .iter()
                    .any(|h| h.mailbox == b.mailbox && h.weight > 0.0 && h.zone == sender::ZONE);
                (!overruling).then(|| (b.mailbox.clone(), mt.clone(), by_sender))
            }
            _ => None,
        };
        // Keyword rules that point to the model's choice too disagree among themselves; the
        // model's choice is then the proposal the person sees (the reason names both).
        let split = conflict.as_ref().is_some_and(|(_, by_model, _)| {
            hits.iter()
                .any(|h| h.mailbox == *by_model && h.weight > 0.0 && h.zone != sender::ZONE)
        });
        let review_reason = if !has_text {
            Some("Kein lesbarer Text erkannt – bitte Zuständigkeit manuell festlegen.".to_string())
        } else if decided_by == DecidedBy::Nothing {
            Some(
                "Weder Regeln noch Modell liefern einen Hinweis auf die Zuständigkeit.".to_string(),
            )
        } else if let Some((by_rules, by_model, by_sender)) = &conflict {
            let keywords = hits
                .iter()
                .any(|h| h.mailbox == *by_rules && h.weight > 0.0 && h.zone != sender::ZONE);
            Some(match (keywords, by_sender) {
                (true, true) => format!(
                    "Regeln und Modell widersprechen sich: Stichwortregeln und frühere Schreiben \
                     desselben Absenders sprechen für {by_rules}, das Modell für {by_model}."
                ),
                (false, true) => format!(
                    "Absender und Inhalt widersprechen sich: frühere Schreiben desselben \
                     Absenders gingen an {by_rules}, das Modell hält {by_model} für zuständig."
                ),
                _ if split => format!(
                    "Regeln und Modell widersprechen sich: Stichwortregeln sprechen vor allem \
                     für {by_rules}, aber auch für {by_model}; das Modell für {by_model} \
                     (vorgeschlagen)."
                ),
                _ => format!(
                    "Regeln und Modell widersprechen sich: Stichwortregeln sprechen für \
                     {by_rules}, das Modell für {by_model}."
                ),
            })
        } else if confidence < threshold {
            let runner = candidates
                .get(1)
                .map(|c| {
                    format!(
                        " (Zweitbester Vorschlag: {} mit {:.0} %)",
                        c.mailbox,
                        c.score * 100.0
                    )
                })
                .unwrap_or_default();
            Some(if raised {
                format!(
                    "Sicherheit {} liegt unter der Schwelle von {}, die die Stichprobe für \
                     dieses Postfach angehoben hat{runner}.",
                    crate::sample::percent_de(confidence),
                    crate::sample::threshold_de(threshold)
                )
            } else {
                format!(
                    "Sicherheit {:.0} % liegt unter der Schwelle von {:.0} %{runner}.",
                    confidence * 100.0,
                    threshold * 100.0
                )
            })
        } else {
            None
        };
        let (best, decided_by, confidence) = match &conflict {
            Some((_, by_model, _)) if split => {
                // The model's choice moves to the front of the candidates.
                let proposed = candidates
                    .iter()
                    .position(|c| c.mailbox == *by_model)
                    .map(|i| candidates.remove(i));
                if let Some(c) = &proposed {
                    candidates.insert(0, c.clone());
                }
                let score = proposed.as_ref().map_or(0.0, |c| c.score);
                (proposed, DecidedBy::Combined, score)
            }
            _ => (best, decided_by, confidence),
        };
        let model_features = match (&self.model, &best) {
            (Some(m), Some(b)) if has_text && explain_model => m
                .meta
                .classes
                .iter()
                .position(|c| *c == b.mailbox)
                .map(|idx| m.explain(zones, idx, 8))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        candidates.truncate(5);
        Decision {
            mailbox: if decided_by == DecidedBy::Nothing {
                None
            } else {
                best.map(|b| b.mailbox)
            },
            confidence: (confidence * 10_000.0).round() / 10_000.0,
            decided_by,
            needs_review: review_reason.is_some(),
            explanation: Explanation {
                rules: hits,
                model_features,
                model_version: self.model.as_ref().map(|m| m.meta.version.clone()),
                candidates,
                threshold,
                review_reason,
                address_field: zones.address.clone(),
                subject: zones.subject.clone(),
                basis: None,
                ocr_confidence: None,
                clerk: None,
            },
        }
    }
}

/// Probability of the model's own first choice from which keyword rules that overturn it send
/// the document to review instead (measured on the shipped corpus: the held-out set's wrong
/// overrulings had 0.56-0.89, the corpus' right ones mostly less; see BENCHMARKS.md).
pub const CONFLICT_MODEL_PROBABILITY: f64 = 0.5;

/// Weight from which a rule may overrule the model on its own.
pub const OVERRULING_WEIGHT: f64 = 5.0;

/// Whether a rule hit may overrule the model: it read the address field, or its weight is at
/// least [`OVERRULING_WEIGHT`] (a department's own e-mail address, a memo to "Amt 63").
/// Sender memory never overrules: it says where a sender's post usually goes, not what this
/// document is about.
fn is_overruling(h: &crate::domain::RuleHit) -> bool {
    h.zone != sender::ZONE && (h.zone == "address" || h.weight >= OVERRULING_WEIGHT)
}

fn softmax(v: &mut [f64]) {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        v.iter_mut().for_each(|x| *x /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::zones::from_text;

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("valid id")
    }

    /// A classifier with keyword rules for 67 ("Friedhof", weight 2.5) and 34 ("Standesamt",
    /// weight 0.5) and one address rule for 63, threshold 0.5.
    fn classifier() -> Classifier {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("67.toml"),
            "mailbox = \"67\"\n[[rule]]\nid = \"friedhof\"\nzone = \"page1\"\nterms = [\"Friedhof\"]\nweight = 2.5\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("63.toml"),
            "mailbox = \"63\"\n[[rule]]\nid = \"address\"\nzone = \"address\"\nterms = [\"Bauordnung\"]\nweight = 5.5\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("34.toml"),
            "mailbox = \"34\"\n[[rule]]\nid = \"standesamt\"\nzone = \"page1\"\nterms = [\"Standesamt\"]\nweight = 0.5\n",
        )
        .expect("write");
        let rules = RuleSet::load_dir(dir.path(), &[id("34"), id("63"), id("67")]).expect("rules");
        Classifier::new(
            Arc::new(rules),
            None,
            vec![id("34"), id("63"), id("67")],
            0.5,
        )
    }

    fn probs(p34: f64, p63: f64, p67: f64) -> Option<BTreeMap<MailboxId, f64>> {
        Some(
            [(id("34"), p34), (id("63"), p63), (id("67"), p67)]
                .into_iter()
                .collect(),
        )
    }

    #[test]
    fn a_keyword_rule_that_overturns_a_sure_model_sends_to_review() {
        let z = from_text(
            "Sehr geehrte Damen und Herren, für die Sterbeurkunde meiner Mutter, beigesetzt auf dem Friedhof Nord, bitte ich um drei Abschriften.",
            &[],
        );
        let c = classifier();
        let d = c.decide_given(&z, probs(0.8, 0.1, 0.1), false);
        assert_eq!(d.mailbox, Some(id("67")), "{d:?}");
        assert!(d.needs_review, "{d:?}");
        let reason = d.explanation.review_reason.unwrap_or_default();
        assert!(reason.contains("widersprechen sich"), "{reason}");
        assert!(reason.contains("67") && reason.contains("34"), "{reason}");
        // A model that is unsure of its first choice is overruled by the rule.
        let d = c.decide_given(&z, probs(0.45, 0.3, 0.25), false);
        assert_eq!(d.mailbox, Some(id("67")));
        assert!(!d.needs_review, "{d:?}");
    }

    #[test]
    fn in_a_conflict_where_keywords_also_back_the_model_the_model_proposes() {
        let z = from_text(
            "Sehr geehrte Damen und Herren, das Standesamt bat mich, die Sterbeurkunde meiner Mutter, beigesetzt auf dem Friedhof Nord, bei Ihnen zu beantragen.",
            &[],
        );
        let c = classifier();
        let d = c.decide_given(&z, probs(0.6, 0.1, 0.3), false);
        assert!(d.needs_review, "{d:?}");
        assert_eq!(d.mailbox, Some(id("34")), "{d:?}");
        assert_eq!(d.explanation.candidates[0].mailbox, id("34"), "{d:?}");
        let reason = d.explanation.review_reason.unwrap_or_default();
        assert!(reason.contains("aber auch für 34"), "{reason}");
        // Without the keyword for 34 the rules overturn the model alone: their choice stays
        // the proposal.
        let z = from_text(
            "Sehr geehrte Damen und Herren, für die Sterbeurkunde meiner Mutter, beigesetzt auf dem Friedhof Nord, bitte ich um drei Abschriften.",
            &[],
        );
        let d = c.decide_given(&z, probs(0.6, 0.1, 0.3), false);
        assert!(d.needs_review, "{d:?}");
        assert_eq!(d.mailbox, Some(id("67")), "{d:?}");
    }

    #[test]
    fn a_raised_threshold_sends_that_mailbox_to_review_only() {
        let z = from_text(
            "Sehr geehrte Damen und Herren, für die Sterbeurkunde meiner Mutter, beigesetzt auf dem Friedhof Nord, bitte ich um drei Abschriften.",
            &[],
        );
        let c = classifier();
        let d = c.decide_given(&z, probs(0.3, 0.3, 0.4), false);
        assert_eq!(d.mailbox, Some(id("67")));
        assert!(!d.needs_review, "{d:?}");
        let raised = c.with_threshold_overrides([(id("67"), 0.99)].into_iter().collect());
        assert_eq!(raised.threshold_for(&id("67")), 0.99);
        assert_eq!(raised.threshold_for(&id("63")), 0.5);
        let d = raised.decide_given(&z, probs(0.3, 0.3, 0.4), false);
        assert!(d.needs_review, "{d:?}");
        let reason = d.explanation.review_reason.unwrap_or_default();
        assert!(reason.contains("die die Stichprobe"), "{reason}");
        assert_eq!(d.explanation.threshold, 0.99);
        // A raised threshold below the one in force changes nothing.
        let lower = c.with_threshold_overrides([(id("67"), 0.1)].into_iter().collect());
        assert_eq!(lower.threshold_for(&id("67")), 0.5);
    }

    #[test]
    fn an_address_rule_overrules_a_sure_model() {
        let z = from_text(
            "Stadt Musterstadt\nBauordnung\nMarktplatz 1\n12345 Musterstadt\n\nSehr geehrte Damen und Herren,\nanbei die Unterlagen zur Geburtsurkunde.",
            &["Stadt Musterstadt".to_string()],
        );
        let c = classifier();
        let d = c.decide_given(&z, probs(0.8, 0.1, 0.1), false);
        assert_eq!(d.mailbox, Some(id("63")), "{d:?}");
        assert!(!d.needs_review, "{d:?}");
    }

    /// A sender-memory hit for `mailbox` with `weight` (as [`sender::evidence`] makes them).
    fn sender_hit(mailbox: &str, weight: f64) -> crate::domain::RuleHit {
        crate::domain::RuleHit {
            rule:
                "Absender bekannt: 3 von 3 früheren Schreiben mit der IBAN DE89…3000 gingen an 34"
                    .into(),
            mailbox: id(mailbox),
            weight,
            zone: sender::ZONE.into(),
            matched: vec!["DE89370400440532013000".into()],
            position: None,
        }
    }

    const UNCLEAR: &str =
        "Sehr geehrte Damen und Herren, bitte rufen Sie mich wegen der Sache zurück.";

    #[test]
    fn a_consistent_sender_history_decides_where_the_model_is_unsure() {
        let z = from_text(UNCLEAR, &[]);
        let c = classifier();
        let without = c.decide_given(&z, probs(0.2, 0.45, 0.35), false);
        assert!(without.needs_review, "{without:?}");
        let with =
            c.decide_given_with_sender(&z, probs(0.2, 0.45, 0.35), false, &[sender_hit("34", 4.0)]);
        assert_eq!(with.mailbox, Some(id("34")), "{with:?}");
        assert!(!with.needs_review, "{with:?}");
        assert_eq!(with.decided_by, DecidedBy::Rule);
        assert!(with.confidence > 0.9, "{with:?}");
        assert!(
            with.explanation
                .rules
                .iter()
                .any(|h| h.zone == sender::ZONE && h.mailbox == id("34")),
            "the explanation names the sender evidence: {with:?}"
        );
    }

    #[test]
    fn a_sender_history_never_overrules_a_sure_model() {
        let z = from_text(UNCLEAR, &[]);
        let c = classifier();
        // Even a weight that would let a rule overrule (>= OVERRULING_WEIGHT).
        let d = c.decide_given_with_sender(
            &z,
            probs(0.05, 0.9, 0.05),
            false,
            &[sender_hit("34", OVERRULING_WEIGHT + 1.0)],
        );
        assert_eq!(d.mailbox, Some(id("34")), "{d:?}");
        assert!(d.needs_review, "{d:?}");
        let reason = d.explanation.review_reason.unwrap_or_default();
        assert!(reason.contains("Absender und Inhalt"), "{reason}");
        assert!(reason.contains("34") && reason.contains("63"), "{reason}");
        // Where model and sender agree, nothing conflicts.
        let d =
            c.decide_given_with_sender(&z, probs(0.05, 0.9, 0.05), false, &[sender_hit("63", 3.0)]);
        assert_eq!(d.mailbox, Some(id("63")));
        assert_eq!(d.decided_by, DecidedBy::Combined);
        assert!(!d.needs_review, "{d:?}");
    }
}
