//! The trained model: hashed TF-IDF features -> multinomial logistic regression.
//!
//! Features (all hashed into `2^DIMS_LOG2` buckets): words, word pairs, character 3-5-grams of
//! words (robust to OCR errors, typos and German compounds), and words of the address field and
//! the subject line as features of their own (the address field names the department in many
//! letters). Values are sublinear TF x IDF, L2-normalised. Training is AdaGrad SGD with L2
//! regularisation, deterministic for a given corpus. Probabilities are softmax(logits / T) with a
//! temperature T fitted on held-out predictions, so confidences are calibrated.
//!
//! The file format is versioned ([`FORMAT_VERSION`]); a model written in another format is
//! refused with a message naming the fix (retrain), never silently used or dropped.

use super::text::norm_tokens;
use crate::domain::{FeatureWeight, MailboxId};
use crate::extract::zones::Zones;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

/// Version of the model file format. Bump on any change to features or layout.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"PSTMODEL";
/// Feature buckets (log2).
pub const DIMS_LOG2: u32 = 17;
const DIMS: usize = 1 << DIMS_LOG2;

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
    /// Review threshold chosen from evaluation (None = use the config's).
    pub threshold: Option<f64>,
    /// Number of training items.
    pub items: usize,
    /// Evaluation summary at training time.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// 16 weights on one cache line: a bucket's row for up to 16 classes is one memory fetch.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Block([f32; 16]);

/// Rows of `k` weights per bucket, copied into cache-line-aligned blocks (the prediction path).
fn pack(weights: &[f32], k: usize) -> (Vec<Block>, usize) {
    let per_row = k.div_ceil(16).max(1);
    let mut packed = vec![Block::default(); DIMS * per_row];
    for (b, row) in weights.chunks_exact(k).enumerate() {
        for (c, w) in row.iter().enumerate() {
            packed[b * per_row + c / 16].0[c % 16] = *w;
        }
    }
    (packed, per_row)
}

/// A trained model.
#[derive(Clone)]
pub struct Model {
    /// Metadata.
    pub meta: ModelMeta,
    packed: Vec<Block>,
    blocks_per_row: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    idf: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("meta", &self.meta)
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

/// Training hyper-parameters.
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// Passes over the data.
    pub epochs: usize,
    /// AdaGrad step.
    pub learning_rate: f32,
    /// L2 penalty.
    pub l2: f32,
    /// Shuffle seed.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            epochs: 12,
            learning_rate: 0.5,
            l2: 1e-5,
            seed: 0x5eed,
        }
    }
}

/// A sparse feature vector (bucket, value), each bucket once.
pub type Features = Vec<(u32, f32)>;

#[inline]
fn fnv(ns: u8, parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325 ^ ns as u64;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x20;
            h = h.wrapping_mul(0x100000001b3);
        }
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    ((h ^ (h >> 29)) as u32) & (DIMS as u32 - 1)
}

/// Calls `f(bucket, readable name)` for every feature of a document. `named` = false skips
/// building names (the fast path).
fn for_each_feature(z: &Zones, named: bool, mut f: impl FnMut(u32, Option<String>)) {
    let tokens = norm_tokens(&z.all);
    // Names are built lazily: the fast path must not allocate per feature.
    let name = |s: &dyn Fn() -> String| if named { Some(s()) } else { None };
    for (i, t) in tokens.iter().enumerate() {
        let tb = t.as_bytes();
        if tb.len() >= 2 {
            f(fnv(b'w', &[tb]), name(&|| t.to_string()));
        }
        if let Some(next) = tokens.get(i + 1) {
            f(
                fnv(b'b', &[tb, next.as_bytes()]),
                name(&|| format!("{t} {next}")),
            );
        }
        if tb.len() >= 4 && tb.len() <= 30 {
            let mut padded = Vec::with_capacity(tb.len() + 2);
            padded.push(b'<');
            padded.extend_from_slice(tb);
            padded.push(b'>');
            for n in 5..=5 {
                if padded.len() < n {
                    continue;
                }
                for g in padded.windows(n) {
                    f(
                        fnv(b'c', &[g]),
                        name(&|| format!("„{}“", String::from_utf8_lossy(g))),
                    );
                }
            }
        }
    }
    if let Some(a) = &z.address {
        for t in norm_tokens(a).iter() {
            f(
                fnv(b'a', &[t.as_bytes()]),
                name(&|| format!("Adressfeld: {t}")),
            );
        }
    }
    if let Some(s) = &z.subject {
        for t in norm_tokens(s).iter() {
            f(
                fnv(b's', &[t.as_bytes()]),
                name(&|| format!("Betreff: {t}")),
            );
        }
    }
}

