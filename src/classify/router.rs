//! The router: the one place that decides a document's mailbox. The daemon's pipeline,
//! `poststelle route`, `poststelle eval` and every re-route call it, so they cannot disagree.
//!
//! The order of evidence, strongest first:
//! 1. an e-invoice whose Leitweg-ID is configured (`[einvoice] routes`): `decided_by = invoice`;
//! 2. the classifier (rules + model, with the review threshold);
//! 3. for e-mail, a recipient address that config gives to a mailbox (`[[mailboxes]]
//!    addresses`) overrides the classifier: `decided_by = recipient`; addresses of several
//!    mailboxes leave it to a person.

use super::Classifier;
use crate::domain::{
    Candidate, DecidedBy, Decision, DocumentMetadata, InvoiceInfo, MailboxId, RuleHit,
};
use crate::extract::zones::{self, Zones};
use crate::extract::{Extraction, MediaType};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A mailbox that e-mail addresses route to.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientRoute {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its name (for the explanation).
    pub name: String,
    /// Its addresses, lower case.
    pub addresses: Vec<String>,
}

/// What the router needs besides the classifier (built from the town's settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterSettings {
    /// Lines that identify the town in an address field (to find the recipient block).
    pub address_markers: Vec<String>,
    /// Normalised Leitweg-ID -> mailbox.
    pub invoice_routes: BTreeMap<String, MailboxId>,
    /// Mailboxes with e-mail addresses of their own.
    pub recipients: Vec<RecipientRoute>,
}

/// A routed document: the zones and metadata read on the way, and the decision.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Zones of page 1 (address field, subject, ...).
    pub zones: Zones,
    /// Facts read from the document (sender, references, invoice data, ...).
    pub metadata: DocumentMetadata,
    /// The decision with its explanation.
    pub decision: Decision,
}

/// Decides documents' mailboxes (cheap to clone; the classifier is shared).
#[derive(Debug, Clone)]
pub struct Router {
    classifier: Arc<Classifier>,
    settings: Arc<RouterSettings>,
}

impl Router {
    /// A router with this classifier and settings.
    pub fn new(classifier: Arc<Classifier>, settings: RouterSettings) -> Self {
        Self {
            classifier,
            settings: Arc::new(settings),
        }
    }

    /// The classifier in use.
    pub fn classifier(&self) -> &Arc<Classifier> {
        &self.classifier
    }

    /// The settings in use.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The same router with another classifier (e.g. after a model was activated).
    pub fn with_classifier(&self, classifier: Arc<Classifier>) -> Self {
        Self {
            classifier,
            settings: self.settings.clone(),
        }
    }

    /// Routes an extracted document: zones, metadata and decision. CPU-bound (the model);
    /// async callers run it on a blocking thread.
    pub fn route(&self, ex: &Extraction) -> Routed {
        let zones = zones::find(ex, &self.settings.address_markers);
        let mut metadata =
            crate::extract::metadata::extract(&zones, &self.settings.address_markers);
        if let Some(inv) = &ex.invoice {
            crate::extract::metadata::merge_invoice(&mut metadata, inv);
        }
        let decision = self.decide_extracted(ex, &zones, true);
        Routed {
            zones,
            metadata,
            decision,
        }
    }

    /// The decision on an extracted document whose zones [`Router::route`] already found
    /// (the shadow model decides the same document with them again).
    pub fn decide_extracted(
        &self,
        ex: &Extraction,
        zones: &Zones,
        explain_model: bool,
    ) -> Decision {
        let mail_page1 = match ex.pages.first() {
            Some(p) if ex.media_type == MediaType::Eml => Some(p.text.as_str()),
            _ => None,
        };
        self.decide(zones, ex.invoice.as_ref(), mail_page1, explain_model)
    }

    /// Routes a plain text (a corpus item in evaluation); `is_mail` = the text is an e-mail
    /// rendered as the daemon reads one (header lines `Von:`/`An:`/... then the body).
    pub fn route_text(&self, text: &str, is_mail: bool, explain_model: bool) -> Decision {
        let zones = zones::from_text(text, &self.settings.address_markers);
        self.decide(&zones, None, is_mail.then_some(text), explain_model)
    }

    /// The decision on already found zones. `mail_page1` is page 1 of an e-mail (its header
    /// lines), `None` for other documents.
    pub fn decide(
        &self,
        zones: &Zones,
        invoice: Option<&InvoiceInfo>,
        mail_page1: Option<&str>,
        explain_model: bool,
    ) -> Decision {
        if let Some(d) = invoice
            .and_then(|inv| super::einvoice::decide(inv, &self.settings.invoice_routes, zones))
        {
            return d;
        }
        self.with_recipients(
            mail_page1,
            self.classifier.decide_with(zones, explain_model),
        )
    }

    /// The classifier's `decision` after the recipient step: for an e-mail (`mail_page1`, its
    /// header lines) a recipient address that belongs to a mailbox decides. Evaluation uses it
    /// to route with a classifier decision it already has.
    pub fn with_recipients(&self, mail_page1: Option<&str>, decision: Decision) -> Decision {
        match mail_page1 {
            Some(page1) => {
                let recipients = crate::extract::mail::recipients_in_text(page1);
                by_recipient(&self.settings.recipients, &recipients, decision)
            }
            None => decision,
        }
    }
}

