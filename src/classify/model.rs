//! The trained model: a linear SVM over TF-IDF features, with a complement naive Bayes member.
//!
//! Features come in families: words, word pairs (optional), character n-grams inside words
//! (robust to OCR errors, typos and German compounds; range chosen by selection), and the words
//! of the address field and the subject line as features of their own (the address field names
//! the department in many letters). Values are sublinear TF x IDF over a vocabulary learnt from
//! the training items; each block (words, zones, characters) is L2-normalised on its own.
//!
//! The SVM is one-vs-rest with the squared hinge loss, trained by dual coordinate descent to
//! convergence (the method of LIBLINEAR), one class per thread. The complement naive Bayes member
//! scores word counts; its centred scores, scaled to the SVM's margins, are added with a weight
//! that selection chooses (0 switches it off). Probabilities are softmax(scores / T) with a
//! temperature T fitted on held-out predictions, so confidences are calibrated.
//!
//! [`ModelSettings`] holds what [`select`](super::select) chooses by cross-validation inside the
//! training data: the feature families, the regularisation strength, class weights and the
//! naive Bayes weight, or one of linfa's classifiers ([`Learner`], see
//! [`learners`](super::learners)), whose weights over the χ²-selected features are stored in the
//! same form (zero elsewhere), so such a model routes, saves and loads like ours. The file format is versioned ([`FORMAT_VERSION`]); a model written in
//! another format is refused with a message naming the fix (retrain), never silently used.

use super::learners::{Learner, LinearMap};
use super::text::norm_tokens;
use crate::domain::{FeatureWeight, MailboxId};
use crate::extract::zones::Zones;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

/// Version of the model file format. Bump on any change to features or layout.
pub const FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"PSTMODEL";

/// Model errors.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// I/O.
    #[error("model file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a model file, or damaged.
    #[error("model file {0} is not a poststelle model or is damaged")]
    Corrupt(String),
    /// Written by an incompatible version.
    #[error(
        "model file {path} has format version {found}, this poststelle reads version {expected}; \
         retrain with `poststelle train` (old versions are kept, nothing was deleted)"
    )]
    IncompatibleFormat {
        /// File.
        path: String,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// Training data problem.
    #[error("training: {0}")]
    Training(String),
}

/// Metadata stored with a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// File format version.
    pub format: u32,
    /// Model version id.
    pub version: String,
    /// When trained.
    pub created_at: String,
    /// Class labels, index = weight column.
    pub classes: Vec<MailboxId>,
    /// Softmax temperature from calibration.
    pub temperature: f64,
    /// Per-class sigmoid calibration of the scores (Platt scaling), `(a, b)` per class: the
    /// class's logit is `ln σ(a·score + b)`. Empty: the raw scores are the logits.
    #[serde(default)]
    pub platt: Vec<(f32, f32)>,
    /// Review threshold chosen from evaluation (None = use the config's).
    pub threshold: Option<f64>,
    /// Review thresholds of single mailboxes, chosen where their held-out predictions suffice
    /// to measure the precision target; the others use [`ModelMeta::threshold`].
    #[serde(default)]
    pub thresholds: BTreeMap<MailboxId, f64>,
    /// The precision target the thresholds were chosen for.
    #[serde(default)]
    pub precision_target: Option<f64>,
    /// Number of training items.
    pub items: usize,
    /// The settings it was trained with.
    #[serde(default)]
    pub settings: ModelSettings,
    /// Evaluation summary at training time.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// What the model is made of: the choices [`select`](super::select) makes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ModelSettings {
    /// Word pairs as features.
    pub word_pairs: bool,
    /// Character n-grams inside words: smallest and largest n (None = no character features).
    pub chars: Option<(u8, u8)>,
    /// The SVM's cost parameter C: larger fits the training items more closely.
    pub c: f32,
    /// Class weights inversely proportional to the class sizes (small mailboxes count more).
    pub balanced: bool,
    /// Weight of the complement naive Bayes member (0 = SVM alone).
    pub nb_weight: f32,
    /// Who learns the weights: our SVM + naive Bayes, or one of linfa's classifiers on
    /// χ²-selected features ([`Learner`]; then `c` is its cost and `balanced`, `nb_weight`
    /// are unused). Files written before this field existed were made by our own.
    #[serde(default)]
    pub learner: Learner,
    /// Weight of the zone features (the words of the address field and the Betreff, which
    /// appear among the letter's words as well) relative to the words and the characters:
    /// their normalised block is scaled by it. Files written before this field existed used 1.
    #[serde(default = "unit_zone_weight")]
    pub zone_weight: f32,
}

/// The zone weight of model files written before it could be chosen.
fn unit_zone_weight() -> f32 {
    1.0
}

/// The default zone weight: the address field and the Betreff count half as much as the
/// letter's words (the corpus's cross-validation prefers it to 1 and to 0.25; BENCHMARKS.md).
pub const DEFAULT_ZONE_WEIGHT: f32 = 0.5;

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            word_pairs: false,
            chars: Some((2, 5)),
            c: 1.0,
            balanced: false,
            nb_weight: 0.5,
            learner: Learner::Own,
            zone_weight: DEFAULT_ZONE_WEIGHT,
        }
    }
}

