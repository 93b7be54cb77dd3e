//! E-invoices with a configured Leitweg-ID are routed by it: a deterministic decision that
//! bypasses rules and model. Unknown Leitweg-IDs leave the decision to the classifier.

use super::settings::normalize_leitweg_id;
use crate::domain::{Candidate, DecidedBy, Decision, Explanation, InvoiceInfo, MailboxId};
use crate::extract::zones::Zones;
use std::collections::BTreeMap;

/// The decision for an invoice whose Leitweg-ID is in `routes`, else `None`.
pub fn decide(
    invoice: &InvoiceInfo,
    routes: &BTreeMap<String, MailboxId>,
    zones: &Zones,
) -> Option<Decision> {
    let lid = invoice.leitweg_id.as_deref()?.trim();
    let mailbox = routes.get(&normalize_leitweg_id(lid))?.clone();
    let number = invoice
        .number
        .as_deref()
        .map(|n| format!(" Nr. {n}"))
        .unwrap_or_default();
    Some(Decision {
        mailbox: Some(mailbox.clone()),
        confidence: 1.0,
        decided_by: DecidedBy::Invoice,
        needs_review: false,
        explanation: Explanation {
            candidates: vec![Candidate {
                mailbox: mailbox.clone(),
                score: 1.0,
            }],
            threshold: 0.0,
            address_field: zones.address.clone(),
            subject: zones.subject.clone(),
            basis: Some(format!(
                "E-Rechnung{number}: Die Leitweg-ID {lid} ist in der Konfiguration dem Postfach {mailbox} zugeordnet."
            )),
            ..Default::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> BTreeMap<String, MailboxId> {
        let mut r = BTreeMap::new();
        r.insert(
            "05315000-ABC-67".to_string(),
            MailboxId::parse("20").expect("id"),
        );
        r
    }

    #[test]
    fn known_leitweg_id_decides_unknown_does_not() {
        let inv = InvoiceInfo {
            format: "xrechnung-ubl".into(),
            number: Some("R-7".into()),
            leitweg_id: Some(" 05315000-abc-67 ".into()),
            ..Default::default()
        };
        let d = decide(&inv, &routes(), &Zones::default()).expect("routed");
        assert_eq!(d.mailbox.as_ref().map(|m| m.as_str()), Some("20"));
        assert_eq!(d.decided_by, DecidedBy::Invoice);
        assert!(!d.needs_review);
        let basis = d.explanation.basis.unwrap_or_default();
        assert!(
            basis.contains("Leitweg-ID 05315000-abc-67 ") && basis.contains("R-7"),
            "{basis}"
        );
        let other = InvoiceInfo {
            leitweg_id: Some("991-11111-22".into()),
            ..inv.clone()
        };
        assert!(decide(&other, &routes(), &Zones::default()).is_none());
        let none = InvoiceInfo {
            leitweg_id: None,
            ..inv
        };
        assert!(decide(&none, &routes(), &Zones::default()).is_none());
    }
}
