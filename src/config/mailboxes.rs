//! The town's own sections: `[municipality]`, `[review]` and `[[mailboxes]]`. Every component
//! that needs a piece of them gets that piece from the aggregate ([`super::Settings`]).

use super::problem::Problems;
use crate::domain::MailboxId;
use crate::outgoing::settings::valid_address;
use serde::Deserialize;
use std::collections::HashSet;

/// `[municipality]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMunicipality {
    name: String,
    #[serde(default)]
    address_markers: Vec<String>,
}

/// `[review]` as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReview {
    mailbox: String,
    name: String,
    #[serde(default)]
    digest_to: Vec<String>,
}

/// One `[[mailboxes]]` entry as it stands in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    id: String,
    name: String,
    target: Option<String>,
    #[serde(default)]
    digest_to: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
}

/// A mailbox.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    /// Its id.
    pub id: MailboxId,
    /// Its name, shown to people.
    pub name: String,
    /// The delivery target it is filed into.
    pub target: String,
    /// Who gets the daily digest of this mailbox (e-mail addresses; empty: no digest).
    pub digest_to: Vec<String>,
    /// E-mail addresses (lower case) whose mail belongs to this mailbox.
    pub addresses: Vec<String>,
}

/// The validated town: its name, address markers, review mailbox and department mailboxes.
#[derive(Debug, Clone)]
pub struct Town {
    /// Name of the town.
    pub municipality: String,
    /// Lines that identify the town in an address field.
    pub address_markers: Vec<String>,
    /// The review mailbox.
    pub review: MailboxSettings,
    /// The department mailboxes, in config order.
    pub mailboxes: Vec<MailboxSettings>,
}

/// Validates the town's sections. Mailboxes without a `target` are filed into
/// `default_target` (whether targets exist is checked across sections).
pub fn validate(
    municipality: RawMunicipality,
    review: RawReview,
    raw_mailboxes: Vec<RawMailbox>,
    default_target: &str,
    problems: &mut Problems,
) -> Town {
    let mut seen = HashSet::new();
    let mut seen_addresses = HashSet::new();
    let mut mailboxes = Vec::new();
    for m in raw_mailboxes {
        let Some(id) = MailboxId::parse(&m.id) else {
            problems.push(
                &format!("\"{}\"", m.id),
                format!("mailbox id \"{}\" is not valid", m.id),
                Some("use letters, digits, '-', '_' or '.' (at most 64)".into()),
            );
            continue;
        };
        if !seen.insert(id.clone()) {
            problems.push(
                &format!("\"{}\"", m.id),
                format!("mailbox id \"{}\" appears twice", m.id),
                None,
            );
        }
        digest_addresses(
            &format!("mailbox {}: digest_to", m.id),
            &m.digest_to,
            problems,
        );
        let mut addresses = Vec::new();
        for a in &m.addresses {
            let a = a.trim().to_lowercase();
            if !a.contains('@') || a.contains(char::is_whitespace) {
                problems.push(
                    &a,
                    format!("mailbox {}: \"{a}\" is not an e-mail address", m.id),
                    None,
                );
            } else if !seen_addresses.insert(a.clone()) {
                problems.push(
                    &a,
                    format!("address \"{a}\" is given to more than one mailbox"),
                    None,
                );
            } else {
                addresses.push(a);
            }
        }
        mailboxes.push(MailboxSettings {
            id,
            name: m.name,
            target: m.target.unwrap_or_else(|| default_target.to_string()),
            digest_to: m.digest_to,
            addresses,
        });
    }
    if mailboxes.is_empty() {
        problems.push(
            "[[mailboxes]]",
            "no department mailboxes configured",
            Some("add [[mailboxes]] blocks with id and name".into()),
        );
    }
    let review_id = MailboxId::parse(&review.mailbox).unwrap_or_else(|| {
        problems.push(
            "[review]",
            format!("review mailbox id \"{}\" is not valid", review.mailbox),
            None,
        );
        MailboxId::parse("review").expect("literal id is valid")
    });
    digest_addresses("review.digest_to", &review.digest_to, problems);
    Town {
        municipality: municipality.name,
        address_markers: municipality.address_markers,
        review: MailboxSettings {
            id: review_id,
            name: review.name,
            target: default_target.to_string(),
            digest_to: review.digest_to,
            addresses: Vec::new(),
        },
        mailboxes,
    }
}

fn digest_addresses(what: &str, addresses: &[String], problems: &mut Problems) {
    for a in addresses {
        if !valid_address(a) {
            problems.push(
                &format!("\"{a}\""),
                format!("{what} \"{a}\" is not an e-mail address"),
                None,
            );
        }
    }
}
