//! Keyword and positional rules, one file per mailbox in `rules/*.toml`.
//!
//! A rule adds its `weight` to its mailbox's evidence when it fires (once per document):
//! - `terms`: any of these words or phrases occurs in the rule's `zone` (`word*` matches prefixes);
//! - `near`: additionally one of `near.terms` stands within `near.within` words of the match;
//! - `regex`: a regular expression over the zone's original text (e.g. file numbers `63-…`);
//! - `unless`: the rule does not fire when one of these terms occurs in the zone.
//!
//! Zones: `address` (DIN 5008 address field of page 1), `subject` (the Betreff line), `page1`,
//! `any`. Every file carries `[[test]]` cases that `cargo test` checks against all rules.

use super::text::{Token, normalize, tokenize};
use crate::domain::{MailboxId, RuleHit};
use crate::extract::zones::Zones;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Errors loading rules; each names the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{message}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct RuleError {
    /// The rule file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: Option<usize>,
    /// What is wrong (with a hint where one helps).
    pub message: String,
}

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Zone {
    /// DIN 5008 address field of page 1.
    Address,
    /// The subject (Betreff) line.
    Subject,
    /// All of page 1.
    Page1,
    /// All text.
    Any,
}

impl Zone {
    const NAMES: [&'static str; 4] = ["address", "subject", "page1", "any"];

    fn parse(s: &str) -> Option<Zone> {
        match s {
            "address" => Some(Zone::Address),
            "subject" => Some(Zone::Subject),
            "page1" => Some(Zone::Page1),
            "any" => Some(Zone::Any),
            _ => None,
        }
    }

    /// The zone's name as written in rule files.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    mailbox: Spanned<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
    #[serde(default, rename = "test")]
    tests: Vec<RuleTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    zone: Spanned<String>,
    #[serde(default)]
    terms: Vec<String>,
    regex: Option<Spanned<String>>,
    near: Option<RawNear>,
    #[serde(default)]
    unless: Vec<String>,
    weight: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNear {
    terms: Vec<String>,
    within: usize,
}

/// A test case of a rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// Document text.
    pub text: String,
    /// The mailbox the rules alone must rank first (omit when the case only checks firing).
    pub expect: Option<String>,
    /// Rules (ids) that must fire.
    #[serde(default)]
    pub fires: Vec<String>,
    /// Rules (ids) that must not fire.
    #[serde(default)]
    pub not_fires: Vec<String>,
}

/// A term: a sequence of normalised words, each optionally a prefix.
#[derive(Debug, Clone)]
struct Term {
    words: Vec<(String, bool)>,
}

impl Term {
    fn parse(s: &str) -> Option<Term> {
        let words: Vec<(String, bool)> = s
            .split_whitespace()
            .map(|w| {
                let prefix = w.ends_with('*');
                let w = w.trim_end_matches('*');
                (
                    normalize(w)
                        .chars()
                        .filter(|c| c.is_alphanumeric())
                        .collect::<String>(),
                    prefix,
                )
            })
            .filter(|(w, _)| !w.is_empty())
            .collect();
        (!words.is_empty()).then_some(Term { words })
    }