impl ModelSettings {
    /// A short readable form, e.g. `Wörter + Zeichen 2-5, C=1, NB 0.5`.
    pub fn describe(&self) -> String {
        let mut f = vec!["Wörter".to_string()];
        if self.word_pairs {
            f.push("Wortpaare".into());
        }
        if let Some((lo, hi)) = self.chars {
            f.push(format!("Zeichen {lo}-{hi}"));
        }
        if self.zone_weight != 1.0 {
            f.push(format!("Adressfeld/Betreff ×{}", self.zone_weight));
        }
        if self.learner != Learner::Own {
            return format!(
                "{} auf {} χ²-gewählten Merkmalen aus {}, C={}",
                self.learner.label_de(),
                super::learners::CHI2_FEATURES,
                f.join(" + "),
                self.c
            );
        }
        format!(
            "{}, C={}{}, NB {}",
            f.join(" + "),
            self.c,
            if self.balanced { ", balanciert" } else { "" },
            self.nb_weight
        )
    }
}

/// 16 weights on one cache line: a feature's row for up to 16 classes is one memory fetch.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Block([f32; 16]);

/// Rows of `k` weights per feature, copied into cache-line-aligned blocks (the prediction path).
fn pack(weights: &[f32], k: usize) -> Vec<Block> {
    let per_row = pack_width(k);
    let rows = weights.len() / k.max(1);
    let mut packed = vec![Block::default(); rows * per_row];
    for (b, row) in weights.chunks_exact(k.max(1)).enumerate() {
        for (c, w) in row.iter().enumerate() {
            packed[b * per_row + c / 16].0[c % 16] = *w;
        }
    }
    packed
}

/// A trained model.
#[derive(Clone)]
pub struct Model {
    /// Metadata.
    pub meta: ModelMeta,
    vocab: Vocabulary,
    packed: Vec<Block>,
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// Complement naive Bayes weights of the word features (rows 0..words of the vocabulary).
    nb: Vec<f32>,
    /// Scale of the centred naive Bayes scores to the SVM's margins, times its weight.
    nb_scale: f32,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("meta", &self.meta)
            .field("features", &self.vocab.keys.len())
            .finish_non_exhaustive()
    }
}

/// A training item.
#[derive(Debug, Clone)]
pub struct Example {
    /// Document zones.
    pub zones: Zones,
    /// Class index.
    pub label: usize,
}

/// Training parameters.
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// The model's make-up.
    pub settings: ModelSettings,
    /// Largest number of passes of the SVM's coordinate descent.
    pub max_passes: usize,
    /// Stopping tolerance of the coordinate descent (largest projected-gradient spread).
    pub tolerance: f32,
    /// Shuffle seed.
    pub seed: u64,
    /// Time for choosing the settings automatically ([`select`](super::select)) where a whole
    /// training run is made (`train::fit`, `train::cross_validate`); None = use `settings` as
    /// given. [`Model::train`] itself always uses `settings`.
    pub selection_budget: Option<std::time::Duration>,
    /// Precision the review thresholds are chosen for (`train::fit`).
    pub precision_target: f64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            settings: ModelSettings::default(),
            max_passes: 1000,
            tolerance: 0.1,
            seed: 0x5eed,
            selection_budget: None,
            precision_target: crate::train::DEFAULT_PRECISION_TARGET,
        }
    }
}

/// A document's features: TF-IDF values by vocabulary index, and the raw counts of its words
/// (for the naive Bayes member).
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// (vocabulary index, value), each index once; each block L2-normalised.
    pub values: Vec<(u32, f32)>,
    /// (word index, count) of the words in the vocabulary.
    pub words: Vec<(u32, f32)>,
}

const FAM_WORD: u8 = 0;
const FAM_PAIR: u8 = 1;
const FAM_ZONE: u8 = 2;
/// Character n-grams: family `FAM_CHAR + n`.
const FAM_CHAR: u8 = 10;

/// The normalisation block of a family: words and pairs, zones, characters.
fn block(fam: u8) -> usize {
    match fam {
        FAM_WORD | FAM_PAIR => 0,
        FAM_ZONE => 1,
        _ => 2,
    }
}

fn included(fam: u8, s: &ModelSettings) -> bool {
    match fam {
        FAM_WORD | FAM_ZONE => true,
        FAM_PAIR => s.word_pairs,
        f => s
            .chars
            .is_some_and(|(lo, hi)| f >= FAM_CHAR + lo && f <= FAM_CHAR + hi),
    }
}

#[inline]
fn fnv64(fam: u8, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ u64::from(fam);
    h = h.wrapping_mul(0x100000001b3);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x20;
            h = h.wrapping_mul(0x100000001b3);
        }
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h ^ (h >> 31)
}