/// Raw term counts of a document (in first-seen order). A per-thread dense scratch array
/// replaces sorting: O(features) with writes that stay in cache.
fn counts(z: &Zones) -> Vec<(u32, f32)> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u32>> = std::cell::RefCell::new(vec![u32::MAX; DIMS]);
    }
    SCRATCH.with(|scratch| {
        let mut slot = scratch.borrow_mut();
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(1024);
        for_each_feature(z, false, |b, _| {
            let s = &mut slot[b as usize];
            if *s == u32::MAX {
                *s = out.len() as u32;
                out.push((b, 1.0));
            } else {
                out[*s as usize].1 += 1.0;
            }
        });
        for (b, _) in &out {
            slot[*b as usize] = u32::MAX;
        }
        out
    })
}

fn tfidf(counts: Vec<(u32, f32)>, idf: &[f32]) -> Features {
    let mut v: Features = counts
        .into_iter()
        .map(|(b, c)| (b, (1.0 + c.ln()) * idf[b as usize]))
        .collect();
    let norm = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|(_, x)| *x /= norm);
    }
    v
}

impl Model {
    /// Trains on examples with `classes` labels.
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
        let raw: Vec<Vec<(u32, f32)>> = examples.iter().map(|e| counts(&e.zones)).collect();
        // Document frequencies -> smoothed IDF.
        let mut df = vec![0u32; DIMS];
        for doc in &raw {
            for (b, _) in doc {
                df[*b as usize] += 1;
            }
        }
        let n = examples.len() as f32;
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        let xs: Vec<Features> = raw.into_iter().map(|c| tfidf(c, &idf)).collect();
        let mut w = vec![0f32; DIMS * k];
        let mut g2 = vec![1e-6f32; DIMS * k];
        let mut bias = vec![0f32; k];
        let mut bias_g2 = vec![1e-6f32; k];
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let mut rng = params.seed | 1;
        let mut logits = vec![0f32; k];
        let lr = params.learning_rate;
        for _ in 0..params.epochs {
            // Fisher-Yates with xorshift: deterministic.
            for i in (1..order.len()).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                order.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            for &i in &order {
                let x = &xs[i];
                let y = examples[i].label;
                logits.copy_from_slice(&bias);
                for (b, v) in x {
                    let row = &w[*b as usize * k..*b as usize * k + k];
                    for c in 0..k {
                        logits[c] += row[c] * v;
                    }
                }
                softmax_in_place(&mut logits, 1.0);
                for c in 0..k {
                    let err = logits[c] - if c == y { 1.0 } else { 0.0 };
                    // Classes already well separated for this item carry no useful gradient;
                    // skipping them makes later epochs several times faster.
                    if err.abs() < 1e-3 {
                        continue;
                    }
                    bias_g2[c] += err * err;
                    bias[c] -= lr * err / bias_g2[c].sqrt();
                    for (b, v) in x {
                        let idx = *b as usize * k + c;
                        let g = err * v + params.l2 * w[idx];
                        g2[idx] += g * g;
                        w[idx] -= lr * g / g2[idx].sqrt();
                    }
                }
            }
        }
        Ok(Model {
            meta: ModelMeta {
                format: FORMAT_VERSION,
                version: String::new(),
                created_at: crate::store::now_str(),
                classes,
                temperature: 1.0,
                threshold: None,
                items: examples.len(),
                metrics: serde_json::Value::Null,
            },
            packed: pack(&w, k).0,
            blocks_per_row: pack_width(k),
            weights: w,
            bias,
            idf,
        })
    }

    /// Feature vector of a document.
    pub fn features(&self, z: &Zones) -> Features {
        tfidf(counts(z), &self.idf)
    }

    /// Uncalibrated logits.
    pub fn logits(&self, x: &Features) -> Vec<f32> {
        let r = self.blocks_per_row;
        let mut acc = vec![0f32; r * 16];
        for (b, v) in x {
            let row = &self.packed[*b as usize * r..*b as usize * r + r];
            for (block, out) in row.iter().zip(acc.chunks_exact_mut(16)) {
                for (o, w) in out.iter_mut().zip(block.0.iter()) {
                    *o += w * v;
                }
            }
        }
        acc.truncate(self.bias.len());
        for (a, b) in acc.iter_mut().zip(&self.bias) {
            *a += b;
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
        let x = self.features(z);
        let mut names: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
        for_each_feature(z, true, |b, n| {
            if let Some(n) = n {
                names.entry(b).or_insert(n);
            }
        });
        let mut contrib: Vec<(f64, u32)> = x
            .iter()
            .map(|(b, v)| {
                let row = &self.weights[*b as usize * k..*b as usize * k + k];
                let mean = row.iter().sum::<f32>() / k as f32;
                (f64::from((row[class] - mean) * v), *b)
            })
            .filter(|(c, _)| *c > 0.0)
            .collect();
        contrib.sort_by(|a, b| b.0.total_cmp(&a.0));
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
            for arr in [&self.weights, &self.bias, &self.idf] {
                out.write_all(&(arr.len() as u64).to_le_bytes())
                    .map_err(io)?;
                for v in arr.iter() {
                    out.write_all(&v.to_le_bytes()).map_err(io)?;
                }
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
        let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic)
            .map_err(|_| ModelError::Corrupt(p.clone()))?;
        if &magic != MAGIC {
            return Err(ModelError::Corrupt(p));
        }
        let mut b4 = [0u8; 4];
        f.read_exact(&mut b4)
            .map_err(|_| ModelError::Corrupt(p.clone()))?;
        let format = u32::from_le_bytes(b4);
        if format != FORMAT_VERSION {
            return Err(ModelError::IncompatibleFormat {
                path: p,
                found: format,
                expected: FORMAT_VERSION,
            });
        }
        let read_u64 = |f: &mut dyn Read| -> Result<u64, ModelError> {
            let mut b8 = [0u8; 8];
            f.read_exact(&mut b8)
                .map_err(|_| ModelError::Corrupt(p.clone()))?;
            Ok(u64::from_le_bytes(b8))
        };
        let hlen = read_u64(&mut f)?;
        if hlen > 16 * 1024 * 1024 {
            return Err(ModelError::Corrupt(p));
        }
        let mut header = vec![0u8; hlen as usize];
        f.read_exact(&mut header)
            .map_err(|_| ModelError::Corrupt(p.clone()))?;
        let meta: ModelMeta =
            serde_json::from_slice(&header).map_err(|_| ModelError::Corrupt(p.clone()))?;
        let k = meta.classes.len();
        let mut arrays = Vec::new();
        for expect in [DIMS * k, k, DIMS] {
            let n = read_u64(&mut f)? as usize;
            if n != expect {
                return Err(ModelError::Corrupt(p));
            }
            let mut bytes = vec![0u8; n * 4];
            f.read_exact(&mut bytes)
                .map_err(|_| ModelError::Corrupt(p.clone()))?;
            arrays.push(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<f32>>(),
            );
        }
        let idf = arrays.pop().unwrap_or_default();
        let bias = arrays.pop().unwrap_or_default();
        let weights = arrays.pop().unwrap_or_default();
        let (packed, blocks_per_row) = pack(&weights, k);
        Ok(Model {
            meta,
            packed,
            blocks_per_row,
            weights,
            bias,
            idf,
        })
    }
}

fn pack_width(k: usize) -> usize {
    k.div_ceil(16).max(1)
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
}