    /// Start indices where the term matches.
    fn matches(&self, tokens: &[Token]) -> Vec<usize> {
        let n = self.words.len();
        if tokens.len() < n {
            return Vec::new();
        }
        (0..=tokens.len() - n)
            .filter(|&i| {
                self.words.iter().enumerate().all(|(k, (w, prefix))| {
                    let t = &tokens[i + k].norm;
                    if *prefix {
                        t.starts_with(w.as_str())
                    } else {
                        t == w
                    }
                })
            })
            .collect()
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id (unique within its file).
    pub id: String,
    /// The mailbox it speaks for.
    pub mailbox: MailboxId,
    /// Where it looks.
    pub zone: Zone,
    terms: Vec<Term>,
    regex: Option<Regex>,
    near: Option<(Vec<Term>, usize)>,
    unless: Vec<Term>,
    /// Evidence weight.
    pub weight: f64,
}

/// The text of each zone, tokenised once per document.
pub struct ZoneTexts<'a> {
    texts: BTreeMap<Zone, (&'a str, Vec<Token>)>,
}

impl<'a> ZoneTexts<'a> {
    /// Tokenises the zones of a document.
    pub fn new(z: &'a Zones) -> Self {
        let mut texts = BTreeMap::new();
        if let Some(a) = &z.address {
            texts.insert(Zone::Address, (a.as_str(), tokenize(a)));
        }
        if let Some(s) = &z.subject {
            texts.insert(Zone::Subject, (s.as_str(), tokenize(s)));
        }
        texts.insert(Zone::Page1, (z.page1.as_str(), tokenize(&z.page1)));
        if z.all != z.page1 {
            texts.insert(Zone::Any, (z.all.as_str(), tokenize(&z.all)));
        }
        Self { texts }
    }