/// Calls `f(key, family, readable name)` for every feature occurrence of a document that
/// `s` includes. `named` = false skips building names (the fast path).
fn for_each_feature(
    z: &Zones,
    s: &ModelSettings,
    named: bool,
    mut f: impl FnMut(u64, u8, Option<String>),
) {
    let tokens = norm_tokens(&z.all);
    let name = |s: &dyn Fn() -> String| if named { Some(s()) } else { None };
    let mut padded = Vec::with_capacity(64);
    let mut prev: Option<&str> = None;
    for t in tokens.iter() {
        let tb = t.as_bytes();
        if tb.len() >= 2 {
            f(fnv64(FAM_WORD, &[tb]), FAM_WORD, name(&|| t.to_string()));
        }
        if s.word_pairs
            && let Some(p) = prev
        {
            f(
                fnv64(FAM_PAIR, &[p.as_bytes(), tb]),
                FAM_PAIR,
                name(&|| format!("{p} {t}")),
            );
        }
        prev = Some(t);
        if let Some((lo, hi)) = s.chars
            && tb.len() <= 40
        {
            padded.clear();
            padded.push(b' ');
            padded.extend_from_slice(tb);
            padded.push(b' ');
            for n in lo as usize..=hi as usize {
                let fam = FAM_CHAR + n as u8;
                if padded.len() <= n {
                    // A word shorter than n is one feature of its own (as a whole).
                    f(
                        fnv64(fam, &[&padded]),
                        fam,
                        name(&|| format!("„{}“", String::from_utf8_lossy(&padded).trim())),
                    );
                    continue;
                }
                for g in padded.windows(n) {
                    f(
                        fnv64(fam, &[g]),
                        fam,
                        name(&|| format!("„{}“", String::from_utf8_lossy(g))),
                    );
                }
            }
        }
    }
    for (zone, label) in [(&z.address, "Adressfeld"), (&z.subject, "Betreff")] {
        if let Some(text) = zone {
            for t in norm_tokens(text).iter() {
                f(
                    fnv64(FAM_ZONE, &[label.as_bytes(), t.as_bytes()]),
                    FAM_ZONE,
                    name(&|| format!("{label}: {t}")),
                );
            }
        }
    }
}

/// A hasher for feature keys, which are hashes already: one multiplication spreads them (the
/// default SipHash made prediction several times slower).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by feature keys.
type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// A document's raw feature counts: (key, family, count), each key once.
#[derive(Debug, Clone, Default)]
pub struct RawCounts(Vec<(u64, u8, f32)>);

/// Counts the features of a document that `s` includes.
pub fn raw_counts(z: &Zones, s: &ModelSettings) -> RawCounts {
    let mut slot: KeyMap<usize> = KeyMap::with_capacity_and_hasher(1024, Default::default());
    let mut out: Vec<(u64, u8, f32)> = Vec::with_capacity(1024);
    for_each_feature(z, s, false, |key, fam, _| match slot.get(&key) {
        Some(&i) => out[i].2 += 1.0,
        None => {
            slot.insert(key, out.len());
            out.push((key, fam, 1.0));
        }
    });
    RawCounts(out)
}

/// The vocabulary: feature keys (words first), their families and IDF values.
#[derive(Debug, Clone, Default)]
struct Vocabulary {
    keys: Vec<u64>,
    fams: Vec<u8>,
    idf: Vec<f32>,
    /// Number of word features (indices 0..words).
    words: usize,
    index: KeyMap<u32>,
    /// Scale of the zone block ([`ModelSettings::zone_weight`]).
    zone_weight: f32,
}

impl Vocabulary {
    /// Learns the vocabulary of `docs` for settings `s`: every word, zone word and pair; the
    /// character n-grams seen in at least two documents (once-seen ones only memorise an item).
    fn fit(docs: &[&RawCounts], s: &ModelSettings) -> Self {
        let mut df: KeyMap<(u8, u32)> = KeyMap::default();
        for d in docs {
            for &(key, fam, _) in &d.0 {
                if included(fam, s) {
                    df.entry(key).or_insert((fam, 0)).1 += 1;
                }
            }
        }
        let mut entries: Vec<(u64, u8, u32)> = df
            .into_iter()
            .filter(|(_, (fam, n))| *fam < FAM_CHAR || *n >= 2 || docs.len() < 50)
            .map(|(k, (fam, n))| (k, fam, n))
            .collect();
        // Words first (the naive Bayes rows), then by key: deterministic.
        entries.sort_by_key(|&(k, fam, _)| (fam != FAM_WORD, fam, k));
        let n = docs.len() as f32;
        let mut v = Vocabulary {
            words: entries.iter().filter(|e| e.1 == FAM_WORD).count(),
            zone_weight: s.zone_weight,
            ..Default::default()
        };
        for (i, (k, fam, d)) in entries.into_iter().enumerate() {
            v.keys.push(k);
            v.fams.push(fam);
            v.idf.push(((1.0 + n) / (1.0 + d as f32)).ln() + 1.0);
            v.index.insert(k, i as u32);
        }
        v
    }

    fn rebuild_index(&mut self) {
        self.index = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as u32))
            .collect();
        self.words = self.fams.iter().take_while(|f| **f == FAM_WORD).count();
    }

    fn transform(&self, d: &RawCounts) -> Features {
        let counts =
            d.0.iter()
                .filter_map(|(key, _, count)| self.index.get(key).map(|&i| (i, *count)))
                .collect();
        self.weigh(counts)
    }

    /// TF-IDF values, each block L2-normalised, from (index, count) pairs (each index once).
    fn weigh(&self, counts: Vec<(u32, f32)>) -> Features {
        let mut words = Vec::new();
        let mut norms = [0f32; 3];
        let mut values = counts;
        for (i, c) in &mut values {
            if (*i as usize) < self.words {
                words.push((*i, *c));
            }
            let v = (1.0 + c.ln()) * self.idf[*i as usize];
            norms[block(self.fams[*i as usize])] += v * v;
            *c = v;
        }
        for n in &mut norms {
            *n = if *n > 0.0 { 1.0 / n.sqrt() } else { 0.0 };
        }
        norms[block(FAM_ZONE)] *= self.zone_weight;
        for (i, v) in &mut values {
            *v *= norms[block(self.fams[*i as usize])];
        }
        Features { values, words }
    }
}

