//! Sender memory: the town's own history as evidence. A document's sender is known by keys
//! read from its metadata (e-mail address, IBAN, customer number, Kassenzeichen, Aktenzeichen,
//! or name and postal address together); where earlier documents with the same key went (their
//! final mailbox, after corrections) is evidence for that mailbox, weighted by how many went
//! there and by how consistent the key's history is. A split history gives little or nothing.
//!
//! The evidence enters the classifier as a rule hit of zone [`ZONE`] with a German sentence,
//! so the decision explains it. It never overrules a model that is sure of another mailbox
//! (see `Classifier::decide_given_with_sender`): who wrote says what they usually write about,
//! not what this letter is about.

use crate::domain::{
    DocumentMetadata, Earlier, KeyHistory, MailboxId, RuleHit, SenderHistory, SenderKey,
    SenderKeyKind,
};
use std::collections::BTreeMap;

/// The zone of sender-memory hits in an explanation.
pub const ZONE: &str = "sender";

/// Earlier documents per key that the history looks at (the most recent ones).
pub const HISTORY_DEPTH: u32 = 20;

/// Most keys taken from one document (a long invoice may list many numbers).
const MAX_KEYS: usize = 12;

/// Share of a key's history below which no evidence is given (half or less is a split history).
const MIN_SHARE: f64 = 0.5;

/// Weight below which a hit is left out (too weak to name).
const MIN_WEIGHT: f64 = 0.1;

/// The largest weight (log-odds boost) a key of this kind can give, reached with a long,
/// fully consistent history. Keys that name a matter (Aktenzeichen, Kassenzeichen) say most
/// about where a document belongs; a person's name and address say least.
pub fn cap(kind: SenderKeyKind) -> f64 {
    match kind {
        SenderKeyKind::FileReference | SenderKeyKind::Kassenzeichen => 6.0,
        SenderKeyKind::CustomerNumber | SenderKeyKind::Iban | SenderKeyKind::Email => 5.0,
        SenderKeyKind::NameAddress => 3.5,
    }
}

/// How much an earlier document counts: one a person decided counts fully, one the machine
/// routed and delivered without objection half (it is partly the machine's own opinion).
fn counted(e: &Earlier) -> f64 {
    f64::from(e.by_person) + 0.5 * f64::from(e.by_machine)
}

/// The evidence weight for a mailbox from a key's history: `cap × consistency × amount`.
/// With `n` = the counted earlier documents that went there (a person's decision 1, a
/// delivered machine decision ½) and `t` = those of the key's whole history:
/// consistency = (n/t − ½) / ½, so 0 for a history split half and half or worse and 1 when
/// every earlier document went there; amount = 1 − 0.3ⁿ, so one person's decision gives 70 %
/// of the cap, two 91 %, three 97 %.
pub fn weight(kind: SenderKeyKind, for_mailbox: &Earlier, history: &KeyHistory) -> f64 {
    let n = counted(for_mailbox);
    let t: f64 = history.mailboxes.values().map(counted).sum();
    if n <= 0.0 || t < n {
        return 0.0;
    }
    let consistency = ((n / t - MIN_SHARE) / (1.0 - MIN_SHARE)).clamp(0.0, 1.0);
    let amount = 1.0 - 0.3_f64.powf(n.min(64.0));
    let w = cap(kind) * consistency * amount;
    (w * 100.0).round() / 100.0
}

/// The sender keys of a document's metadata, normalised; `markers` are the lines that name the
/// town (its own name and address are no sender's key).
pub fn keys(meta: &DocumentMetadata, markers: &[String]) -> Vec<SenderKey> {
    let mut out: Vec<SenderKey> = Vec::new();
    let mut push = |k: Option<SenderKey>| {
        if let Some(k) = k
            && !out
                .iter()
                .any(|o: &SenderKey| o.kind == k.kind && o.value == k.value)
        {
            out.push(k);
        }
    };
    if let Some(addr) = &meta.sender_address {
        push(email_key(addr));
    }
    for v in &meta.file_references {
        push(number_key(SenderKeyKind::FileReference, v));
    }
    for v in &meta.kassenzeichen {
        push(number_key(SenderKeyKind::Kassenzeichen, v));
    }
    for v in &meta.customer_numbers {
        push(number_key(SenderKeyKind::CustomerNumber, v));
    }
    for v in &meta.ibans {
        push(iban_key(v));
    }
    if let (Some(name), Some(addr)) = (&meta.sender_name, &meta.sender_address) {
        push(name_address_key(name, addr, markers));
    }
    out.truncate(MAX_KEYS);
    out
}

