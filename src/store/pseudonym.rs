//! Pseudonyms for the audit trail (DSGVO): events keep document ids, states, mailboxes and
//! decisions, but no personal data. E-mail addresses, file names, subjects, sender names and
//! free-text details are replaced by a keyed hash (`p:` and 16 hex digits): the same value
//! always gives the same pseudonym inside one installation, so events stay linkable ("the same
//! sender as before"), but without the installation's key (kept in the database, deleted with
//! it) nobody can test a guessed address against it.

use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Keys of event details whose string values are personal data as a whole. Notes that staff
/// write for each other (a review note, the German note of a superseded delivery) stay
/// readable: they are the work record the desk shows; e-mail addresses in them are replaced.
const PERSONAL_KEYS: &[&str] = &[
    "original_name",
    "name",
    "sender",
    "subject",
    "message_id",
    "file_references",
    "detail",
    "path",
    "recipients",
];

/// Keys that hold a mailbox id in most events but an e-mail address in some (acknowledgements):
/// pseudonymised only when the value is an address.
const ADDRESS_OR_MAILBOX_KEYS: &[&str] = &["to", "from"];

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}").expect("valid regex")
});

/// HMAC-SHA256 of `value` under `key` (RFC 2104).
fn hmac(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(value);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The pseudonym of `value`: `p:` and the first 16 hex digits of its keyed hash.
pub fn pseudonym(key: &[u8], value: &str) -> String {
    format!("p:{}", &hex::encode(hmac(key, value.as_bytes()))[..16])
}

/// `text` with every e-mail address replaced by its pseudonym (of the lower-case address).
pub fn scrub_text(key: &[u8], text: &str) -> String {
    EMAIL
        .replace_all(text, |c: &regex::Captures<'_>| {
            pseudonym(key, &c[0].to_lowercase())
        })
        .into_owned()
}

/// An event's detail without personal data: the values of [`PERSONAL_KEYS`] pseudonymised
/// whole (strings, and strings inside arrays), e-mail addresses anywhere else replaced.
pub fn scrub(key: &[u8], detail: &Value) -> Value {
    scrub_at(key, detail, None)
}

fn scrub_at(key: &[u8], v: &Value, field: Option<&str>) -> Value {
    let whole = field.is_some_and(|f| PERSONAL_KEYS.contains(&f));
    let address_field = field.is_some_and(|f| ADDRESS_OR_MAILBOX_KEYS.contains(&f));
    match v {
        Value::String(s) if whole && !s.is_empty() && !s.starts_with("p:") => {
            Value::String(pseudonym(key, s))
        }
        Value::String(s) if address_field && s.contains('@') => {
            Value::String(pseudonym(key, &s.to_lowercase()))
        }
        Value::String(s) => Value::String(scrub_text(key, s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| scrub_at(key, i, field)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), scrub_at(key, v, Some(k))))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn hmac_matches_the_rfc_4231_test_vector() {
        // RFC 4231, test case 2.
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn personal_values_become_stable_pseudonyms_and_the_rest_stays() {
        let detail = serde_json::json!({
            "original_name": "Antrag Müller.pdf",
            "source": "hot_folder",
            "to": "ewa.nowak@example.org",
            "from": "63",
            "reason": "Mail an Ewa.Nowak@example.org abgelehnt",
            "recipients": ["a@example.org", "b@example.org"],
            "size": 42,
        });
        let s = scrub(KEY, &detail);
        let text = s.to_string();
        assert!(!text.contains("Müller"), "{text}");
        assert!(!text.to_lowercase().contains("nowak"), "{text}");
        assert!(!text.contains("a@example.org"), "{text}");
        assert_eq!(s["source"], "hot_folder");
        assert_eq!(s["from"], "63");
        assert_eq!(s["size"], 42);
        // The same address gives the same pseudonym wherever it appears.
        let p = pseudonym(KEY, "ewa.nowak@example.org");
        assert_eq!(s["to"], p.as_str());
        assert_eq!(s["reason"], format!("Mail an {p} abgelehnt").as_str());
        // Scrubbing twice changes nothing more; another key gives other pseudonyms.
        assert_eq!(scrub(KEY, &s), s);
        assert_ne!(pseudonym(b"other key", "ewa.nowak@example.org"), p);
    }
}