/// One-vs-rest L2-regularised squared-hinge SVM by dual coordinate descent (Hsieh et al.
/// 2008, as in LIBLINEAR), with a bias feature of value 1. Returns the weights of class `c`
/// (dims) and its bias, and the passes it took.
fn svm_one(
    xs: &[Features],
    labels: &[usize],
    c: usize,
    dims: usize,
    cost: &[f32],
    p: &TrainParams,
) -> (Vec<f32>, f32, usize) {
    let n = xs.len();
    let mut w = vec![0f32; dims];
    let mut b = 0f32;
    let mut alpha = vec![0f32; n];
    let y: Vec<f32> = labels
        .iter()
        .map(|&l| if l == c { 1.0 } else { -1.0 })
        .collect();
    // Cost per item: positives carry their class's cost, negatives the plain one.
    let diag: Vec<f32> = (0..n)
        .map(|i| {
            let ci = if labels[i] == c {
                cost[c]
            } else {
                cost[cost.len() - 1]
            };
            0.5 / ci
        })
        .collect();
    let qd: Vec<f32> = xs
        .iter()
        .zip(&diag)
        .map(|(x, d)| x.values.iter().map(|(_, v)| v * v).sum::<f32>() + 1.0 + d)
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = (p.seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    let mut passes = 0;
    while passes < p.max_passes {
        passes += 1;
        for i in (1..n).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let (mut max_pg, mut min_pg) = (f32::NEG_INFINITY, f32::INFINITY);
        for &i in &order {
            let x = &xs[i].values;
            let dot: f32 = x.iter().map(|(j, v)| w[*j as usize] * v).sum::<f32>() + b;
            let g = y[i] * dot - 1.0 + diag[i] * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            max_pg = max_pg.max(pg);
            min_pg = min_pg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = (alpha[i] - old) * y[i];
                if d != 0.0 {
                    for (j, v) in x {
                        w[*j as usize] += d * v;
                    }
                    b += d;
                }
            }
        }
        if max_pg - min_pg <= p.tolerance {
            break;
        }
    }
    (w, b, passes)
}

/// Complement naive Bayes weights (Rennie et al. 2003) of the word features, row-major
/// (words x k): the negated log-probability of a word in the other classes' text.
fn complement_nb(xs: &[Features], labels: &[usize], k: usize, words: usize) -> Vec<f32> {
    const ALPHA: f64 = 0.3;
    let mut fc = vec![0f64; words * k];
    for (x, &l) in xs.iter().zip(labels) {
        for (j, cnt) in &x.words {
            fc[*j as usize * k + l] += f64::from(*cnt);
        }
    }
    let total: Vec<f64> = fc.chunks_exact(k.max(1)).map(|r| r.iter().sum()).collect();
    let mut comp_sum = vec![0f64; k];
    for (j, row) in fc.chunks_exact(k.max(1)).enumerate() {
        for c in 0..k {
            comp_sum[c] += total[j] - row[c];
        }
    }
    let mut out = vec![0f32; words * k];
    for (j, row) in fc.chunks_exact(k.max(1)).enumerate() {
        for c in 0..k {
            let cc = total[j] - row[c];
            let lp = ((cc + ALPHA) / (comp_sum[c] + ALPHA * words as f64)).ln();
            out[j * k + c] = -lp as f32;
        }
    }
    out
}

/// Centred naive Bayes scores of one document (mean over classes subtracted).
fn nb_scores(nb: &[f32], words: &[(u32, f32)], k: usize) -> Vec<f32> {
    let mut s = vec![0f32; k];
    for (j, cnt) in words {
        let row = &nb[*j as usize * k..*j as usize * k + k];
        for (o, w) in s.iter_mut().zip(row) {
            *o += w * cnt;
        }
    }
    let mean = s.iter().sum::<f32>() / k.max(1) as f32;
    s.iter_mut().for_each(|v| *v -= mean);
    s
}

/// Standard deviation of centred scores over documents and classes.
fn spread(scores: impl Iterator<Item = Vec<f32>>) -> f32 {
    let (mut sum, mut n) = (0f64, 0usize);
    for s in scores {
        let mean = s.iter().sum::<f32>() / s.len().max(1) as f32;
        for v in s {
            sum += f64::from((v - mean) * (v - mean));
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64).sqrt() as f32
    }
}

/// Training material prepared once and reused for several settings (selection).
pub struct Prepared<'a> {
    examples: &'a [Example],
    counts: Vec<RawCounts>,
}

impl<'a> Prepared<'a> {
    /// Counts every feature `widest` includes for each example (do this once per corpus).
    pub fn new(examples: &'a [Example], widest: &ModelSettings) -> Self {
        Self {
            examples,
            counts: examples
                .iter()
                .map(|e| raw_counts(&e.zones, widest))
                .collect(),
        }
    }

    /// The items.
    pub fn examples(&self) -> &'a [Example] {
        self.examples
    }
}

/// A vocabulary and the transformed items of a subset, for one feature setting.
pub struct Vectorized {
    vocab: Vocabulary,
    xs: Vec<Features>,
    labels: Vec<usize>,
}