/// An e-mail address, lower case; `None` for anything that is not one.
pub fn email_key(s: &str) -> Option<SenderKey> {
    let t = s
        .trim()
        .trim_start_matches("mailto:")
        .trim_matches(['<', '>']);
    let (local, domain) = t.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !t.chars().any(|c| c.is_whitespace() || c == ',');
    ok.then(|| SenderKey {
        kind: SenderKeyKind::Email,
        value: t.to_lowercase(),
        shown: t.to_string(),
    })
}

/// An IBAN, without spaces, upper case, with a valid checksum.
pub fn iban_key(s: &str) -> Option<SenderKey> {
    let v: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    crate::extract::metadata::iban_valid(&v).then(|| SenderKey {
        kind: SenderKeyKind::Iban,
        shown: v.clone(),
        value: v,
    })
}

/// A number (customer number, Kassenzeichen, Aktenzeichen): letters and digits only, upper
/// case, so that `63-2026/0117` and `63 2026 0117` are the same key. At least four characters,
/// two of them digits: shorter values name too many matters to identify one.
pub fn number_key(kind: SenderKeyKind, s: &str) -> Option<SenderKey> {
    let v: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    (v.chars().count() >= 4 && digits >= 2).then(|| SenderKey {
        kind,
        value: v,
        shown: s.trim().to_string(),
    })
}

/// A sender's name and postal address together (`None` for an e-mail address, an address
/// without a house number or postcode, or the town's own): folded to lower case, umlauts
/// spelled out, `Straße`/`Str.` alike, punctuation and spacing ignored.
pub fn name_address_key(name: &str, address: &str, markers: &[String]) -> Option<SenderKey> {
    if address.contains('@') {
        return None;
    }
    let n = fold(name);
    let a = fold(address)
        .split(' ')
        .map(|w| match w {
            "strasse" => "str",
            w if w.ends_with("strasse") => w.trim_end_matches("asse"),
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ");
    let names_town = markers.iter().map(|m| fold(m)).any(|m| {
        !m.is_empty() && (n.contains(&m) || a.contains(&m) || format!("{n} {a}").contains(&m))
    });
    let usable = n.chars().filter(|c| c.is_alphabetic()).count() >= 3
        && a.chars().any(|c| c.is_ascii_digit())
        && !names_town;
    usable.then(|| SenderKey {
        kind: SenderKeyKind::NameAddress,
        value: format!("{n}|{a}"),
        shown: format!("{}, {}", name.trim(), address.trim()),
    })
}

/// Lower case, `ä→ae`, `ß→ss`, every run of other characters one space.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c if c.is_alphanumeric() => out.push(c),
            _ => out.push(' '),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key as the explanation names it, in German ("mit der IBAN DE89…3000").
fn described(key: &SenderKey) -> String {
    match key.kind {
        SenderKeyKind::Email => format!("von der E-Mail-Adresse {}", key.shown),
        SenderKeyKind::Iban => {
            let v = &key.value;
            let short = match (v.get(..4), v.get(v.len().saturating_sub(4)..)) {
                (Some(head), Some(tail)) if v.len() > 8 => format!("{head}…{tail}"),
                _ => v.clone(),
            };
            format!("mit der IBAN {short}")
        }
        SenderKeyKind::CustomerNumber => format!("mit der Kundennummer {}", key.shown),
        SenderKeyKind::Kassenzeichen => format!("mit dem Kassenzeichen {}", key.shown),
        SenderKeyKind::FileReference => format!("mit dem Aktenzeichen {}", key.shown),
        SenderKeyKind::NameAddress => format!("von {}", key.shown),
    }
}

/// The evidence of a sender history: per mailbox the strongest key's hit (keys of one
/// document are not independent, so they are not added up), strongest first. `names` gives
/// mailbox names for the sentence.
pub fn evidence(history: &SenderHistory, names: &BTreeMap<MailboxId, String>) -> Vec<RuleHit> {
    let mut best: BTreeMap<MailboxId, RuleHit> = BTreeMap::new();
    for (key, h) in &history.keys {
        for (mailbox, earlier) in &h.mailboxes {
            let w = weight(key.kind, earlier, h);
            if w < MIN_WEIGHT || best.get(mailbox).is_some_and(|b| b.weight >= w) {
                continue;
            }
            best.insert(mailbox.clone(), hit(key, h, mailbox, earlier, w, names));
        }
    }
    let mut hits: Vec<RuleHit> = best.into_values().collect();
    hits.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.mailbox.cmp(&b.mailbox))
    });
    hits
}

