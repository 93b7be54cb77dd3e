//! linfa in the model: our model as a linfa estimator, and linfa's own classifiers as
//! candidates of the automatic selection.
//!
//! - [`Documents`] are linfa records (one row per document, its zones); [`ModelEstimator`]
//!   implements linfa's [`Fit`] over them and [`Model`] implements [`PredictInplace`] (and so
//!   linfa's `Predict`), with `Array1<usize>` targets (class indices). Training and the
//!   held-out set in `train` go through this adapter.
//! - [`chi2_select`] picks the features of the sparse TF-IDF space that depend most on the class
//!   (the χ² statistic over the TF-IDF values, as scikit-learn's `chi2`), and [`dense`] turns
//!   documents into an `ndarray` matrix over those columns: linfa's classifiers want dense
//!   records.
//! - [`fit_linear`] trains one of linfa's classifiers ([`Learner`]: multinomial logistic
//!   regression, multinomial naive Bayes, linear-kernel SVM one-vs-rest) on those columns. All
//!   three score a document linearly in its features, so the trained classifier is read back as
//!   weights over the selected columns ([`LinearMap`]); a winner becomes an ordinary [`Model`]
//!   (zero weights outside the selection) that routes, is calibrated, saved and loaded like ours.

use super::model::{Example, Features, Model, ModelError, TrainParams};
use crate::domain::MailboxId;
use crate::extract::zones::Zones;
use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use linfa::{Dataset, ParamGuard};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// Which learner a model is made by: ours (linear SVM + complement naive Bayes) or one of
/// linfa's classifiers on χ²-selected features.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Learner {
    /// Our own: the sparse linear SVM and complement naive Bayes ensemble.
    #[default]
    Own,
    /// `linfa_logistic::MultiLogisticRegression` (L2, L-BFGS); regularisation alpha = 1 / C.
    LinfaLogistic,
    /// `linfa_bayes::MultinomialNb` on the TF-IDF values (smoothing alpha 0.1).
    LinfaBayes,
    /// `linfa_svm::Svm` with a linear kernel, one binary SVM per class (one-vs-rest), cost C
    /// (SMO without shrinking: linfa-svm 0.7.2's shrinking overflows an index).
    LinfaSvm,
}

impl Learner {
    /// linfa's classifiers, in the order selection tries them.
    pub const LINFA: [Learner; 3] = [
        Learner::LinfaLogistic,
        Learner::LinfaBayes,
        Learner::LinfaSvm,
    ];

    /// German name for reports.
    pub fn label_de(self) -> &'static str {
        match self {
            Learner::Own => "eigenes Modell (SVM + NB)",
            Learner::LinfaLogistic => "linfa logistische Regression",
            Learner::LinfaBayes => "linfa multinomialer Naive Bayes",
            Learner::LinfaSvm => "linfa SVM (linear, one-vs-rest)",
        }
    }

    /// Parses a command-line name (`own`, `logistic`, `bayes`, `svm`).
    pub fn parse(name: &str) -> Option<Learner> {
        match name {
            "own" | "eigen" => Some(Learner::Own),
            "logistic" | "linfa-logistic" => Some(Learner::LinfaLogistic),
            "bayes" | "linfa-bayes" => Some(Learner::LinfaBayes),
            "svm" | "linfa-svm" => Some(Learner::LinfaSvm),
            _ => None,
        }
    }
}

/// Columns kept by the χ² selection for linfa's classifiers.
pub const CHI2_FEATURES: usize = 3000;

