//! The clerk inside a department (Sachbearbeitung): per mailbox an assignment table
//! (`[[clerks."63"]]` in the config) whose first matching row names the person or team a
//! document goes to, with the reason in German.
//!
//! A row names a clerk (`id`, `name`) and any of these criteria; all criteria of a row must
//! hold, any value of a list does:
//! - `surnames = "A-K"`: the sender's surname falls in the range. Both bounds are letters
//!   (one or more: `"A-Ke"`, `"Kf-Z"`); a bound of n letters is compared with the first n
//!   letters of the surname. Umlauts count as their base letter (Ä as A, Ö as O, Ü as U, ß as
//!   SS; other accents likewise: É as E). Particles (`von`, `van`, `de`, `zu`, `ten`, ...) do
//!   not count: "Hans von Müller" is filed under M, as in a telephone book (DIN 5007-2).
//!   The surname is the last word of the sender's name after titles and salutations ("Herrn
//!   Dr. Hans Meier": Meier) or the part before a comma ("Nowak, Jana": Nowak); "geb. X" is
//!   not the current name. A sender that is an organisation (GmbH, e.V., Stadt, Amt, ...) or
//!   only an e-mail address has no surname, and the row does not match.
//! - `file_references = ["63-BA", "63-BV"]`: one of the document's Aktenzeichen begins with
//!   one of these (case and spaces do not count).
//! - `districts = ["Nord", "Altstadt"]`: the sender's address names the Ortsteil (whole words:
//!   "12345 Musterstadt-Nord", "OT Nord").
//! - `streets = ["Lindenweg", "Hauptstraße"]`: the sender's address is in one of these streets
//!   ("Hauptstr." and "Hauptstrasse" are "Hauptstraße").
//! - `kassenzeichen = ["5.0100", "5.0199"]`: a Kassenzeichen of the document falls in the
//!   range. Only digits count; both bounds have the same number of digits n, and the first n
//!   digits of the Kassenzeichen are compared.
//!
//! A row without criteria is the mailbox's default and must be the last. No row matches: no
//! clerk (the document goes to the mailbox as a whole).

