//! The router: the one place that decides a document's mailbox. The daemon's pipeline,
//! `poststelle route`, `poststelle eval` and every re-route call it, so they cannot disagree.
//!
//! The order of evidence, strongest first:
//! 1. an e-invoice whose Leitweg-ID is configured (`[einvoice] routes`): `decided_by = invoice`;
//! 2. the classifier (rules + model, with the review threshold);
//! 3. for e-mail, a recipient address that config gives to a mailbox (`[[mailboxes]]
//!    addresses`) overrides the classifier: `decided_by = recipient`; addresses of several
//!    mailboxes leave it to a person.
//!
//! The decided mailbox's clerk (its assignment table, [`super::clerk`]) is part of the
//! explanation ([`Router::clerk`]).
//!
//! The daemon also passes the sender's history (sender memory, [`super::sender`]): earlier
//! documents of the same sender and where they went are evidence inside step 2. Routing is
//! split for it into reading ([`Router::read`]: zones and metadata, from which the sender's
//! keys come) and deciding ([`Router::decide_reading`]), so the history can be looked up in
//! between; `route` and `eval` decide without a history.

use super::Classifier;
use crate::domain::{
    Candidate, DecidedBy, Decision, DocumentMetadata, InvoiceInfo, MailboxId, RuleHit,
    SenderHistory, SenderKey,
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
    /// Mailbox names (for explanations).
    pub mailbox_names: BTreeMap<MailboxId, String>,
    /// The clerks inside the mailboxes (assignment tables).
    pub clerks: super::clerk::ClerkTable,
}

/// A document read for routing, before the decision: what [`Router::decide_reading`] needs.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Zones of page 1.
    pub zones: Zones,
    /// Facts read from the document.
    pub metadata: DocumentMetadata,
    /// The e-invoice, when the document is one.
    pub invoice: Option<InvoiceInfo>,
    /// Page 1 of an e-mail (its header lines); `None` for other documents.
    pub mail_page1: Option<String>,
    /// How sure OCR was of page 1's words (None when not read by OCR).
    pub ocr: Option<crate::extract::OcrConfidence>,
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
        self.decide_reading(self.read(ex), None)
    }

    /// Reads an extracted document for routing: zones and metadata, no decision yet.
    pub fn read(&self, ex: &Extraction) -> Reading {
        let zones = zones::find(ex, &self.settings.address_markers);
        let mut metadata =
            crate::extract::metadata::extract(&zones, &self.settings.address_markers);
        if let Some(inv) = &ex.invoice {
            crate::extract::metadata::merge_invoice(&mut metadata, inv);
        }
        let mail_page1 = match ex.pages.first() {
            Some(p) if ex.media_type == MediaType::Eml => Some(p.text.clone()),
            _ => None,
        };
        Reading {
            zones,
            metadata,
            invoice: ex.invoice.clone(),
            mail_page1,
            ocr: ex.ocr_confidence(),
        }
    }

    /// The sender keys of a reading (what its sender history is looked up by).
    pub fn sender_keys(&self, reading: &Reading) -> Vec<SenderKey> {
        super::sender::keys(&reading.metadata, &self.settings.address_markers)
    }

    /// Decides a read document, with its sender's history when there is one. CPU-bound.
    pub fn decide_reading(&self, reading: Reading, history: Option<&SenderHistory>) -> Routed {
        let sender = history
            .map(|h| super::sender::evidence(h, &self.settings.mailbox_names))
            .unwrap_or_default();
        let mut decision = self.decide_with_sender(
            &reading.zones,
            reading.invoice.as_ref(),
            reading.mail_page1.as_deref(),
            true,
            &sender,
        );
        if let Some(q) = &reading.ocr {
            decision.explanation.ocr_confidence = Some((q.mean * 10.0).round() / 10.0);
            poorly_read(&mut decision, q);
        }
        decision.explanation.clerk = self.clerk(decision.mailbox.as_ref(), &reading.metadata);
        Routed {
            zones: reading.zones,
            metadata: reading.metadata,
            decision,
        }
    }

    /// The clerk inside `mailbox` for a document with this metadata (the mailbox's
    /// assignment table, first matching row); `None` without a mailbox, a table or a match.
    /// Every decision and every delivery asks here, so a document assigned to another
    /// mailbox gets that mailbox's clerk.
    pub fn clerk(
        &self,
        mailbox: Option<&MailboxId>,
        metadata: &DocumentMetadata,
    ) -> Option<crate::domain::ClerkAssignment> {
        self.settings.clerks.assign(mailbox?, metadata)
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
        self.decide_with_sender(zones, invoice, mail_page1, explain_model, &[])
    }

    /// [`Router::decide`] with the sender history's evidence (`sender`, hits from
    /// [`super::sender::evidence`]) for the classifier step.
    pub fn decide_with_sender(
        &self,
        zones: &Zones,
        invoice: Option<&InvoiceInfo>,
        mail_page1: Option<&str>,
        explain_model: bool,
        sender: &[RuleHit],
    ) -> Decision {
        if let Some(d) = invoice
            .and_then(|inv| super::einvoice::decide(inv, &self.settings.invoice_routes, zones))
        {
            return d;
        }
        self.with_recipients(
            mail_page1,
            self.classifier
                .decide_with_sender(zones, explain_model, sender),
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

/// Mean word confidence (0..100) of page 1 below which OCR read too little to route on.
pub const LOW_OCR_MEAN: f64 = 70.0;
/// Share of page 1's text in poorly read words above which it is not routed either.
pub const LOW_OCR_SHARE: f64 = 0.35;

/// A page that OCR read poorly (handwriting, a faint carbon copy, fax noise) is not routed on
/// the few words it got right: a person decides, told why. An e-invoice's data and a recipient
/// address are read exactly and still decide.
fn poorly_read(decision: &mut Decision, q: &crate::extract::OcrConfidence) {
    if matches!(
        decision.decided_by,
        DecidedBy::Invoice | DecidedBy::Recipient
    ) || (q.mean >= LOW_OCR_MEAN && q.low_share <= LOW_OCR_SHARE)
    {
        return;
    }
    tracing::debug!(
        mean = q.mean,
        low_share = q.low_share,
        "page 1 poorly read by OCR"
    );
    decision.needs_review = true;
    decision.explanation.review_reason = Some(format!(
        "Die Texterkennung war unsicher (mittlere Wortsicherheit {:.0} %, {:.0} % des Textes \
         schlecht lesbar): vermutlich Handschrift, eine blasse Kopie oder ein Fax. Bitte \
         Zuständigkeit anhand des Originals festlegen.",
        q.mean,
        q.low_share * 100.0
    ));
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
                ..Default::default()
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