fn hit(
    key: &SenderKey,
    h: &KeyHistory,
    mailbox: &MailboxId,
    earlier: &Earlier,
    weight: f64,
    names: &BTreeMap<MailboxId, String>,
) -> RuleHit {
    let (n, total) = (earlier.count(), h.total());
    let verb = if n == 1 { "ging" } else { "gingen" };
    let target = match names.get(mailbox) {
        Some(name) => format!("{mailbox} ({name})"),
        None => mailbox.to_string(),
    };
    let by_person = match earlier.by_person {
        0 => String::new(),
        p if p == n && n == 1 => ", von einer Person zugeordnet".to_string(),
        p if p == n => ", alle von einer Person zugeordnet".to_string(),
        p => format!(", {p} davon von einer Person zugeordnet"),
    };
    RuleHit {
        rule: format!(
            "Absender bekannt: {n} von {total} früheren Schreiben {} {verb} an {target}{by_person}",
            described(key)
        ),
        mailbox: mailbox.clone(),
        weight,
        zone: ZONE.into(),
        // The words to mark on the page: for a name and address the name alone.
        matched: vec![match key.kind {
            SenderKeyKind::NameAddress => key
                .shown
                .split(", ")
                .next()
                .unwrap_or(&key.shown)
                .to_string(),
            _ => key.shown.clone(),
        }],
        position: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("valid id")
    }

    fn markers() -> Vec<String> {
        vec!["Stadt Musterstadt".into()]
    }

    #[test]
    fn the_same_sender_written_differently_gives_the_same_keys() {
        let a = DocumentMetadata {
            sender_name: Some("Jürgen Weiß".into()),
            sender_address: Some("Lindenstraße 4, 12345 Nordheim".into()),
            file_references: vec!["63-2026/0117".into()],
            kassenzeichen: vec!["5.1234.5678".into()],
            customer_numbers: vec!["KD 4711-08".into()],
            ibans: vec!["DE89370400440532013000".into()],
            ..Default::default()
        };
        let b = DocumentMetadata {
            sender_name: Some("JÜRGEN  WEISS".into()),
            sender_address: Some("Lindenstr. 4 · 12345 Nordheim".into()),
            file_references: vec!["63 2026 0117".into()],
            kassenzeichen: vec!["512345678".into()],
            customer_numbers: vec!["kd4711/08".into()],
            ibans: vec!["DE89 3704 0044 0532 0130 00".into()],
            ..Default::default()
        };
        let (ka, kb) = (keys(&a, &markers()), keys(&b, &markers()));
        let values = |k: &[SenderKey]| -> Vec<(SenderKeyKind, String)> {
            k.iter().map(|k| (k.kind, k.value.clone())).collect()
        };
        assert_eq!(values(&ka), values(&kb));
        assert_eq!(ka.len(), 5, "{ka:?}");
        let name = ka
            .iter()
            .find(|k| k.kind == SenderKeyKind::NameAddress)
            .expect("name and address");
        assert_eq!(name.value, "juergen weiss|lindenstr 4 12345 nordheim");
    }

    #[test]
    fn e_mail_addresses_are_compared_in_lower_case() {
        let m = DocumentMetadata {
            sender_name: Some("Eva Schmitz".into()),
            sender_address: Some("Eva.Schmitz@Example.ORG".into()),
            ..Default::default()
        };
        let k = keys(&m, &markers());
        assert_eq!(k.len(), 1, "an e-mail address is no postal address: {k:?}");
        assert_eq!(k[0].kind, SenderKeyKind::Email);
        assert_eq!(k[0].value, "eva.schmitz@example.org");
        assert!(email_key("Lindenweg 4, 12345 Nordheim").is_none());
        assert!(email_key("a@b").is_none());
        assert!(email_key("a b@example.org").is_none());
    }

    #[test]
    fn weak_and_foreign_values_are_no_keys() {
        assert!(number_key(SenderKeyKind::Kassenzeichen, "A-1").is_none());
        assert!(number_key(SenderKeyKind::CustomerNumber, "ABCDE").is_none());
        assert!(iban_key("DE89370400440532013001").is_none(), "bad checksum");
        assert!(
            name_address_key(
                "Stadt Musterstadt",
                "Rathausplatz 1, 12345 Musterstadt",
                &markers()
            )
            .is_none(),
            "the town itself"
        );
        assert!(
            name_address_key("Erika Mustermann", "Musterstadt", &markers()).is_none(),
            "no house number, no postcode"
        );
    }

    /// A history: per mailbox (person-decided, machine-delivered) earlier documents.
    fn history(entries: &[(&str, u32, u32)]) -> KeyHistory {
        KeyHistory {
            mailboxes: entries
                .iter()
                .map(|(m, p, a)| {
                    (
                        id(m),
                        Earlier {
                            by_person: *p,
                            by_machine: *a,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The weight for mailbox 20 of a key of `kind` with this history.
    fn w20(kind: SenderKeyKind, entries: &[(&str, u32, u32)]) -> f64 {
        let h = history(entries);
        weight(kind, &h.mailboxes[&id("20")], &h)
    }

    #[test]
    fn weight_grows_with_the_history_and_falls_with_its_split() {
        use SenderKeyKind::*;
        // One person's decision gives 70 % of the cap, more give more, never above the cap.
        assert_eq!(w20(Iban, &[("20", 1, 0)]), 3.5);
        assert!(w20(Iban, &[("20", 2, 0)]) > w20(Iban, &[("20", 1, 0)]));
        assert!(w20(Iban, &[("20", 4, 0)]) > w20(Iban, &[("20", 3, 0)]));
        assert!(w20(Iban, &[("20", 20, 0)]) <= cap(Iban));
        // A delivered machine decision counts half as much as a person's.
        assert!(w20(Iban, &[("20", 0, 1)]) < w20(Iban, &[("20", 1, 0)]));
        assert_eq!(w20(Iban, &[("20", 0, 2)]), w20(Iban, &[("20", 1, 0)]));
        // A split history gives nothing; a mostly consistent one less than a consistent one.
        assert_eq!(w20(Iban, &[("20", 1, 0), ("32", 1, 0)]), 0.0);
        assert_eq!(w20(Iban, &[("20", 2, 0), ("32", 1, 0), ("50", 1, 0)]), 0.0);
        let mostly = w20(Iban, &[("20", 3, 0), ("32", 1, 0)]);
        assert!(
            mostly > 0.0 && mostly < w20(Iban, &[("20", 3, 0)]),
            "{mostly}"
        );
        // A person's correction outweighs the machine's deliveries elsewhere.
        assert!(w20(Iban, &[("20", 2, 0), ("32", 0, 1)]) > 0.0);
        // Matter numbers weigh more than a name and address.
        assert!(w20(Kassenzeichen, &[("20", 2, 0)]) > w20(NameAddress, &[("20", 2, 0)]));
        let h = history(&[("32", 1, 0)]);
        assert_eq!(weight(Iban, &Earlier::default(), &h), 0.0);
    }

    #[test]
    fn evidence_names_the_key_the_counts_and_the_mailbox_in_german() {
        let iban = iban_key("DE89370400440532013000").expect("iban");
        let mail = email_key("k.weber@example.org").expect("mail");
        let sender = SenderHistory {
            keys: vec![
                (iban, history(&[("20", 3, 1)])),
                (mail, history(&[("20", 2, 0), ("32", 2, 0)])),
            ],
        };
        let names: BTreeMap<MailboxId, String> =
            [(id("20"), "Kämmerei".to_string())].into_iter().collect();
        let hits = evidence(&sender, &names);
        assert_eq!(
            hits.len(),
            1,
            "the split e-mail history gives nothing: {hits:?}"
        );
        let h = &hits[0];
        assert_eq!(h.mailbox, id("20"));
        assert_eq!(h.zone, ZONE);
        assert_eq!(h.weight, w20(SenderKeyKind::Iban, &[("20", 3, 1)]));
        assert_eq!(
            h.rule,
            "Absender bekannt: 4 von 4 früheren Schreiben mit der IBAN DE89…3000 gingen an \
             20 (Kämmerei), 3 davon von einer Person zugeordnet"
        );
    }

    #[test]
    fn the_strongest_key_speaks_for_a_mailbox_keys_are_not_added_up() {
        let kz = number_key(SenderKeyKind::Kassenzeichen, "5.1234.5678").expect("kz");
        let mail = email_key("k.weber@example.org").expect("mail");
        let sender = SenderHistory {
            keys: vec![
                (mail, history(&[("20", 3, 0)])),
                (kz, history(&[("20", 3, 0)])),
            ],
        };
        let hits = evidence(&sender, &BTreeMap::new());
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].weight,
            w20(SenderKeyKind::Kassenzeichen, &[("20", 3, 0)])
        );
        assert!(
            hits[0].rule.contains("Kassenzeichen 5.1234.5678"),
            "{}",
            hits[0].rule
        );
        assert!(hits[0].rule.contains("3 von 3"), "{}", hits[0].rule);
    }
}