impl Vectorized {
    /// Learns the vocabulary on the items `subset` of `prep` and transforms them.
    pub fn new(prep: &Prepared<'_>, subset: &[usize], s: &ModelSettings) -> Self {
        let docs: Vec<&RawCounts> = subset.iter().map(|&i| &prep.counts[i]).collect();
        let vocab = Vocabulary::fit(&docs, s);
        let xs = docs.iter().map(|d| vocab.transform(d)).collect();
        let labels = subset.iter().map(|&i| prep.examples[i].label).collect();
        Self { vocab, xs, labels }
    }

    /// Transforms item `i` of `prep` with this vocabulary.
    pub fn transform(&self, prep: &Prepared<'_>, i: usize) -> Features {
        self.vocab.transform(&prep.counts[i])
    }

    /// The transformed items of the subset, in its order.
    pub fn items(&self) -> &[Features] {
        &self.xs
    }

    /// Their class labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Size of the vocabulary.
    pub fn dims(&self) -> usize {
        self.vocab.keys.len()
    }
}

/// The two members trained on a vectorized subset, before they become a [`Model`].
pub struct Fitted {
    weights: Vec<f32>,
    bias: Vec<f32>,
    nb: Vec<f32>,
    nb_unit: f32,
    k: usize,
    /// Largest number of coordinate-descent passes any class took.
    pub passes: usize,
}