use crate::config::problem::Problems;
use crate::domain::{ClerkAssignment, DocumentMetadata, MailboxId};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[clerks]` as it stands in the file: mailbox id -> rows.
pub type RawClerks = BTreeMap<String, Vec<RawClerkRow>>;

/// One `[[clerks."63"]]` row as it stands in the file.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawClerkRow {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    surnames: Option<String>,
    #[serde(default)]
    file_references: Vec<String>,
    #[serde(default)]
    districts: Vec<String>,
    #[serde(default)]
    streets: Vec<String>,
    #[serde(default)]
    kassenzeichen: Option<Vec<String>>,
}

/// A range of surnames: `from` and `to` are upper-case letters after folding (see [`fold`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurnameRange {
    from: String,
    to: String,
    /// As written in the config (for the explanation).
    label: String,
}

impl SurnameRange {
    /// Parses `"A-K"`, `"A–K"` or `"Ma-Mz"`; `None` when it is no range of letters.
    pub fn parse(s: &str) -> Option<SurnameRange> {
        let (a, b) = s.split_once(['-', '–'])?;
        let (from, to) = (fold(a.trim()), fold(b.trim()));
        let letters = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_uppercase());
        if !letters(&from) || !letters(&to) {
            return None;
        }
        Some(SurnameRange {
            label: format!("{}–{}", a.trim(), b.trim()),
            from,
            to,
        })
    }

    /// The range as a half-open interval of strings: `[from, to + 1)`.
    fn interval(&self) -> (String, String) {
        (self.from.clone(), successor(&self.to))
    }

    fn is_empty(&self) -> bool {
        let (a, b) = self.interval();
        a >= b
    }

    /// Whether a folded surname key falls in the range.
    fn contains(&self, key: &str) -> bool {
        let (a, b) = self.interval();
        key >= a.as_str() && key < b.as_str()
    }

    fn overlaps(&self, other: &SurnameRange) -> bool {
        let (a1, b1) = self.interval();
        let (a2, b2) = other.interval();
        a1 < b2 && a2 < b1
    }
}

/// The string after every string that begins with `s` (`"K"` -> `"L"`, `"KE"` -> `"KF"`,
/// `"Z"` -> `"["`).
fn successor(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if let Some(last) = chars.pop() {
        chars.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
    }
    chars.into_iter().collect()
}

/// A range of Kassenzeichen: digit strings of equal length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KassenzeichenRange {
    from: String,
    to: String,
    label: String,
}

impl KassenzeichenRange {
    fn contains(&self, digits: &str) -> bool {
        let n = self.from.len();
        digits.len() >= n && (self.from.as_str()..=self.to.as_str()).contains(&&digits[..n])
    }

    fn overlaps(&self, other: &KassenzeichenRange) -> bool {
        let n = self.from.len().min(other.from.len());
        self.from[..n] <= other.to[..n] && other.from[..n] <= self.to[..n]
    }
}

/// The digits of a Kassenzeichen or a bound.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A row's list criteria: file reference prefixes, districts, streets (key and as written).
type Others<'a> = (
    &'a [(String, String)],
    &'a [(Vec<String>, String)],
    &'a [(String, String)],
);

/// One validated row of a mailbox's table.
#[derive(Debug, Clone, PartialEq)]
pub struct ClerkRow {
    /// The clerk's id (what DMS settings map to their user, owner, folder or cabinet).
    pub id: String,
    /// The clerk's name, shown to people ("Frau Schmidt", "Team Bauaufsicht Nord").
    pub name: String,
    surnames: Option<SurnameRange>,
    file_references: Vec<(String, String)>,
    districts: Vec<(Vec<String>, String)>,
    streets: Vec<(String, String)>,
    kassenzeichen: Option<KassenzeichenRange>,
}

impl ClerkRow {
    fn is_default(&self) -> bool {
        self.surnames.is_none()
            && self.file_references.is_empty()
            && self.districts.is_empty()
            && self.streets.is_empty()
            && self.kassenzeichen.is_none()
    }

    /// The row's criteria other than the two ranges (to find rows that differ only there).
    fn others(&self) -> Others<'_> {
        (&self.file_references, &self.districts, &self.streets)
    }

    /// Why the row matches the document (German parts), or `None` when it does not.
    fn matches(&self, facts: &Facts) -> Option<Vec<String>> {
        let mut why = Vec::new();
        if let Some(range) = &self.surnames {
            let (shown, key) = facts.surname.as_ref()?;
            if !range.contains(key) {
                return None;
            }
            why.push(format!("Nachnamen {}: „{shown}“", range.label));
        }
        if !self.file_references.is_empty() {
            let (prefix, reference) = self.file_references.iter().find_map(|(p, label)| {
                facts
                    .file_references
                    .iter()
                    .find(|(key, _)| key.starts_with(p.as_str()))
                    .map(|(_, shown)| (label, shown))
            })?;
            why.push(format!("Aktenzeichen „{reference}“ beginnt mit „{prefix}“"));
        }
        if !self.districts.is_empty() {
            let (_, label) = self
                .districts
                .iter()
                .find(|(words, _)| contains_words(&facts.address_words, words))?;
            why.push(format!("Ortsteil „{label}“"));
        }
        if !self.streets.is_empty() {
            let (_, label) = self
                .streets
                .iter()
                .find(|(key, _)| facts.streets.contains(key))?;
            why.push(format!("Straße „{label}“"));
        }
        if let Some(range) = &self.kassenzeichen {
            let shown = facts
                .kassenzeichen
                .iter()
                .find(|(d, _)| range.contains(d))
                .map(|(_, shown)| shown)?;
            why.push(format!("Kassenzeichen {shown} im Bereich {}", range.label));
        }
        Some(why)
    }
}

/// The assignment tables of every mailbox that has one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClerkTable {
    tables: BTreeMap<MailboxId, Vec<ClerkRow>>,
}

impl ClerkTable {
    /// Whether no mailbox has a table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The mailboxes with a table.
    pub fn mailboxes(&self) -> impl Iterator<Item = &MailboxId> {
        self.tables.keys()
    }

    /// The rows of a mailbox, in config order.
    pub fn rows(&self, mailbox: &MailboxId) -> &[ClerkRow] {
        self.tables.get(mailbox).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Drops the tables of mailboxes that are not in `known` (each reported as a problem).
    pub fn keep_known(&mut self, known: &[&MailboxId], problems: &mut Problems) {
        self.tables.retain(|m, _| {
            let ok = known.contains(&m);
            if !ok {
                let ids: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                problems.push_key(
                    &["clerks", m.as_str()],
                    format!(
                        "Sachbearbeitung: Postfach \"{m}\" ist nicht als Fachbereich konfiguriert"
                    ),
                    crate::config::problem::suggest(m.as_str(), &ids),
                );
            }
            ok
        });
    }

    /// The clerk of a document in `mailbox`: the first row that matches, with the reason;
    /// `None` when the mailbox has no table or no row matches.
    pub fn assign(
        &self,
        mailbox: &MailboxId,
        metadata: &DocumentMetadata,
    ) -> Option<ClerkAssignment> {
        let rows = self.tables.get(mailbox)?;
        let facts = Facts::of(metadata);
        rows.iter().find_map(|row| {
            let why = row.matches(&facts)?;
            let reason = if why.is_empty() {
                "Voreinstellung des Postfachs".to_string()
            } else {
                why.join(", ")
            };
            Some(ClerkAssignment {
                mailbox: mailbox.clone(),
                id: row.id.clone(),
                name: row.name.clone(),
                reason,
            })
        })
    }
}

/// What the rows look at, read once per document.
struct Facts {
    /// The surname as read and its folded key.
    surname: Option<(String, String)>,
    /// Folded file references (key, as read).
    file_references: Vec<(String, String)>,
    address_words: Vec<String>,
    streets: Vec<String>,
    /// Kassenzeichen digits and as read.
    kassenzeichen: Vec<(String, String)>,
}

impl Facts {
    fn of(m: &DocumentMetadata) -> Facts {
        let address = m.sender_address.as_deref().unwrap_or_default();
        Facts {
            surname: m
                .sender_name
                .as_deref()
                .and_then(surname)
                .map(|s| {
                    let key = fold(&s).chars().filter(char::is_ascii_uppercase).collect();
                    (s, key)
                })
                .filter(|(_, key): &(String, String)| !key.is_empty()),
            file_references: m
                .file_references
                .iter()
                .map(|r| (reference_key(r), r.clone()))
                .collect(),
            address_words: words(address),
            streets: address
                .split([',', '\n', ';'])
                .map(street_key)
                .filter(|s| !s.is_empty())
                .collect(),
            kassenzeichen: m
                .kassenzeichen
                .iter()
                .map(|k| (digits(k), k.clone()))
                .collect(),
        }
    }
}

/// Upper case, umlauts and accents as their base letters (Ä as A, ß as SS), other characters
/// kept.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let base = match c {
            'ä' | 'Ä' | 'á' | 'Á' | 'à' | 'À' | 'â' | 'Â' | 'ã' | 'Ã' | 'å' | 'Å' | 'ą' | 'Ą'
            | 'ă' | 'Ă' => "A",
            'æ' | 'Æ' => "AE",
            'ç' | 'Ç' | 'ć' | 'Ć' | 'č' | 'Č' => "C",
            'ď' | 'Ď' | 'đ' | 'Đ' => "D",
            'é' | 'É' | 'è' | 'È' | 'ê' | 'Ê' | 'ë' | 'Ë' | 'ę' | 'Ę' | 'ě' | 'Ě' => {
                "E"
            }
            'ğ' | 'Ğ' => "G",
            'í' | 'Í' | 'ì' | 'Ì' | 'î' | 'Î' | 'ï' | 'Ï' | 'ı' | 'İ' => "I",
            'ł' | 'Ł' => "L",
            'ñ' | 'Ñ' | 'ń' | 'Ń' | 'ň' | 'Ň' => "N",
            'ö' | 'Ö' | 'ó' | 'Ó' | 'ò' | 'Ò' | 'ô' | 'Ô' | 'õ' | 'Õ' | 'ø' | 'Ø' | 'ő' | 'Ő' => {
                "O"
            }
            'œ' | 'Œ' => "OE",
            'ř' | 'Ř' => "R",
            'ß' | 'ẞ' => "SS",
            'š' | 'Š' | 'ś' | 'Ś' | 'ş' | 'Ş' => "S",
            'ť' | 'Ť' | 'ţ' | 'Ţ' => "T",
            'ü' | 'Ü' | 'ú' | 'Ú' | 'ù' | 'Ù' | 'û' | 'Û' | 'ů' | 'Ů' | 'ű' | 'Ű' => {
                "U"
            }
            'ý' | 'Ý' | 'ÿ' => "Y",
            'ž' | 'Ž' | 'ź' | 'Ź' | 'ż' | 'Ż' => "Z",
            _ => {
                out.extend(c.to_uppercase());
                continue;
            }
        };
        out.push_str(base);
    }
    out
}

/// Name particles that do not count for the surname's letter.
const PARTICLES: &[&str] = &[
    "von", "vom", "van", "de", "der", "den", "del", "della", "di", "da", "du", "la", "le", "zu",
    "zum", "zur", "ten", "ter", "te", "op", "auf", "und", "dos", "das", "y", "mc", "al", "el",
];

/// Salutations and titles before a name.
const TITLES: &[&str] = &[
    "herr",
    "herrn",
    "frau",
    "familie",
    "fam",
    "eheleute",
    "ehepaar",
    "dr",
    "prof",
    "professor",
    "dipl",
    "ing",
    "mag",
    "med",
    "jur",
    "rer",
    "nat",
    "phil",
    "ra",
    "rain",
    "jun",
    "sen",
    "jr",
    "sr",
    "mdb",
    "mdl",
];

/// Words that make a sender an organisation (no surname).
const ORGANISATIONS: &[&str] = &[
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "kgaa",
    "ohg",
    "gbr",
    "ug",
    "ev",
    "eg",
    "se",
    "ltd",
    "inc",
    "llc",
    "stadt",
    "stadtwerke",
    "gemeinde",
    "kreis",
    "landkreis",
    "landratsamt",
    "amt",
    "verein",
    "verband",
    "bank",
    "sparkasse",
    "versicherung",
    "kanzlei",
    "rechtsanwälte",
    "ministerium",
    "behörde",
    "schule",
    "kirchengemeinde",
    "firma",
    "institut",
    "universität",
    "hochschule",
    "gesellschaft",
    "genossenschaft",
    "stiftung",
    "büro",
    "praxis",
    "zentrum",
    "werk",
    "verwaltung",
    "bezirksregierung",
];

/// The surname in a sender's name as written ("Herrn Dr. Hans von Müller" -> "Müller",
/// "Nowak, Jana" -> "Nowak"); `None` for organisations, e-mail addresses and names that are
/// only titles or particles.
pub fn surname(sender: &str) -> Option<String> {
    if sender.contains('@') {
        return None;
    }
    let lower = sender.to_lowercase();
    let plain = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .replace('.', "")
    };
    if lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .any(|w| ORGANISATIONS.contains(&plain(w).as_str()))
    {
        return None;
    }
    let name = sender.split(',').next().unwrap_or_default();
    let tokens: Vec<&str> = name
        .split_whitespace()
        // "Erika Müller geb. Schmidt": the birth name is not the current one.
        .take_while(|t| !matches!(t.to_lowercase().as_str(), "geb." | "geb" | "geborene"))
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-'))
        .filter(|t| !t.is_empty())
        .filter(|t| {
            let l = t.to_lowercase().replace('.', "");
            let l = l.split('-').next().unwrap_or_default();
            !TITLES.contains(&l)
        })
        .collect();
    let last = tokens.last()?;
    if PARTICLES.contains(&last.to_lowercase().as_str()) || !last.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(last.to_string())
}

/// An Aktenzeichen for prefix comparison: upper case, without spaces.
fn reference_key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// The folded words of a text (letters and digits).
fn words(s: &str) -> Vec<String> {
    fold(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `needle` occurs in `haystack` as consecutive words.
fn contains_words(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A street's key: the part before the house number, folded, letters only, "straße" as "str".
fn street_key(s: &str) -> String {
    let before_number = s
        .trim()
        .split(|c: char| c.is_ascii_digit())
        .next()
        .unwrap_or_default();
    let f: String = fold(before_number)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect();
    f.replace("STRASSE", "STR")
}

/// Validates `[clerks]`: each row's criteria, names, ranges and their overlaps, the default
/// row's place. Whether the mailboxes exist is checked across sections
/// ([`ClerkTable::keep_known`]).
pub fn validate(raw: RawClerks, problems: &mut Problems) -> ClerkTable {
    let mut tables = BTreeMap::new();
    for (mailbox, rows) in raw {
        let Some(id) = MailboxId::parse(&mailbox) else {
            problems.push_key(
                &["clerks", &mailbox],
                format!("Sachbearbeitung: Postfach-Id \"{mailbox}\" ist ungültig"),
                None,
            );
            continue;
        };
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut valid: Vec<ClerkRow> = Vec::new();
        let count = rows.len();
        for (i, raw) in rows.into_iter().enumerate() {
            let at = |what: &str| {
                format!(
                    "Sachbearbeitung Postfach {mailbox}, Zeile {}: {what}",
                    i + 1
                )
            };
            let key = ["clerks", mailbox.as_str()];
            let mut push = |what: String, hint: Option<String>| {
                problems.push_key(&key, at(&what), hint);
            };
            let clerk = raw.id.trim().to_string();
            if clerk.is_empty()
                || !clerk
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                push(
                    format!("Kennung \"{}\" ist ungültig", raw.id),
                    Some("Buchstaben, Ziffern, '-', '_' oder '.'".into()),
                );
                continue;
            }
            let name = match (raw.name.as_deref().map(str::trim), names.get(&clerk)) {
                (Some(n), Some(known)) if n != known => {
                    push(
                        format!("\"{clerk}\" heißt schon \"{known}\", hier \"{n}\""),
                        None,
                    );
                    known.clone()
                }
                (Some(n), _) if !n.is_empty() => n.to_string(),
                (_, Some(known)) => known.clone(),
                _ => {
                    push(
                        format!("\"{clerk}\" hat keinen Namen"),
                        Some("name = \"Frau Schmidt\" (beim ersten Vorkommen)".into()),
                    );
                    continue;
                }
            };
            names.insert(clerk.clone(), name.clone());
            let surnames = match raw.surnames.as_deref() {
                None => None,
                Some(s) => match SurnameRange::parse(s) {
                    Some(r) if r.is_empty() => {
                        push(
                            format!("Nachnamenbereich \"{s}\" ist leer (Anfang nach Ende)"),
                            None,
                        );
                        continue;
                    }
                    Some(r) => Some(r),
                    None => {
                        push(
                            format!("Nachnamenbereich \"{s}\" ist ungültig"),
                            Some("z. B. surnames = \"A-K\" oder \"L-Z\"".into()),
                        );
                        continue;
                    }
                },
            };
            let kassenzeichen = match raw.kassenzeichen.as_deref() {
                None => None,
                Some([a, b]) => {
                    let (from, to) = (digits(a), digits(b));
                    if from.is_empty() || from.len() != to.len() {
                        push(
                            format!(
                                "Kassenzeichenbereich [\"{a}\", \"{b}\"] ist ungültig: beide \
                                 Grenzen brauchen gleich viele Ziffern"
                            ),
                            None,
                        );
                        continue;
                    }
                    if from > to {
                        push(
                            format!(
                                "Kassenzeichenbereich [\"{a}\", \"{b}\"] ist leer (Anfang nach \
                                 Ende)"
                            ),
                            None,
                        );
                        continue;
                    }
                    Some(KassenzeichenRange {
                        from,
                        to,
                        label: format!("{a}–{b}"),
                    })
                }
                Some(_) => {
                    push(
                        "Kassenzeichenbereich braucht genau zwei Grenzen".into(),
                        Some("z. B. kassenzeichen = [\"5.0100\", \"5.0199\"]".into()),
                    );
                    continue;
                }
            };
            let mut empty = false;
            let mut keyed = |list: &[String], key: &dyn Fn(&str) -> String| {
                list.iter()
                    .map(|v| {
                        let k = key(v);
                        if k.is_empty() {
                            empty = true;
                        }
                        (k, v.trim().to_string())
                    })
                    .collect::<Vec<_>>()
            };
            let file_references = keyed(&raw.file_references, &reference_key);
            let streets = keyed(&raw.streets, &street_key);
            let districts: Vec<(Vec<String>, String)> = raw
                .districts
                .iter()
                .map(|d| (words(d), d.trim().to_string()))
                .collect();
            if empty || districts.iter().any(|(w, _)| w.is_empty()) {
                push("ein leerer Eintrag in einer Liste".into(), None);
                continue;
            }
            let row = ClerkRow {
                id: clerk,
                name,
                surnames,
                file_references,
                districts,
                streets,
                kassenzeichen,
            };
            if row.is_default() && i + 1 != count {
                push(
                    "eine Zeile ohne Merkmal (die Voreinstellung) muss die letzte sein".into(),
                    Some(
                        "Merkmale: surnames, file_references, districts, streets, kassenzeichen"
                            .into(),
                    ),
                );
                continue;
            }
            for (j, earlier) in valid.iter().enumerate() {
                if earlier.others() != row.others() {
                    continue;
                }
                let both = |a: &ClerkRow, b: &ClerkRow| {
                    (a.surnames.is_some() == b.surnames.is_some())
                        && (a.kassenzeichen.is_some() == b.kassenzeichen.is_some())
                };
                if !both(earlier, &row) {
                    continue;
                }
                let surnames_meet = match (&earlier.surnames, &row.surnames) {
                    (Some(a), Some(b)) => a.overlaps(b),
                    _ => true,
                };
                let kassen_meet = match (&earlier.kassenzeichen, &row.kassenzeichen) {
                    (Some(a), Some(b)) => a.overlaps(b),
                    _ => true,
                };
                if surnames_meet && kassen_meet {
                    let what = match (&row.surnames, &row.kassenzeichen) {
                        (Some(r), _) => {
                            format!("Nachnamenbereich \"{}\" überschneidet sich mit", r.label)
                        }
                        (None, Some(r)) => {
                            format!(
                                "Kassenzeichenbereich \"{}\" überschneidet sich mit",
                                r.label
                            )
                        }
                        (None, None) => "dieselben Merkmale wie".to_string(),
                    };
                    push(
                        format!(
                            "{what} Zeile {} (\"{}\"); die erste passende Zeile gewinnt, \
                             diese würde nie oder nur teilweise gewählt",
                            j + 1,
                            earlier.id
                        ),
                        None,
                    );
                    break;
                }
            }
            valid.push(row);
        }
        if !valid.is_empty() {
            tables.insert(id, valid);
        }
    }
    ClerkTable { tables }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn table(toml_text: &str) -> Result<ClerkTable, String> {
        let raw: toml::Table = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let raw: RawClerks = raw
            .get("clerks")
            .cloned()
            .map(|v| v.try_into().map_err(|e: toml::de::Error| e.to_string()))
            .transpose()?
            .unwrap_or_default();
        let mut problems = Problems::new(Path::new("t.toml"), toml_text);
        let t = validate(raw, &mut problems);
        problems.into_result(t).map_err(|e| e.to_string())
    }

    fn id(s: &str) -> MailboxId {
        MailboxId::parse(s).expect("id")
    }

    fn sender(name: &str) -> DocumentMetadata {
        DocumentMetadata {
            sender_name: Some(name.into()),
            ..Default::default()
        }
    }

    const HALVES: &str = r#"
[[clerks."33"]]
id = "schmidt"
name = "Frau Schmidt"
surnames = "A-K"

[[clerks."33"]]
id = "nowak"
name = "Herr Nowak"
surnames = "L-Z"
"#;

    fn clerk_of(t: &ClerkTable, mailbox: &str, m: &DocumentMetadata) -> Option<String> {
        t.assign(&id(mailbox), m).map(|c| c.id)
    }

    #[test]
    fn surname_ranges_fold_umlauts_and_skip_particles() {
        let t = table(HALVES).expect("valid");
        let of = |n: &str| clerk_of(&t, "33", &sender(n));
        assert_eq!(of("Jana Nowak").as_deref(), Some("nowak"));
        assert_eq!(of("Erika Mustermann").as_deref(), Some("nowak"));
        assert_eq!(of("Hans Becker").as_deref(), Some("schmidt"));
        // Ä as A, Ö as O, Ü as U: Ärger under A, Öztürk under O, Übel under U.
        assert_eq!(of("Anna Ärger").as_deref(), Some("schmidt"));
        assert_eq!(of("Ayşe Öztürk").as_deref(), Some("nowak"));
        assert_eq!(of("Kai Übel").as_deref(), Some("nowak"));
        // Particles do not count: von Müller under M, van Aken under A, de Vries under V.
        assert_eq!(of("Hans von Müller").as_deref(), Some("nowak"));
        assert_eq!(of("Piet van Aken").as_deref(), Some("schmidt"));
        assert_eq!(of("de Vries").as_deref(), Some("nowak"));
        // Titles, salutations, "Name, Vorname", birth names.
        assert_eq!(of("Herrn Dr. Klaus Zander").as_deref(), Some("nowak"));
        assert_eq!(of("Nowak, Jana").as_deref(), Some("nowak"));
        assert_eq!(
            of("Erika Albers geb. Zimmermann").as_deref(),
            Some("schmidt")
        );
        // Organisations and bare addresses have no surname: no clerk.
        assert_eq!(of("Stadtwerke Nordheim GmbH"), None);
        assert_eq!(of("Bau GmbH"), None);
        assert_eq!(of("a@example.org"), None);
        assert_eq!(clerk_of(&t, "33", &DocumentMetadata::default()), None);
        // Another mailbox has no table: no clerk.
        assert_eq!(clerk_of(&t, "63", &sender("Jana Nowak")), None);
        let c = t.assign(&id("33"), &sender("Jana Nowak")).expect("clerk");
        assert_eq!(c.name, "Herr Nowak");
        assert_eq!(c.reason, "Nachnamen L–Z: „Nowak“");
    }

    #[test]
    fn multi_letter_bounds_compare_the_first_letters() {
        let t = table(
            r#"
[[clerks."33"]]
id = "a"
name = "Team A"
surnames = "A-Ke"

[[clerks."33"]]
id = "b"
name = "Team B"
surnames = "Kf-Z"
"#,
        )
        .expect("valid");
        let of = |n: &str| clerk_of(&t, "33", &sender(n));
        assert_eq!(of("Eva Keller").as_deref(), Some("a"));
        assert_eq!(of("Eva Kern").as_deref(), Some("a"), "Ke* is in A–Ke");
        assert_eq!(of("Eva Klein").as_deref(), Some("b"));
        assert_eq!(of("Eva Kähler").as_deref(), Some("a"), "Kä as Ka");
        assert_eq!(of("Eva Zorn").as_deref(), Some("b"));
    }

    #[test]
    fn file_reference_prefixes_districts_streets_and_defaults() {
        let t = table(
            r#"
[[clerks."63"]]
id = "lange"
name = "Herr Lange"
file_references = ["63-BV", "63 - ba"]

[[clerks."63"]]
id = "nord"
name = "Team Bauaufsicht Nord"
districts = ["Nordviertel", "Alt-Musterstadt"]

[[clerks."63"]]
id = "ost"
name = "Frau Ost"
streets = ["Lindenweg", "Hauptstraße"]

[[clerks."63"]]
id = "pool"
name = "Sachgebiet 63.1"
"#,
        )
        .expect("valid");
        let refs = |r: &[&str]| DocumentMetadata {
            file_references: r.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let c = t
            .assign(&id("63"), &refs(&["22-HS 117", "63-BA 2025/0815"]))
            .expect("clerk");
        assert_eq!(c.id, "lange");
        assert_eq!(
            c.reason,
            "Aktenzeichen „63-BA 2025/0815“ beginnt mit „63 - ba“"
        );
        let addr = |a: &str| DocumentMetadata {
            sender_address: Some(a.into()),
            ..Default::default()
        };
        let of = |m: &DocumentMetadata| clerk_of(&t, "63", m);
        assert_eq!(
            of(&addr("Am Hang 2, 12345 Musterstadt-Nordviertel")).as_deref(),
            Some("nord")
        );
        assert_eq!(
            of(&addr("Kirchgasse 1, 12345 Alt-Musterstadt")).as_deref(),
            Some("nord")
        );
        assert_eq!(
            of(&addr("Hauptstr. 5, 12345 Musterstadt")).as_deref(),
            Some("ost")
        );
        assert_eq!(
            of(&addr("Hauptstrasse 5\n12345 Musterstadt")).as_deref(),
            Some("ost")
        );
        assert_eq!(
            of(&addr("Lindenweg 4, 12345 Musterstadt")).as_deref(),
            Some("ost")
        );
        // Lindenwegstraße is another street; Nord is not Nordviertel.
        let c = t
            .assign(
                &id("63"),
                &addr("Lindenwegstraße 4, 12345 Musterstadt-Nord"),
            )
            .expect("default");
        assert_eq!(c.id, "pool");
        assert_eq!(c.reason, "Voreinstellung des Postfachs");
    }

    #[test]
    fn kassenzeichen_ranges_compare_digits_and_rows_need_every_criterion() {
        let t = table(
            r#"
[[clerks."21"]]
id = "vollstreckung-a"
name = "Vollstreckung A–K"
kassenzeichen = ["5.0100", "5.0199"]
surnames = "A-K"

[[clerks."21"]]
id = "vollstreckung-l"
name = "Vollstreckung L–Z"
kassenzeichen = ["5.0100", "5.0199"]
surnames = "L-Z"

[[clerks."21"]]
id = "grundbesitz"
name = "Grundbesitzabgaben"
kassenzeichen = ["6.0000", "6.9999"]
"#,
        )
        .expect("valid");
        let m = |name: &str, k: &str| DocumentMetadata {
            sender_name: Some(name.into()),
            kassenzeichen: vec![k.into()],
            ..Default::default()
        };
        let of = |x: &DocumentMetadata| clerk_of(&t, "21", x);
        assert_eq!(
            of(&m("Eva Adler", "5.0123.456789.1")).as_deref(),
            Some("vollstreckung-a")
        );
        assert_eq!(
            of(&m("Eva Zorn", "5 0199 000000 9")).as_deref(),
            Some("vollstreckung-l")
        );
        assert_eq!(of(&m("Eva Zorn", "5.0200.000001.1")), None);
        assert_eq!(of(&m("Bau GmbH", "5.0123.456789.1")), None, "no surname");
        let c = t
            .assign(&id("21"), &m("Bau GmbH", "6.1234.1"))
            .expect("clerk");
        assert_eq!(c.id, "grundbesitz");
        assert_eq!(c.reason, "Kassenzeichen 6.1234.1 im Bereich 6.0000–6.9999");
        assert_eq!(of(&m("Eva Adler", "5.01")), None, "too short to compare");
    }

    #[test]
    fn invalid_and_overlapping_rows_are_refused_in_german() {
        let err = |text: &str| table(text).expect_err("invalid");
        let e = err(r#"
[[clerks."33"]]
id = "a"
name = "A"
surnames = "A-M"

[[clerks."33"]]
id = "b"
name = "B"
surnames = "L-Z"
"#);
        assert!(
            e.contains("Zeile 2") && e.contains("überschneidet sich mit Zeile 1"),
            "{e}"
        );
        let e = err("[[clerks.\"33\"]]\nid = \"a\"\nname = \"A\"\nsurnames = \"K-A\"\n");
        assert!(e.contains("Nachnamenbereich \"K-A\" ist leer"), "{e}");
        let e = err("[[clerks.\"33\"]]\nid = \"a\"\nname = \"A\"\nsurnames = \"A bis K\"\n");
        assert!(e.contains("ist ungültig"), "{e}");
        let e = err(
            "[[clerks.\"21\"]]\nid = \"a\"\nname = \"A\"\nkassenzeichen = [\"5.0199\", \"5.0100\"]\n",
        );
        assert!(e.contains("Anfang nach Ende"), "{e}");
        let e = err(
            "[[clerks.\"21\"]]\nid = \"a\"\nname = \"A\"\nkassenzeichen = [\"5.01\", \"5.0199\"]\n",
        );
        assert!(e.contains("gleich viele Ziffern"), "{e}");
        let e = err(r#"
[[clerks."21"]]
id = "a"
name = "A"
kassenzeichen = ["5.0100", "5.0199"]

[[clerks."21"]]
id = "b"
name = "B"
kassenzeichen = ["5.0150", "5.0299"]
"#);
        assert!(
            e.contains("Kassenzeichenbereich") && e.contains("überschneidet"),
            "{e}"
        );
        let e = err(r#"
[[clerks."63"]]
id = "pool"
name = "Alle"

[[clerks."63"]]
id = "b"
name = "B"
surnames = "A-K"
"#);
        assert!(e.contains("muss die letzte sein"), "{e}");
        let e = err("[[clerks.\"63\"]]\nid = \"a\"\nsurnames = \"A-K\"\n");
        assert!(e.contains("hat keinen Namen"), "{e}");
        let e = err("[[clerks.\"63\"]]\nid = \"a b\"\nname = \"A\"\n");
        assert!(e.contains("Kennung"), "{e}");
        // Same ranges in rows that differ otherwise are fine; a later name may be left out.
        table(
            r#"
[[clerks."63"]]
id = "a"
name = "A"
surnames = "A-K"
districts = ["Nord"]

[[clerks."63"]]
id = "a"
surnames = "A-K"
districts = ["Süd"]
"#,
        )
        .expect("valid");
    }
}