/// Errors of linfa's classifiers and of the adapter.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// linfa itself (dataset shapes, parameters).
    #[error("linfa: {0}")]
    Linfa(#[from] linfa::Error),
    /// The logistic regression.
    #[error("linfa-logistic: {0}")]
    Logistic(#[from] linfa_logistic::error::Error),
    /// The naive Bayes.
    #[error("linfa-bayes: {0}")]
    Bayes(#[from] linfa_bayes::NaiveBayesError),
    /// The SVM.
    #[error("linfa-svm: {0}")]
    Svm(#[from] linfa_svm::SvmError),
    /// Our model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Anything else (bad targets, an unreadable fitted model).
    #[error("{0}")]
    Other(String),
}

/// The χ² statistic of every feature against the class, over the TF-IDF values of `xs`
/// (labels `0..k`), and the `m` best features' vocabulary indices, ascending. Features that
/// never occur or do not depend on the class at all (χ² = 0) are not selected.
pub fn chi2_select(xs: &[Features], labels: &[usize], k: usize, dims: usize, m: usize) -> Vec<u32> {
    let scores = chi2_scores(xs, labels, k, dims);
    let mut order: Vec<u32> = (0..dims as u32)
        .filter(|&j| scores[j as usize] > 0.0)
        .collect();
    order.sort_by(|a, b| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    });
    order.truncate(m);
    order.sort_unstable();
    order
}

/// χ² per feature: Σ over classes of (observed − expected)² / expected, where observed is the
/// summed feature value in the class and expected its total times the class's share of items.
pub fn chi2_scores(xs: &[Features], labels: &[usize], k: usize, dims: usize) -> Vec<f64> {
    let k = k.max(1);
    let mut observed = vec![0f64; dims * k];
    let mut total = vec![0f64; dims];
    let mut class_n = vec![0f64; k];
    for (x, &l) in xs.iter().zip(labels) {
        if l >= k {
            continue;
        }
        class_n[l] += 1.0;
        for (j, v) in &x.values {
            let j = *j as usize;
            if j < dims {
                observed[j * k + l] += f64::from(*v);
                total[j] += f64::from(*v);
            }
        }
    }
    let n: f64 = class_n.iter().sum::<f64>().max(1.0);
    (0..dims)
        .map(|j| {
            (0..k)
                .map(|c| {
                    let e = total[j] * class_n[c] / n;
                    if e > 0.0 {
                        let d = observed[j * k + c] - e;
                        d * d / e
                    } else {
                        0.0
                    }
                })
                .sum()
        })
        .collect()
}

/// A dense matrix of `xs` over `columns` (vocabulary indices, ascending): row i, column p =
/// the TF-IDF value of feature `columns[p]` in document i.
pub fn dense(xs: &[&Features], columns: &[u32]) -> Array2<f64> {
    let mut out = Array2::zeros((xs.len(), columns.len()));
    for (i, x) in xs.iter().enumerate() {
        for (j, v) in &x.values {
            if let Ok(p) = columns.binary_search(j) {
                out[(i, p)] = f64::from(*v);
            }
        }
    }
    out
}

/// A classifier linear in the selected columns: score of class c = bias[c] + Σ_p x_p · w[p][c].
#[derive(Debug, Clone)]
pub struct LinearMap {
    /// Vocabulary indices of the columns, ascending.
    pub columns: Vec<u32>,
    /// Row-major `columns.len() × k`.
    pub weights: Vec<f32>,
    /// Per class.
    pub bias: Vec<f32>,
}

impl LinearMap {
    /// Weights over the whole vocabulary (`dims × k`, zero outside the selection).
    pub fn full_weights(&self, dims: usize) -> Vec<f32> {
        let k = self.bias.len();
        let mut w = vec![0f32; dims * k];
        for (p, &j) in self.columns.iter().enumerate() {
            let j = j as usize;
            if j < dims {
                w[j * k..j * k + k].copy_from_slice(&self.weights[p * k..p * k + k]);
            }
        }
        w
    }

    /// Scores of a sparse document.
    pub fn scores(&self, x: &Features) -> Vec<f32> {
        let k = self.bias.len();
        let mut s = self.bias.clone();
        for (j, v) in &x.values {
            if let Ok(p) = self.columns.binary_search(j) {
                for (o, w) in s.iter_mut().zip(&self.weights[p * k..p * k + k]) {
                    *o += w * v;
                }
            }
        }
        s
    }
}

/// Bias of a class that had no training items: far below every learnt class.
fn absent_bias(bias: &[f32], present: &[bool]) -> f32 {
    bias.iter()
        .zip(present)
        .filter(|(_, p)| **p)
        .map(|(b, _)| *b)
        .fold(f32::INFINITY, f32::min)
        .min(0.0)
        - 10.0
}

/// Trains linfa's classifier `learner` on the sparse training items `xs` (labels `0..k`),
/// restricted to their `CHI2_FEATURES` best columns by χ², with cost `c` (logistic regression:
/// alpha = 1 / c; SVM: C = c; naive Bayes: unused), and reads it back as a [`LinearMap`].
pub fn fit_linear(
    xs: &[Features],
    labels: &[usize],
    k: usize,
    dims: usize,
    learner: Learner,
    c: f32,
) -> Result<LinearMap, LearnerError> {
    if labels.iter().any(|l| *l >= k) || xs.len() != labels.len() {
        return Err(LearnerError::Other("class index out of range".into()));
    }
    let columns = chi2_select(xs, labels, k, dims, CHI2_FEATURES);
    if columns.is_empty() {
        return Err(LearnerError::Other(
            "no feature depends on the class".into(),
        ));
    }
    let refs: Vec<&Features> = xs.iter().collect();
    let x = dense(&refs, &columns);
    let m = columns.len();
    let mut present = vec![false; k];
    for &l in labels {
        present[l] = true;
    }
    let mut weights = vec![0f32; m * k];
    let mut bias = vec![0f32; k];
    match learner {
        Learner::Own => {
            return Err(LearnerError::Other(
                "our own model is not one of linfa's classifiers".into(),
            ));
        }
        Learner::LinfaLogistic => {
            let y = Array1::from(labels.to_vec());
            let ds = Dataset::new(x, y);
            let fitted = linfa_logistic::MultiLogisticRegression::default()
                .alpha(1.0 / f64::from(c.max(1e-6)))
                .max_iterations(200)
                .fit(&ds)?;
            // Columns of params() follow classes() (the labels present, sorted).
            let params = fitted.params();
            let intercept = fitted.intercept();
            for (col, &class) in fitted.classes().iter().enumerate() {
                for p in 0..m {
                    weights[p * k + class] = params[(p, col)] as f32;
                }
                bias[class] = intercept[col] as f32;
            }
        }
        Learner::LinfaBayes => {
            let y = Array1::from(labels.to_vec());
            let ds = Dataset::new(x, y);
            let fitted = linfa_bayes::MultinomialNb::<f64, usize>::params()
                .alpha(0.1)
                .check()?
                .fit(&ds)?;
            // linfa-bayes keeps its per-class log-probabilities private and predicts labels
            // only; its serialised form holds them (prior, feature_log_prob per class).
            let value = serde_json::to_value(&fitted)
                .map_err(|e| LearnerError::Other(format!("naive Bayes unreadable: {e}")))?;
            let info = value
                .get("class_info")
                .and_then(|v| v.as_object())
                .ok_or_else(|| LearnerError::Other("naive Bayes without class_info".into()))?;
            for (label, ci) in info {
                let class: usize = label
                    .parse()
                    .map_err(|_| LearnerError::Other(format!("naive Bayes class {label:?}")))?;
                let prior = ci.get("prior").and_then(|v| v.as_f64()).unwrap_or(0.0);
                let flp: Vec<f64> = ci
                    .get("feature_log_prob")
                    .and_then(|v| v.get("data"))
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                if class >= k || flp.len() != m || prior <= 0.0 {
                    return Err(LearnerError::Other(
                        "naive Bayes parameters do not fit".into(),
                    ));
                }
                for (p, v) in flp.iter().enumerate() {
                    weights[p * k + class] = *v as f32;
                }
                bias[class] = prior.ln() as f32;
            }
        }
        Learner::LinfaSvm => {
            let mut unit = Array1::<f64>::zeros(m);
            for class in (0..k).filter(|c| present[*c]) {
                let y: Array1<bool> = labels.iter().map(|l| *l == class).collect();
                if y.iter().all(|b| *b) {
                    continue;
                }
                let ds = Dataset::new(x.clone(), y);
                let svm = linfa_svm::Svm::<f64, bool>::params()
                    .linear_kernel()
                    .pos_neg_weights(f64::from(c), f64::from(c))
                    .eps(1e-3)
                    .check()?
                    .fit(&ds)?;
                // Linear kernel: the decision is w·x − rho; w is read column by column.
                for p in 0..m {
                    unit[p] = 1.0;
                    weights[p * k + class] = svm.weighted_sum(&unit) as f32;
                    unit[p] = 0.0;
                }
                bias[class] = -svm.rho as f32;
            }
        }
    }
    let low = absent_bias(&bias, &present);
    for (b, p) in bias.iter_mut().zip(&present) {
        if !p {
            *b = low;
        }
    }
    Ok(LinearMap {
        columns,
        weights,
        bias,
    })
}

/// Documents as linfa records: one row per document, its zones (the features are learnt by the
/// fit, so a document counts as one column of text).
#[derive(Debug, Clone, Default)]
pub struct Documents(pub Vec<Zones>);

impl Records for Documents {
    type Elem = Zones;

    fn nsamples(&self) -> usize {
        self.0.len()
    }

    fn nfeatures(&self) -> usize {
        1
    }
}

impl Documents {
    /// A linfa dataset of labelled examples (targets: class indices).
    pub fn dataset(examples: &[Example]) -> DatasetBase<Documents, Array1<usize>> {
        DatasetBase::new(
            Documents(examples.iter().map(|e| e.zones.clone()).collect()),
            examples.iter().map(|e| e.label).collect(),
        )
    }
}

/// Our model's hyperparameters as a linfa estimator: [`Fit`] over [`Documents`] with class-index
/// targets trains a [`Model`] with `params.settings` (our learner or one of linfa's).
#[derive(Debug, Clone)]
pub struct ModelEstimator {
    /// The mailboxes, index = target value.
    pub classes: Vec<MailboxId>,
    /// Training parameters (the settings to train with).
    pub params: TrainParams,
}

impl Fit<Documents, Array1<usize>, LearnerError> for ModelEstimator {
    type Object = Model;

    fn fit(&self, dataset: &DatasetBase<Documents, Array1<usize>>) -> Result<Model, LearnerError> {
        if dataset.records.0.len() != dataset.targets.len() {
            return Err(linfa::Error::MismatchedShapes(
                dataset.records.0.len(),
                dataset.targets.len(),
            )
            .into());
        }
        let k = self.classes.len();
        let examples: Vec<Example> = dataset
            .records
            .0
            .iter()
            .zip(dataset.targets.iter())
            .map(|(z, &label)| {
                if label < k {
                    Ok(Example {
                        zones: z.clone(),
                        label,
                    })
                } else {
                    Err(LearnerError::Other(format!(
                        "target {label} but only {k} mailboxes"
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Model::train(&examples, self.classes.clone(), &self.params)?)
    }
}

impl PredictInplace<Documents, Array1<usize>> for Model {
    /// The most probable class index of every document.
    fn predict_inplace(&self, x: &Documents, y: &mut Array1<usize>) {
        *y =
            x.0.iter()
                .map(|z| {
                    self.predict(z)
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(c, _)| c)
                })
                .collect();
    }

    fn default_target(&self, x: &Documents) -> Array1<usize> {
        Array1::zeros(x.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::model::ModelSettings;
    use crate::extract::zones::from_text;
    use linfa::traits::Predict;

    fn feat(values: &[(u32, f32)]) -> Features {
        Features {
            values: values.to_vec(),
            words: Vec::new(),
        }
    }

    #[test]
    fn chi2_prefers_features_that_depend_on_the_class() {
        // Feature 0 only in class 0, feature 1 only in class 1, feature 2 everywhere alike,
        // feature 3 never.
        let xs = vec![
            feat(&[(0, 1.0), (2, 0.5)]),
            feat(&[(0, 0.8), (2, 0.5)]),
            feat(&[(1, 1.0), (2, 0.5)]),
            feat(&[(1, 0.9), (2, 0.5)]),
        ];
        let labels = [0, 0, 1, 1];
        let s = chi2_scores(&xs, &labels, 2, 4);
        assert!(s[0] > 0.5 && s[1] > 0.5, "{s:?}");
        assert!(s[2].abs() < 1e-12, "{s:?}");
        assert_eq!(s[3], 0.0);
        assert_eq!(chi2_select(&xs, &labels, 2, 4, 2), vec![0, 1]);
        // Only one column wanted: the stronger one (feature 1's values sum higher: 1.9 > 1.8).
        assert_eq!(chi2_select(&xs, &labels, 2, 4, 1), vec![1]);
        // Class-independent and absent features are never selected, whatever m.
        assert_eq!(chi2_select(&xs, &labels, 2, 4, 10), vec![0, 1]);
        let d = dense(&xs.iter().collect::<Vec<_>>(), &[0, 2]);
        assert_eq!(d.shape(), &[4, 2]);
        assert_eq!(d[(1, 0)], f64::from(0.8f32));
        assert_eq!(d[(2, 0)], 0.0);
        assert_eq!(d[(3, 1)], 0.5);
    }

    fn separable() -> Vec<(Features, usize)> {
        // Three classes, each marked by its own two features, with shared noise features.
        (0..30)
            .map(|i| {
                let c = i % 3;
                let noise = 6 + (i % 4) as u32;
                (
                    feat(&[
                        (2 * c as u32, 0.6),
                        (2 * c as u32 + 1, 0.4 + (i % 5) as f32 * 0.05),
                        (noise, 0.3),
                    ]),
                    c,
                )
            })
            .collect()
    }

    #[test]
    fn every_linfa_classifier_separates_a_separable_set() {
        let data = separable();
        let xs: Vec<Features> = data.iter().map(|d| d.0.clone()).collect();
        let labels: Vec<usize> = data.iter().map(|d| d.1).collect();
        for learner in Learner::LINFA {
            let lin = fit_linear(&xs, &labels, 3, 10, learner, 1.0).expect("fit");
            assert_eq!(lin.bias.len(), 3);
            let right = xs
                .iter()
                .zip(&labels)
                .filter(|(x, l)| {
                    let s = lin.scores(x);
                    let best = s
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(c, _)| c);
                    best == Some(**l)
                })
                .count();
            assert_eq!(right, xs.len(), "{learner:?}");
        }
        // A class with no items gets a bias below every learnt one.
        let lin = fit_linear(&xs, &labels, 4, 10, Learner::LinfaLogistic, 1.0).expect("fit");
        assert!(lin.bias[3] < lin.bias[0].min(lin.bias[1]).min(lin.bias[2]));
        assert!(fit_linear(&xs, &labels, 2, 10, Learner::LinfaBayes, 1.0).is_err());
    }

    fn letters() -> (Vec<Example>, Vec<MailboxId>) {
        let topics = [
            ["Hundesteuer", "Hund", "Steuermarke", "Grundsteuer"],
            ["Biotonne", "Restmüll", "Sperrmüll", "Abholung"],
            ["Bauantrag", "Carport", "Baugenehmigung", "Flurstück"],
        ];
        let mut out = Vec::new();
        for (label, words) in topics.iter().enumerate() {
            for i in 0..8 {
                let text = format!(
                    "Sehr geehrte Damen und Herren, es geht um {} und {} (Nr. {i}).",
                    words[i % 4],
                    words[(i + 1) % 4]
                );
                out.push(Example {
                    zones: from_text(&text, &[]),
                    label,
                });
            }
        }
        let classes = ["22", "70", "63"]
            .iter()
            .map(|m| MailboxId::parse(m).expect("id"))
            .collect();
        (out, classes)
    }

    #[test]
    fn the_estimator_fits_and_predicts_its_training_classes_through_linfa() {
        let (ex, classes) = letters();
        let ds = Documents::dataset(&ex);
        for learner in [Learner::Own, Learner::LinfaLogistic, Learner::LinfaSvm] {
            let est = ModelEstimator {
                classes: classes.clone(),
                params: TrainParams {
                    settings: ModelSettings {
                        learner,
                        ..ModelSettings::default()
                    },
                    ..TrainParams::default()
                },
            };
            let model = est.fit(&ds).expect("fit");
            assert_eq!(model.meta.settings.learner, learner);
            let predicted: Array1<usize> = Predict::predict(&model, &ds);
            assert_eq!(predicted, ds.targets, "{learner:?}");
            // New wording of a known topic.
            let unseen = Documents(vec![from_text(
                "Frage zur Baugenehmigung für den Carport",
                &[],
            )]);
            let p: Array1<usize> =
                Predict::predict(&model, &DatasetBase::new(unseen, Array1::<usize>::zeros(1)));
            assert_eq!(p[0], 2, "{learner:?}");
        }
        // A model learnt by linfa is saved and loaded like ours and routes the same.
        let est = ModelEstimator {
            classes: classes.clone(),
            params: TrainParams {
                settings: ModelSettings {
                    learner: Learner::LinfaBayes,
                    ..ModelSettings::default()
                },
                ..TrainParams::default()
            },
        };
        let model = est.fit(&ds).expect("fit");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("linfa.model");
        model.save(&path).expect("save");
        let back = Model::load(&path).expect("load");
        assert_eq!(back.meta.settings.learner, Learner::LinfaBayes);
        let z = from_text("Die Biotonne wurde nicht geleert", &[]);
        assert_eq!(model.predict(&z), back.predict(&z));
        let p = back.predict(&z);
        assert!(p[1] > p[0] && p[1] > p[2], "{p:?}");
        // Targets outside the mailboxes are refused, not guessed.
        let est = ModelEstimator {
            classes: classes[..2].to_vec(),
            params: TrainParams::default(),
        };
        assert!(est.fit(&ds).is_err());
    }
}