/// An e-mail to an address that config gives to a mailbox goes there, decided by the recipient
/// and explained in German; mail to general addresses keeps the classifier's decision.
/// Addresses of several mailboxes leave it to a person.
fn by_recipient(
    routes: &[RecipientRoute],
    recipients: &[String],
    mut decision: Decision,
) -> Decision {
    let mut hits: Vec<(&RecipientRoute, &String)> = Vec::new();
    for r in recipients {
        if let Some(route) = routes.iter().find(|m| m.addresses.contains(r))
            && !hits.iter().any(|(m, _)| m.mailbox == route.mailbox)
        {
            hits.push((route, r));
        }
    }
    let Some((first, addr)) = hits.first().copied() else {
        return decision;
    };
    let mut rules: Vec<RuleHit> = hits
        .iter()
        .map(|(m, a)| RuleHit {
            rule: format!(
                "Empfängeradresse {a} gehört laut Konfiguration zum Postfach {} ({})",
                m.mailbox, m.name
            ),
            mailbox: m.mailbox.clone(),
            weight: 0.0,
            zone: "recipient".into(),
            matched: vec![(*a).clone()],
            position: None,
        })
        .collect();
    rules.append(&mut decision.explanation.rules);
    decision.explanation.rules = rules;
    if hits.len() > 1 {
        let names: Vec<String> = hits
            .iter()
            .map(|(m, a)| format!("{a} ({})", m.mailbox))
            .collect();
        decision.needs_review = true;
        decision.explanation.review_reason = Some(format!(
            "Die E-Mail ist an Adressen mehrerer Fachbereiche gerichtet: {}.",
            names.join(", ")
        ));
        return decision;
    }
    decision
        .explanation
        .candidates
        .retain(|c| c.mailbox != first.mailbox);
    decision.explanation.candidates.insert(
        0,
        Candidate {
            mailbox: first.mailbox.clone(),
            score: 1.0,
        },
    );
    decision.explanation.review_reason = None;
    tracing::debug!(address = %addr, mailbox = %first.mailbox, "routed by recipient address");
    decision.mailbox = Some(first.mailbox.clone());
    decision.confidence = 1.0;
    decision.decided_by = DecidedBy::Recipient;
    decision.needs_review = false;
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::rules::RuleSet;

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("valid id")
    }

    fn router() -> Router {
        let classifier = Classifier::new(
            Arc::new(RuleSet::default()),
            None,
            vec![id("63"), id("20")],
            0.8,
        );
        let mut invoice_routes = BTreeMap::new();
        invoice_routes.insert("05315000-ABC-67".to_string(), id("20"));
        Router::new(
            Arc::new(classifier),
            RouterSettings {
                address_markers: vec!["Stadt Musterstadt".into()],
                invoice_routes,
                recipients: vec![
                    RecipientRoute {
                        mailbox: id("63"),
                        name: "Bauordnung".into(),
                        addresses: vec!["bauordnung@musterstadt.de".into()],
                    },
                    RecipientRoute {
                        mailbox: id("20"),
                        name: "Kämmerei".into(),
                        addresses: vec!["kaemmerei@musterstadt.de".into()],
                    },
                ],
            },
        )
    }

    const MAIL: &str = "Von: A <a@example.org>\nAn: Bauordnung <Bauordnung@Musterstadt.de>\nBetreff: Frage\n\nGuten Tag, eine Frage.";

    #[test]
    fn recipient_address_decides_mail_only() {
        let r = router();
        let d = r.route_text(MAIL, true, false);
        assert_eq!(d.decided_by, DecidedBy::Recipient);
        assert_eq!(d.mailbox, Some(id("63")));
        assert!(!d.needs_review);
        // The same text as a letter is not routed by the address.
        let letter = r.route_text(MAIL, false, false);
        assert_ne!(letter.decided_by, DecidedBy::Recipient);
    }

    #[test]
    fn addresses_of_two_mailboxes_go_to_review() {
        let text = "Von: A <a@example.org>\nAn: bauordnung@musterstadt.de, kaemmerei@musterstadt.de\nBetreff: x\n\nText der Nachricht.";
        let d = router().route_text(text, true, false);
        assert!(d.needs_review);
        let reason = d.explanation.review_reason.unwrap_or_default();
        assert!(reason.contains("mehrerer Fachbereiche"), "{reason}");
    }

    #[test]
    fn configured_leitweg_id_wins_over_the_recipient() {
        let inv = InvoiceInfo {
            format: "xrechnung-ubl".into(),
            leitweg_id: Some("05315000-abc-67".into()),
            ..Default::default()
        };
        let z = zones::from_text(MAIL, &[]);
        let d = router().decide(&z, Some(&inv), Some(MAIL), false);
        assert_eq!(d.decided_by, DecidedBy::Invoice);
        assert_eq!(d.mailbox, Some(id("20")));
    }
}
