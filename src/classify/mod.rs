//! Classify: rules and model combine into one decision with its explanation.
//!
//! Combination: each mailbox's score is `ln p_model(m) + Σ weights of rules that fired for m`,
//! turned back into probabilities with softmax. A rule weight is thus a log-odds boost (weight
//! 3 multiplies the odds by 20) and the result stays a probability the threshold can act on.
//! Without a model, rule evidence alone is used. Below the threshold, a person decides.

pub mod einvoice;
pub mod model;
pub mod router;
pub mod rules;
pub mod select;
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
        }
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

    /// Decides a document's mailbox, with the full explanation.
    pub fn decide(&self, zones: &Zones) -> Decision {
        self.decide_with(zones, true)
    }

    /// Decides; `explain_model` = false skips naming the model's features (evaluation runs).
    pub fn decide_with(&self, zones: &Zones, explain_model: bool) -> Decision {
        let model_probs: Option<BTreeMap<MailboxId, f64>> = self.model.as_ref().map(|m| {
            m.meta
                .classes
                .iter()
                .cloned()
                .zip(m.predict(zones))
                .collect()
        });
        self.decide_given(zones, model_probs, explain_model)
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
        let hits = self.rules.eval(zones);
        let rule_scores = RuleSet::scores(&hits);
        let threshold = self.threshold();
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
        let review_reason = if !has_text {
            Some("Kein lesbarer Text erkannt – bitte Zuständigkeit manuell festlegen.".to_string())
        } else if decided_by == DecidedBy::Nothing {
            Some(
                "Weder Regeln noch Modell liefern einen Hinweis auf die Zuständigkeit.".to_string(),
            )
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
            Some(format!(
                "Sicherheit {:.0} % liegt unter der Schwelle von {:.0} %{runner}.",
                confidence * 100.0,
                threshold * 100.0
            ))
        } else {
            None
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
            },
        }
    }
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