impl Fitted {
    /// Trains the SVM (one class per thread) and the naive Bayes member.
    pub fn train(v: &Vectorized, k: usize, s: &ModelSettings, p: &TrainParams) -> Self {
        let dims = v.vocab.keys.len();
        let n = v.labels.len().max(1) as f32;
        let mut cost: Vec<f32> = (0..k)
            .map(|c| {
                if s.balanced {
                    let nc = v.labels.iter().filter(|l| **l == c).count().max(1) as f32;
                    s.c * n / (k as f32 * nc)
                } else {
                    s.c
                }
            })
            .collect();
        cost.push(s.c);
        let threads = std::thread::available_parallelism()
            .map(|t| t.get())
            .unwrap_or(1)
            .clamp(1, k.max(1));
        let mut per_class: Vec<Option<(Vec<f32>, f32, usize)>> = vec![None; k];
        std::thread::scope(|scope| {
            let chunks: Vec<Vec<usize>> = (0..threads)
                .map(|t| (0..k).filter(|c| c % threads == t).collect())
                .collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|classes| {
                    let cost = &cost;
                    scope.spawn(move || {
                        classes
                            .into_iter()
                            .map(|c| (c, svm_one(&v.xs, &v.labels, c, dims, cost, p)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                if let Ok(done) = h.join() {
                    for (c, r) in done {
                        per_class[c] = Some(r);
                    }
                }
            }
        });
        let mut weights = vec![0f32; dims * k];
        let mut bias = vec![0f32; k];
        let mut passes = 0;
        for (c, r) in per_class.into_iter().enumerate() {
            let (w, b, ps) = r.unwrap_or_else(|| (vec![0f32; dims], 0.0, 0));
            for (j, x) in w.into_iter().enumerate() {
                weights[j * k + c] = x;
            }
            bias[c] = b;
            passes = passes.max(ps);
        }
        let nb = complement_nb(&v.xs, &v.labels, k, v.vocab.words);
        let mut fitted = Fitted {
            weights,
            bias,
            nb,
            nb_unit: 0.0,
            k,
            passes,
        };
        let svm_spread = spread(v.xs.iter().map(|x| fitted.svm_scores(x)));
        let nb_spread = spread(v.xs.iter().map(|x| nb_scores(&fitted.nb, &x.words, k)));
        fitted.nb_unit = if nb_spread > 0.0 {
            svm_spread / nb_spread
        } else {
            0.0
        };
        fitted
    }

    /// A linear classifier learnt elsewhere (one of linfa's, [`LinearMap`]) as the fitted
    /// weights over the vocabulary of `v`, without a naive Bayes member.
    pub fn linear(v: &Vectorized, lin: &LinearMap) -> Self {
        let k = lin.bias.len();
        Fitted {
            weights: lin.full_weights(v.dims()),
            bias: lin.bias.clone(),
            nb: vec![0f32; v.vocab.words * k],
            nb_unit: 0.0,
            k,
            passes: 0,
        }
    }

    /// The SVM's margins of a document.
    pub fn svm_scores(&self, x: &Features) -> Vec<f32> {
        let k = self.k;
        let mut s = self.bias.clone();
        for (j, v) in &x.values {
            let row = &self.weights[*j as usize * k..*j as usize * k + k];
            for (o, w) in s.iter_mut().zip(row) {
                *o += w * v;
            }
        }
        s
    }

    /// The naive Bayes member's centred scores, on the SVM's scale.
    pub fn nb_scores(&self, x: &Features) -> Vec<f32> {
        let mut s = nb_scores(&self.nb, &x.words, self.k);
        s.iter_mut().for_each(|v| *v *= self.nb_unit);
        s
    }
}

impl Model {
    /// Trains on examples with `classes` labels and the settings in `params`.
    pub fn train(
        examples: &[Example],
        classes: Vec<MailboxId>,
        params: &TrainParams,
    ) -> Result<Model, ModelError> {
        if examples.is_empty() {
            return Err(ModelError::Training("no training items".into()));
        }
        let k = classes.len();
        if k < 2 {
            return Err(ModelError::Training("at least two mailboxes needed".into()));
        }
        let s = params.settings;
        let prep = Prepared::new(examples, &s);
        let all: Vec<usize> = (0..examples.len()).collect();
        let v = Vectorized::new(&prep, &all, &s);
        let fitted = if s.learner == Learner::Own {
            Fitted::train(&v, k, &s, params)
        } else {
            let lin =
                super::learners::fit_linear(v.items(), v.labels(), k, v.dims(), s.learner, s.c)
                    .map_err(|e| ModelError::Training(e.to_string()))?;
            Fitted::linear(&v, &lin)
        };
        Ok(Model::assemble(v, fitted, classes, s, examples.len()))
    }

    /// A model from a vectorized training set and its fitted members.
    pub fn assemble(
        v: Vectorized,
        fitted: Fitted,
        classes: Vec<MailboxId>,
        settings: ModelSettings,
        items: usize,
    ) -> Model {
        let k = classes.len();
        Model {
            meta: ModelMeta {
                format: FORMAT_VERSION,
                version: String::new(),
                created_at: crate::store::now_str(),
                classes,
                temperature: 1.0,
                platt: Vec::new(),
                threshold: None,
                thresholds: BTreeMap::new(),
                precision_target: None,
                items,
                settings,
                metrics: serde_json::Value::Null,
            },
            vocab: v.vocab,
            packed: pack(&fitted.weights, k),
            weights: fitted.weights,
            bias: fitted.bias,
            nb: fitted.nb,
            nb_scale: fitted.nb_unit * settings.nb_weight,
        }
    }

    /// Number of features in the vocabulary.
    pub fn dimensions(&self) -> usize {
        self.vocab.keys.len()
    }

    /// Feature vector of a document.
    pub fn features(&self, z: &Zones) -> Features {
        self.vocab.transform(&raw_counts(z, &self.meta.settings))
    }

    /// Logits: the scores, through the per-class sigmoids when the model has them.
    pub fn logits(&self, x: &Features) -> Vec<f32> {
        let mut s = self.scores(x);
        apply_platt(&self.meta.platt, &mut s);
        s
    }

    /// Uncalibrated scores (SVM margins plus the weighted naive Bayes scores).
    pub fn scores(&self, x: &Features) -> Vec<f32> {
        let k = self.bias.len();
        let r = pack_width(k);
        let mut acc = vec![0f32; r * 16];
        for (b, v) in &x.values {
            let row = &self.packed[*b as usize * r..*b as usize * r + r];
            for (block, out) in row.iter().zip(acc.chunks_exact_mut(16)) {
                for (o, w) in out.iter_mut().zip(block.0.iter()) {
                    *o += w * v;
                }
            }
        }
        acc.truncate(k);
        for (a, b) in acc.iter_mut().zip(&self.bias) {
            *a += b;
        }
        if self.nb_scale != 0.0 {
            for (a, n) in acc.iter_mut().zip(nb_scores(&self.nb, &x.words, k)) {
                *a += self.nb_scale * n;
            }
        }
        acc
    }

    /// Calibrated class probabilities, index-aligned with `meta.classes`.
    pub fn predict(&self, z: &Zones) -> Vec<f64> {
        let mut l = self.logits(&self.features(z));
        softmax_in_place(&mut l, self.meta.temperature as f32);
        l.into_iter().map(f64::from).collect()
    }

    /// The features that pushed class `class` most (positive contributions), readable.
    pub fn explain(&self, z: &Zones, class: usize, top: usize) -> Vec<FeatureWeight> {
        let k = self.meta.classes.len();
        if class >= k {
            return Vec::new();
        }
        let x = self.features(z);
        let mut names: HashMap<u32, String> = HashMap::new();
        for_each_feature(z, &self.meta.settings, true, |key, _, n| {
            if let (Some(n), Some(&i)) = (n, self.vocab.index.get(&key)) {
                names.entry(i).or_insert(n);
            }
        });
        let centred = |row: &[f32]| row[class] - row.iter().sum::<f32>() / k as f32;
        let mut contrib: HashMap<u32, f64> = HashMap::new();
        for (b, v) in &x.values {
            let row = &self.weights[*b as usize * k..*b as usize * k + k];
            *contrib.entry(*b).or_default() += f64::from(centred(row) * v);
        }
        if self.nb_scale != 0.0 {
            for (j, cnt) in &x.words {
                let row = &self.nb[*j as usize * k..*j as usize * k + k];
                *contrib.entry(*j).or_default() += f64::from(self.nb_scale * centred(row) * cnt);
            }
        }
        let mut contrib: Vec<(f64, u32)> = contrib
            .into_iter()
            .map(|(b, c)| (c, b))
            .filter(|(c, _)| *c > 0.0)
            .collect();
        contrib.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        contrib
            .into_iter()
            .take(top)
            .map(|(c, b)| FeatureWeight {
                feature: names.get(&b).cloned().unwrap_or_else(|| format!("#{b}")),
                weight: (c * 1000.0).round() / 1000.0,
            })
            .collect()
    }

    /// Writes the model file (atomically: temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let io = |source| ModelError::Io {
            path: path.display().to_string(),
            source,
        };
        let header =
            serde_json::to_vec(&self.meta).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        {
            let f = std::fs::File::create(&tmp).map_err(io)?;
            let mut out = std::io::BufWriter::new(f);
            out.write_all(MAGIC).map_err(io)?;
            out.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
            out.write_all(&(header.len() as u64).to_le_bytes())
                .map_err(io)?;
            out.write_all(&header).map_err(io)?;
            let mut put = |bytes: &[u8], n: usize| -> Result<(), ModelError> {
                out.write_all(&(n as u64).to_le_bytes()).map_err(io)?;
                out.write_all(bytes).map_err(io)
            };
            let keys: Vec<u8> = self
                .vocab
                .keys
                .iter()
                .flat_map(|k| k.to_le_bytes())
                .collect();
            put(&keys, self.vocab.keys.len())?;
            put(&self.vocab.fams, self.vocab.fams.len())?;
            for arr in [
                &self.vocab.idf,
                &self.weights,
                &self.bias,
                &self.nb,
                &vec![self.nb_scale],
            ] {
                let bytes: Vec<u8> = arr.iter().flat_map(|v| v.to_le_bytes()).collect();
                put(&bytes, arr.len())?;
            }
            let f = out.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a model file; refuses other format versions with a clear message.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let p = path.display().to_string();
        let io = |source| ModelError::Io {
            path: p.clone(),
            source,
        };
        let corrupt = || ModelError::Corrupt(p.clone());
        let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic).map_err(|_| corrupt())?;
        if &magic != MAGIC {
            return Err(corrupt());
        }
        let mut b4 = [0u8; 4];
        f.read_exact(&mut b4).map_err(|_| corrupt())?;
        let format = u32::from_le_bytes(b4);
        if format != FORMAT_VERSION {
            return Err(ModelError::IncompatibleFormat {
                path: p,
                found: format,
                expected: FORMAT_VERSION,
            });
        }
        let len = std::fs::metadata(path).map_err(io)?.len();
        // Reads a length-prefixed array of `width`-byte elements, never more than the file holds.
        let read = |f: &mut dyn Read, width: u64| -> Result<Vec<u8>, ModelError> {
            let mut b8 = [0u8; 8];
            f.read_exact(&mut b8).map_err(|_| corrupt())?;
            let n = u64::from_le_bytes(b8);
            let bytes = n
                .checked_mul(width)
                .filter(|b| *b <= len)
                .ok_or_else(corrupt)?;
            let mut out = vec![0u8; bytes as usize];
            f.read_exact(&mut out).map_err(|_| corrupt())?;
            Ok(out)
        };
        let header = read(&mut f, 1)?;
        if header.len() > 16 * 1024 * 1024 {
            return Err(corrupt());
        }
        let meta: ModelMeta = serde_json::from_slice(&header).map_err(|_| corrupt())?;
        let k = meta.classes.len();
        let keys: Vec<u64> = read(&mut f, 8)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let fams = read(&mut f, 1)?;
        let mut floats = || -> Result<Vec<f32>, ModelError> {
            Ok(read(&mut f, 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let idf = floats()?;
        let weights = floats()?;
        let bias = floats()?;
        let nb = floats()?;
        let nb_scale = floats()?;
        let dims = keys.len();
        let mut vocab = Vocabulary {
            keys,
            fams,
            idf,
            zone_weight: meta.settings.zone_weight,
            ..Default::default()
        };
        vocab.rebuild_index();
        if k < 2
            || vocab.fams.len() != dims
            || vocab.idf.len() != dims
            || weights.len() != dims * k
            || bias.len() != k
            || nb.len() != vocab.words * k
            || nb_scale.len() != 1
        {
            return Err(corrupt());
        }
        Ok(Model {
            meta,
            vocab,
            packed: pack(&weights, k),
            weights,
            bias,
            nb,
            nb_scale: nb_scale[0],
        })
    }
}

fn pack_width(k: usize) -> usize {
    k.div_ceil(16).max(1)
}

/// Turns scores into per-class sigmoid log-probabilities `ln σ(a·s + b)` (no-op without
/// calibration).
pub fn apply_platt(platt: &[(f32, f32)], scores: &mut [f32]) {
    if platt.len() != scores.len() {
        return;
    }
    for (s, (a, b)) in scores.iter_mut().zip(platt) {
        let z = a * *s + b;
        // ln σ(z) = -ln(1 + e^-z), computed stably.
        *s = if z >= 0.0 {
            -(-z).exp().ln_1p()
        } else {
            z - z.exp().ln_1p()
        };
    }
}

/// Fits Platt's sigmoid `σ(a·s + b)` to binary targets by Newton's method with backtracking
/// (Lin, Lin and Weng 2007), with Platt's smoothed targets.
pub fn fit_platt(scores: &[f32], positive: &[bool]) -> (f32, f32) {
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return (1.0, 0.0);
    }
    let hi = (n_pos + 1.0) / (n_pos + 2.0);
    let lo = 1.0 / (n_neg + 2.0);
    let t: Vec<f64> = positive.iter().map(|p| if *p { hi } else { lo }).collect();
    let f: Vec<f64> = scores.iter().map(|v| f64::from(*v)).collect();
    // Parameterised as p = 1 / (1 + exp(A f + B)); a = -A, b = -B.
    let (mut a, mut b) = (0.0f64, ((n_neg + 1.0) / (n_pos + 1.0)).ln());
    let objective = |a: f64, b: f64| -> f64 {
        f.iter()
            .zip(&t)
            .map(|(fi, ti)| {
                let z = fi * a + b;
                if z >= 0.0 {
                    ti * z + (-z).exp().ln_1p()
                } else {
                    (ti - 1.0) * z + z.exp().ln_1p()
                }
            })
            .sum()
    };
    let mut fval = objective(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
        for (fi, ti) in f.iter().zip(&t) {
            let z = fi * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += fi * fi * d2;
            h22 += d2;
            h21 += fi * d2;
            let d1 = ti - p;
            g1 += fi * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        if det.abs() < 1e-18 {
            break;
        }
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        let mut moved = false;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = objective(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                moved = true;
                break;
            }
            step /= 2.0;
        }
        if !moved {
            break;
        }
    }
    (-a as f32, -b as f32)
}

/// Softmax with temperature, in place.
pub fn softmax_in_place(v: &mut [f32], temperature: f32) {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = ((*x - max) / t).exp();
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

    fn ex(text: &str, label: usize) -> Example {
        Example {
            zones: from_text(text, &[]),
            label,
        }
    }

    fn tiny() -> (Vec<Example>, Vec<MailboxId>) {
        let classes = vec![
            MailboxId::parse("22").expect("id"),
            MailboxId::parse("70").expect("id"),
        ];
        let data = vec![
            ex("Ich melde meinen Hund ab, Hundesteuer bitte einstellen", 0),
            ex("Anmeldung Hundesteuer für unseren neuen Hund Bello", 0),
            ex("Widerspruch gegen den Grundsteuerbescheid", 0),
            ex("Die Biotonne wurde nicht geleert", 1),
            ex("Bitte eine größere Restmülltonne liefern", 1),
            ex("Sperrmüll Abholung beantragen für Sofa und Schrank", 1),
        ];
        (data, classes)
    }

    #[test]
    fn learns_and_generalises_to_unseen_wording() {
        let (data, classes) = tiny();
        let m = Model::train(&data, classes, &TrainParams::default()).expect("train");
        let p = m.predict(&from_text(
            "Hundesteuer: Hund verstorben, bitte abmelden",
            &[],
        ));
        assert!(p[0] > p[1], "{p:?}");
        let p = m.predict(&from_text("Unsere Mülltonne ist kaputt", &[]));
        assert!(p[1] > p[0], "{p:?}");
        let sum: f64 = p.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        let why = m.explain(&from_text("Hundesteuer abmelden", &[]), 0, 5);
        assert!(
            why.iter()
                .any(|f| f.feature.contains("hund") || f.feature.contains("steu")),
            "{why:?}"
        );
    }

    #[test]
    fn save_load_round_trip_and_refuses_other_formats() {
        let (data, classes) = tiny();
        let m = Model::train(&data, classes, &TrainParams::default()).expect("train");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.model");
        m.save(&path).expect("save");
        let back = Model::load(&path).expect("load");
        let z = from_text("Hundesteuer", &[]);
        assert_eq!(m.predict(&z), back.predict(&z));
        // Same file with a future format number.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let err = Model::load(&path).expect_err("must refuse");
        assert!(matches!(err, ModelError::IncompatibleFormat { .. }));
        assert!(err.to_string().contains("poststelle train"));
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(Model::load(&path), Err(ModelError::Corrupt(_))));
    }

    #[test]
    fn zone_weight_scales_the_zone_block_and_survives_save_and_load() {
        let letter = "Stadt Musterstadt\nSteueramt\nMarktplatz 1\n12345 Musterstadt\n\n\
                      Betreff: Hundesteuer\n\nSehr geehrte Damen und Herren,\nich melde den Hund ab.";
        let z = from_text(letter, &[]);
        assert!(z.address.is_some() && z.subject.is_some(), "{z:?}");
        let docs = [raw_counts(&z, &ModelSettings::default())];
        let docs: Vec<&RawCounts> = docs.iter().collect();
        let zone_values = |w: f32| -> Vec<f32> {
            let s = ModelSettings {
                zone_weight: w,
                ..ModelSettings::default()
            };
            let v = Vocabulary::fit(&docs, &s);
            let x = v.transform(docs[0]);
            x.values
                .iter()
                .filter(|(i, _)| v.fams[*i as usize] == FAM_ZONE)
                .map(|(_, v)| *v)
                .collect()
        };
        let (full, half, none) = (zone_values(1.0), zone_values(0.5), zone_values(0.0));
        assert!(!full.is_empty());
        for ((f, h), n) in full.iter().zip(&half).zip(&none) {
            assert!((f * 0.5 - h).abs() < 1e-6, "{f} {h}");
            assert_eq!(*n, 0.0);
        }
        // A model keeps its zone weight in its file; files without it meant 1.
        let (data, classes) = tiny();
        let params = TrainParams {
            settings: ModelSettings {
                zone_weight: 0.25,
                ..ModelSettings::default()
            },
            ..TrainParams::default()
        };
        let m = Model::train(&data, classes, &params).expect("train");
        assert_eq!(m.meta.settings.zone_weight, 0.25);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.model");
        m.save(&path).expect("save");
        let back = Model::load(&path).expect("load");
        assert_eq!(back.vocab.zone_weight, 0.25);
        assert_eq!(m.predict(&z), back.predict(&z));
        let old: ModelSettings = serde_json::from_str(
            r#"{"word_pairs":false,"chars":[2,5],"c":1.0,"balanced":false,"nb_weight":0.5}"#,
        )
        .expect("old settings");
        assert_eq!(old.zone_weight, 1.0);
        assert_eq!(ModelSettings::default().zone_weight, DEFAULT_ZONE_WEIGHT);
    }
}