    fn get(&self, zone: Zone) -> Option<&(&'a str, Vec<Token>)> {
        self.texts.get(&zone).or_else(|| {
            if zone == Zone::Any {
                self.texts.get(&Zone::Page1)
            } else {
                None
            }
        })
    }
}

impl Rule {
    /// Evaluates the rule; `Some(hit)` when it fires.
    pub fn eval(&self, zt: &ZoneTexts<'_>) -> Option<RuleHit> {
        let (raw, tokens) = zt.get(self.zone)?;
        if self.unless.iter().any(|t| !t.matches(tokens).is_empty()) {
            return None;
        }
        let mut matched = Vec::new();
        let mut position = None;
        if let Some(re) = &self.regex {
            let m = re.find(raw)?;
            matched.push(m.as_str().to_string());
            position = Some(format!(
                "Zeile {}",
                raw[..m.start()].matches('\n').count() + 1
            ));
        }
        if !self.terms.is_empty() {
            let mut found = None;
            'outer: for term in &self.terms {
                for start in term.matches(tokens) {
                    let end = start + term.words.len();
                    match &self.near {
                        None => {
                            found = Some((start, end, None));
                            break 'outer;
                        }
                        Some((near_terms, within)) => {
                            for nt in near_terms {
                                for ns in nt.matches(tokens) {
                                    let ne = ns + nt.words.len();
                                    let gap = if ns >= end {
                                        ns - end
                                    } else {
                                        start.saturating_sub(ne)
                                    };
                                    if gap <= *within && (ns >= end || ne <= start) {
                                        found = Some((start, end, Some((ns, ne))));
                                        break 'outer;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let (s, e, near) = found?;
            matched.push(
                tokens[s..e]
                    .iter()
                    .map(|t| t.raw.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            if let Some((ns, ne)) = near {
                matched.push(
                    tokens[ns..ne]
                        .iter()
                        .map(|t| t.raw.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            position = Some(format!("Zeile {}, Wort {}", tokens[s].line, s + 1));
        }
        if matched.is_empty() {
            return None;
        }
        Some(RuleHit {
            rule: self.id.clone(),
            mailbox: self.mailbox.clone(),
            weight: self.weight,
            zone: self.zone.name().to_string(),
            matched,
            position,
        })
    }
}

/// A rule file: its rules and test cases.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its mailbox.
    pub mailbox: MailboxId,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// Its test cases.
    pub tests: Vec<RuleTest>,
}

/// All rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The files, sorted by path.
    pub files: Vec<RuleFile>,
}

impl RuleSet {
    /// Loads every `*.toml` in `dir`. Unknown mailboxes (not in `known`) are errors when
    /// `known` is non-empty.
    pub fn load_dir(dir: &Path, known: &[MailboxId]) -> Result<RuleSet, RuleError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| RuleError {
                file: dir.to_path_buf(),
                line: None,
                message: format!("cannot read rules directory: {e}"),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| RuleError {
                file: p.clone(),
                line: None,
                message: e.to_string(),
            })?;
            files.push(parse_file(&p, &text, known)?);
        }
        Ok(RuleSet { files })
    }

    /// Every rule.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.files.iter().flat_map(|f| f.rules.iter())
    }

    /// Evaluates all rules against a document's zones.
    pub fn eval(&self, zones: &Zones) -> Vec<RuleHit> {
        let zt = ZoneTexts::new(zones);
        self.rules().filter_map(|r| r.eval(&zt)).collect()
    }

    /// Rule evidence per mailbox (sum of weights of fired rules).
    pub fn scores(hits: &[RuleHit]) -> BTreeMap<MailboxId, f64> {
        let mut m = BTreeMap::new();
        for h in hits {
            *m.entry(h.mailbox.clone()).or_insert(0.0) += h.weight;
        }
        m
    }

    /// Runs every file's test cases; returns the failures as readable lines.
    pub fn check_tests(&self, markers: &[String]) -> Vec<String> {
        let mut failures = Vec::new();
        for f in &self.files {
            for (i, t) in f.tests.iter().enumerate() {
                let zones = crate::extract::zones::from_text(&t.text, markers);
                let hits = self.eval(&zones);
                let fired: Vec<&str> = hits
                    .iter()
                    .filter(|h| h.mailbox == f.mailbox)
                    .map(|h| h.rule.as_str())
                    .collect();
                let place = format!("{} test #{}", f.path.display(), i + 1);
                for want in &t.fires {
                    if !fired.contains(&want.as_str()) {
                        failures.push(format!(
                            "{place}: rule {want} did not fire (fired: {fired:?})"
                        ));
                    }
                }
                for not in &t.not_fires {
                    if fired.contains(&not.as_str()) {
                        failures.push(format!("{place}: rule {not} fired but must not"));
                    }
                }
                if let Some(expect) = &t.expect {
                    let scores = Self::scores(&hits);
                    let best = scores
                        .iter()
                        .filter(|(_, s)| **s > 0.0)
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(m, _)| m.as_str());
                    if best != Some(expect.as_str()) {
                        failures.push(format!("{place}: expected {expect}, rules ranked {best:?} first (scores {scores:?})"));
                    }
                }
            }
        }
        failures
    }
}

fn parse_file(path: &Path, text: &str, known: &[MailboxId]) -> Result<RuleFile, RuleError> {
    let err = |span: Option<std::ops::Range<usize>>, message: String| RuleError {
        file: path.to_path_buf(),
        line: span.map(|s| crate::config::line_of(text, s.start)),
        message,
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_string()))?;
    let mailbox = MailboxId::parse(raw.mailbox.get_ref()).ok_or_else(|| {
        err(
            Some(raw.mailbox.span()),
            format!("invalid mailbox id {:?}", raw.mailbox.get_ref()),
        )
    })?;
    if !known.is_empty() && !known.contains(&mailbox) {
        return Err(err(
            Some(raw.mailbox.span()),
            format!(
                "mailbox {mailbox} is not configured; known: {}",
                known
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut rules = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for r in raw.rules {
        if !ids.insert(r.id.get_ref().clone()) {
            return Err(err(
                Some(r.id.span()),
                format!("rule id {:?} appears twice", r.id.get_ref()),
            ));
        }
        let zone = Zone::parse(r.zone.get_ref()).ok_or_else(|| {
            let hint = crate::config::suggest(r.zone.get_ref(), &Zone::NAMES)
                .unwrap_or_else(|| format!("use one of {}", Zone::NAMES.join(", ")));
            err(
                Some(r.zone.span()),
                format!("unknown zone {:?}; {hint}", r.zone.get_ref()),
            )
        })?;
        let regex = match &r.regex {
            Some(s) => Some(
                Regex::new(s.get_ref())
                    .map_err(|e| err(Some(s.span()), format!("bad regex: {e}")))?,
            ),
            None => None,
        };
        let terms = parse_terms(&r.terms);
        if terms.is_empty() && regex.is_none() {
            return Err(err(
                Some(r.id.span()),
                format!("rule {:?} has neither terms nor regex", r.id.get_ref()),
            ));
        }
        let near = match r.near {
            Some(n) => {
                if terms.is_empty() {
                    return Err(err(Some(r.id.span()), "`near` needs `terms`".into()));
                }
                Some((parse_terms(&n.terms), n.within))
            }
            None => None,
        };
        if !r.weight.is_finite() {
            return Err(err(Some(r.id.span()), "weight must be a number".into()));
        }
        rules.push(Rule {
            id: r.id.into_inner(),
            mailbox: mailbox.clone(),
            zone,
            terms,
            regex,
            near,
            unless: parse_terms(&r.unless),
            weight: r.weight,
        });
    }
    Ok(RuleFile {
        path: path.to_path_buf(),
        mailbox,
        rules,
        tests: raw.tests,
    })
}

fn parse_terms(v: &[String]) -> Vec<Term> {
    v.iter().filter_map(|s| Term::parse(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
mailbox = "63"

[[rule]]
id = "address"
zone = "address"
terms = ["Bauordnungsamt", "amt 63"]
weight = 5.0

[[rule]]
id = "antrag-grundstueck"
zone = "page1"
terms = ["bauantrag*"]
near = { terms = ["flurstück", "grundstück"], within = 5 }
unless = ["bebauungsplan"]
weight = 2.0

[[rule]]
id = "az"
zone = "any"
regex = '\b63-\d{4}-\d{3,4}\b'
weight = 3.0
"#;

    fn zones(text: &str) -> Zones {
        crate::extract::zones::from_text(text, &["Stadt Musterstadt".to_string()])
    }

    fn set() -> RuleSet {
        let f = parse_file(Path::new("63.toml"), FILE, &[]).expect("parses");
        RuleSet { files: vec![f] }
    }

    #[test]
    fn address_rule_fires_only_in_address_field() {
        let hits = set().eval(&zones(
            "Stadt Musterstadt\nAmt 63\nRathausplatz 1\n12345 Musterstadt\n\nHallo",
        ));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].rule, "address");
        assert_eq!(hits[0].matched, ["Amt 63"]);
        let hits = set().eval(&zones("Ich war beim Amt 63 und habe nichts erreicht."));
        assert!(hits.is_empty(), "{hits:?}");
    }

    #[test]
    fn near_and_unless() {
        let hits = set().eval(&zones(
            "Hiermit reiche ich den Bauantrag für das Grundstück Lindenweg 4 ein.",
        ));
        assert_eq!(
            hits.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>(),
            ["antrag-grundstueck"]
        );
        assert_eq!(hits[0].matched, ["Bauantrag", "Grundstück"]);
        let far = "Bauantrag eins zwei drei vier fünf sechs sieben Grundstück";
        assert!(set().eval(&zones(far)).is_empty());
        let neg = "Bauantrag für das Grundstück im Bebauungsplan Nord";
        assert!(set().eval(&zones(neg)).is_empty());
    }

    #[test]
    fn regex_rule_reports_line() {
        let hits = set().eval(&zones("Guten Tag\nIhr Zeichen 63-2025-0412"));
        assert_eq!(hits[0].rule, "az");
        assert_eq!(hits[0].position.as_deref(), Some("Zeile 2"));
    }

    #[test]
    fn unknown_zone_names_line_and_suggests() {
        let bad = FILE.replace("zone = \"address\"", "zone = \"adress\"");
        let e = parse_file(Path::new("rules/63.toml"), &bad, &[]).expect_err("must fail");
        assert_eq!(e.line, Some(6));
        assert!(
            e.to_string().starts_with(
                "rules/63.toml: line 6: unknown zone \"adress\"; did you mean \"address\"?"
            ),
            "{e}"
        );
    }
}
