//! Training, evaluation and model versions.
//!
//! - the corpus: JSON Lines (`{"id", "text", "mailbox"}` per line) under `training-data/`, plus
//!   the corrections people made (they join the training set);
//! - [`fit`]: stratified k-fold cross-validation gives held-out predictions, from which the
//!   softmax temperature (calibration) and the review threshold (precision target) are chosen;
//!   then the final model is trained on everything;
//! - [`Registry`]: model versions in a directory, one active, old ones kept, rollback possible.

use crate::classify::learners::{Documents, LearnerError, ModelEstimator};
use crate::classify::model::{Example, Model, ModelError, TrainParams, softmax_in_place};
use crate::classify::rules::RuleSet;
use crate::classify::select::{Search, Selection, select};
use crate::classify::{Classifier, Router, RouterSettings};
use crate::domain::{DecidedBy, MailboxId};
use crate::extract::zones::{Zones, from_text};
use linfa::metrics::ToConfusionMatrix;
use linfa::traits::{Fit, Predict};
use ndarray::Array1;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Precision at which reports compare straight-through shares (`straight_through` of a
/// [`ModeReport`]; the baselines are measured the same way). The thresholds the daemon uses are
/// chosen for the configured target instead ([`TargetThresholds`]).
pub const PRECISION_TARGET: f64 = 0.98;

/// Default precision target of the review thresholds (`classify.precision_target`): at most
/// 1 in 200 documents routed without a person goes to the wrong mailbox.
pub const DEFAULT_PRECISION_TARGET: f64 = 0.995;

/// Review thresholds chosen for a precision target on held-out predictions.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TargetThresholds {
    /// The precision target.
    pub target: f64,
    /// The overall threshold (None: the target is not reached at any threshold).
    pub global: Option<f64>,
    /// Thresholds of mailboxes with enough predictions of their own ([`min_items_for`]).
    pub per_mailbox: BTreeMap<String, f64>,
    /// Predictions a mailbox needs for a threshold of its own.
    pub min_items: usize,
    /// Share of the predictions routed without review at these thresholds.
    pub straight_through: f64,
    /// Precision of that share.
    pub precision: f64,
}

impl TargetThresholds {
    /// The threshold for a prediction of `mailbox`: its own, else the overall one (above 1,
    /// i.e. nothing straight through, when the target was never reached).
    pub fn for_mailbox(&self, mailbox: &str) -> f64 {
        self.per_mailbox
            .get(mailbox)
            .copied()
            .or(self.global)
            .unwrap_or(1.1)
    }

    /// Share routed without review and its precision when `preds` are cut at these thresholds.
    pub fn apply(&self, preds: &[Prediction]) -> (f64, f64) {
        let correct = |p: &Prediction| p.predicted.as_deref() == Some(p.truth.as_str());
        let auto: Vec<&Prediction> = preds
            .iter()
            .filter(|p| {
                p.confidence > 0.0
                    && p.predicted
                        .as_deref()
                        .is_some_and(|m| p.confidence >= self.for_mailbox(m))
            })
            .collect();
        let ok = auto.iter().filter(|p| correct(p)).count();
        (
            auto.len() as f64 / preds.len().max(1) as f64,
            if auto.is_empty() {
                0.0
            } else {
                ok as f64 / auto.len() as f64
            },
        )
    }
}

/// Predictions of one mailbox needed to give it a threshold of its own at `target`: enough
/// that one wrong prediction among them already misses the target (1 / (1 - target)), at
/// least 20.
pub fn min_items_for(target: f64) -> usize {
    let n = (1.0 / (1.0 - target).max(1e-6)).ceil();
    (n as usize).max(20)
}

/// The lowest confidence cut at which the predictions above it reach `target`; cuts only
/// between different confidences. None: no cut reaches it.
fn cut_for_target(preds: &[&Prediction], target: f64) -> Option<f64> {
    let mut sorted: Vec<&Prediction> = preds.to_vec();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let n = straight_through_count(&sorted, target);
    (n > 0).then(|| sorted[n - 1].confidence)
}

/// How many of `sorted` (by confidence, descending) go straight through at the lowest cut
/// that reaches `target`. Only cuts between different confidences count: a threshold cannot
/// split ties.
fn straight_through_count(sorted: &[&Prediction], target: f64) -> usize {
    let (mut best_n, mut ok) = (0usize, 0usize);
    for (i, p) in sorted.iter().enumerate() {
        if p.predicted.as_deref() == Some(p.truth.as_str()) {
            ok += 1;
        }
        let boundary = sorted
            .get(i + 1)
            .is_none_or(|q| q.confidence < p.confidence);
        if boundary && p.confidence > 0.0 && ok as f64 / (i + 1) as f64 >= target {
            best_n = i + 1;
        }
    }
    best_n
}

/// Chooses review thresholds for `target` from held-out predictions: one overall, and one per
/// mailbox predicted at least [`min_items_for`] times (a mailbox whose own predictions never
/// reach the target gets 1.0: only certain decisions pass).
pub fn choose_thresholds(preds: &[Prediction], target: f64) -> TargetThresholds {
    let all: Vec<&Prediction> = preds.iter().collect();
    let global = cut_for_target(&all, target);
    let min_items = min_items_for(target);
    let mut by_mailbox: BTreeMap<&str, Vec<&Prediction>> = BTreeMap::new();
    for p in preds {
        if let Some(m) = p.predicted.as_deref() {
            by_mailbox.entry(m).or_default().push(p);
        }
    }
    let per_mailbox = by_mailbox
        .into_iter()
        .filter(|(_, ps)| ps.len() >= min_items)
        .map(|(m, ps)| (m.to_string(), cut_for_target(&ps, target).unwrap_or(1.0)))
        .collect();
    let mut t = TargetThresholds {
        target,
        global,
        per_mailbox,
        min_items,
        straight_through: 0.0,
        precision: 0.0,
    };
    (t.straight_through, t.precision) = t.apply(preds);
    t
}

/// Inner folds of automatic selection.
pub const SELECTION_FOLDS: usize = 3;

/// Default time for automatic selection in `train` (seconds).
pub const SELECTION_BUDGET_S: u64 = 120;

/// One labelled text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Id (unique within its file).
    pub id: String,
    /// The text.
    pub text: String,
    /// The mailbox that must act.
    pub mailbox: String,
    /// Where the item came from (file name or `correction`).
    #[serde(default)]
    pub origin: String,
    /// What it is (`letter`, `email`, `form`, ...), when the corpus says; an `email` is routed
    /// like an e-mail (its recipient addresses count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Item {
    /// True when the item is an e-mail (header lines, then the body).
    pub fn is_mail(&self) -> bool {
        self.kind.as_deref() == Some("email")
    }
}

/// Training errors.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Corpus file problem, with file and line.
    #[error("{file}: line {line}: {message}")]
    Corpus {
        /// File.
        file: String,
        /// Line.
        line: usize,
        /// Problem.
        message: String,
    },
    /// I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Registry problem.
    #[error("{0}")]
    Registry(String),
}

/// Reads one JSON Lines corpus file.
pub fn load_jsonl(path: &Path) -> Result<Vec<Item>, TrainError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| TrainError::Io(path.display().to_string(), e))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut item: Item = serde_json::from_str(line).map_err(|e| TrainError::Corpus {
            file: path.display().to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        if MailboxId::parse(&item.mailbox).is_none() {
            return Err(TrainError::Corpus {
                file: path.display().to_string(),
                line: i + 1,
                message: format!("invalid mailbox id {:?}", item.mailbox),
            });
        }
        if item.origin.is_empty() {
            item.origin = path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
        }
        items.push(item);
    }
    Ok(items)
}

/// Reads the training corpus: every `*.jsonl` in `dir` and in `dir/corpus/`, sorted by path.
/// The held-out set (`dir/holdout/`) and scanned twins (`dir/scanned/`) are not training data.
pub fn load_corpus(dir: &Path) -> Result<Vec<Item>, TrainError> {
    load_files(&[dir.to_path_buf(), dir.join("corpus")])
}

/// Reads every `*.jsonl` directly in `dir` (e.g. the held-out set), sorted by path.
pub fn load_dir(dir: &Path) -> Result<Vec<Item>, TrainError> {
    load_files(&[dir.to_path_buf()])
}

fn load_files(dirs: &[PathBuf]) -> Result<Vec<Item>, TrainError> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut items = Vec::new();
    for f in files {
        items.extend(load_jsonl(&f)?);
    }
    Ok(items)
}

/// Scores on a held-out set that neither the model nor the rules' authors saw.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutReport {
    /// Items.
    pub items: usize,
    /// linfa's metrics of the model alone (its predictions through linfa's `Predict`).
    pub model_metrics: LinfaMetrics,
    /// Rules alone.
    pub rules: ModeReport,
    /// Model alone.
    pub model: ModeReport,
    /// Combined (best threshold found on the held-out set itself, for reference).
    pub combined: ModeReport,
    /// As the daemon routes (the router: e-mail recipient addresses included).
    pub routed: ModeReport,
    /// The overall threshold chosen by cross-validation on the corpus for the precision
    /// target, applied here (with the per-mailbox ones).
    pub threshold: Option<f64>,
    /// Share routed without review at those thresholds.
    pub straight_through_at_threshold: f64,
    /// Precision of what was routed without review at those thresholds.
    pub precision_at_threshold: f64,
    /// Every item the routed decision or the model alone got wrong, for reading the errors.
    pub errors: Vec<HoldoutError>,
}

/// A held-out item that the routed decision or the model alone got wrong.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutError {
    /// The item's id.
    pub id: String,
    /// True mailbox.
    pub truth: String,
    /// The rules' choice (None = no rule hit).
    pub rules: Option<String>,
    /// The model's choice alone.
    pub model: Option<String>,
    /// The model's probability for its choice.
    pub model_confidence: f64,
    /// The routed decision's mailbox.
    pub routed: Option<String>,
    /// The routed confidence (0 when it goes to review).
    pub routed_confidence: f64,
}

/// Trains a calibrated model: selection (automatic within `budget`, else the settings of
/// `params`) by inner cross-validation, whose held-out scores calibrate the model that is then
/// trained on all `examples`.
pub fn train_calibrated(
    examples: &[Example],
    classes: &[MailboxId],
    budget: Option<std::time::Duration>,
    params: &TrainParams,
) -> Result<(Model, Selection), TrainError> {
    let search = match budget {
        Some(b) => Search::Auto(b),
        None => Search::Fixed(params.settings),
    };
    let sel = select(examples, classes.len(), SELECTION_FOLDS, search, params);
    // The winner, ours or one of linfa's, is trained on everything through linfa's `Fit`.
    let estimator = ModelEstimator {
        classes: classes.to_vec(),
        params: TrainParams {
            settings: sel.chosen,
            ..params.clone()
        },
    };
    let mut model = estimator
        .fit(&Documents::dataset(examples))
        .map_err(|e| match e {
            LearnerError::Model(m) => TrainError::Model(m),
            other => TrainError::Model(ModelError::Training(other.to_string())),
        })?;
    model.meta.platt = sel.calibration.platt.clone();
    model.meta.temperature = sel.calibration.temperature;
    Ok((model, sel))
}

/// Trains on `train` (calibrated by inner cross-validation) and scores `holdout`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_holdout(
    train: &[Item],
    holdout: &[Item],
    classes: &[MailboxId],
    rules: &Arc<RuleSet>,
    routing: &RouterSettings,
    params: &TrainParams,
    thresholds: &TargetThresholds,
) -> Result<HoldoutReport, TrainError> {
    let markers = &routing.address_markers;
    let (model, _) = train_calibrated(&examples(train, classes, markers), classes, None, params)?;
    // The model alone through linfa's `Predict` on the held-out documents.
    let held_out = examples(holdout, classes, markers);
    let predicted: Array1<usize> = Predict::predict(&model, &Documents::dataset(&held_out));
    let model_metrics = LinfaMetrics::of(
        &predicted.mapv(|c| classes.get(c).map(|m| m.to_string()).unwrap_or_default()),
        &held_out
            .iter()
            .map(|e| {
                classes
                    .get(e.label)
                    .map(|m| m.to_string())
                    .unwrap_or_default()
            })
            .collect(),
    );
    let rule_only = Classifier::new(rules.clone(), None, classes.to_vec(), 0.0);
    let router = Router::new(Arc::new(rule_only), routing.clone());
    let mut preds: [Vec<Prediction>; 4] = Default::default();
    for it in holdout {
        let z = from_text(&it.text, markers);
        let p = model.predict(&z);
        for (acc, p) in preds.iter_mut().zip(predict4(&z, &p, classes, &router, it)) {
            acc.push(p);
        }
    }
    let (straight_through, precision) = thresholds.apply(&preds[2]);
    let errors = preds[3]
        .iter()
        .zip(&preds[1])
        .zip(&preds[0])
        .filter(|((routed, model), _)| {
            routed.predicted.as_ref() != Some(&routed.truth)
                || model.predicted.as_ref() != Some(&model.truth)
        })
        .map(|((routed, model), rules)| HoldoutError {
            id: routed.id.clone(),
            truth: routed.truth.clone(),
            rules: rules.predicted.clone(),
            model: model.predicted.clone(),
            model_confidence: model.confidence,
            routed: routed.predicted.clone(),
            routed_confidence: routed.confidence,
        })
        .collect();
    let [r, m, c, as_routed] = preds;
    Ok(HoldoutReport {
        model_metrics,
        items: holdout.len(),
        rules: score(&r, PRECISION_TARGET),
        model: score(&m, PRECISION_TARGET),
        combined: score(&c, PRECISION_TARGET),
        routed: score(&as_routed, PRECISION_TARGET),
        threshold: thresholds.global,
        straight_through_at_threshold: straight_through,
        precision_at_threshold: precision,
        errors,
    })
}

/// Class labels of a corpus: the configured mailboxes first, then any others in the data.
pub fn classes_for(items: &[Item], configured: &[MailboxId]) -> Vec<MailboxId> {
    let mut classes: Vec<MailboxId> = configured.to_vec();
    for it in items {
        if let Some(m) = MailboxId::parse(&it.mailbox)
            && !classes.contains(&m)
        {
            classes.push(m);
        }
    }
    // Only classes that have data can be learned.
    classes.retain(|c| items.iter().any(|i| i.mailbox == c.as_str()));
    classes
}

fn examples(items: &[Item], classes: &[MailboxId], markers: &[String]) -> Vec<Example> {
    items
        .iter()
        .filter_map(|it| {
            let label = classes.iter().position(|c| c.as_str() == it.mailbox)?;
            Some(Example {
                zones: from_text(&it.text, markers),
                label,
            })
        })
        .collect()
}

/// Stratified fold assignment: items of each class spread round-robin over `k` folds after a
/// deterministic shuffle.
pub fn stratified_folds(items: &[Item], k: usize, seed: u64) -> Vec<usize> {
    // Classes in the order of their mailbox names.
    let names: std::collections::BTreeSet<&str> =
        items.iter().map(|it| it.mailbox.as_str()).collect();
    let rank: BTreeMap<&str, usize> = names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
    let labels: Vec<usize> = items
        .iter()
        .map(|it| rank.get(it.mailbox.as_str()).copied().unwrap_or(0))
        .collect();
    crate::classify::select::stratified(&labels, k, seed)
}

/// A held-out prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The item's id.
    pub id: String,
    /// Its origin.
    pub origin: String,
    /// True mailbox.
    pub truth: String,
    /// Predicted mailbox (None = no evidence).
    pub predicted: Option<String>,
    /// Confidence.
    pub confidence: f64,
}

/// Scores of one way of deciding (rules, model, combined).
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// Share of items whose best candidate is right.
    pub top1: f64,
    /// Share routed without review at the chosen threshold.
    pub straight_through: f64,
    /// Precision of the automatically routed share.
    pub auto_precision: f64,
    /// Threshold reaching the precision target (None: never reached).
    pub threshold: Option<f64>,
    /// Per mailbox: (precision, recall, support).
    pub per_mailbox: BTreeMap<String, (f64, f64, usize)>,
    /// Confusion matrix: truth -> predicted -> count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Reliability table: (bin lower bound, count, mean confidence, accuracy).
    pub reliability: Vec<(f64, usize, f64, f64)>,
    /// Expected calibration error over the reliability table's bins: the count-weighted mean
    /// gap between confidence and accuracy.
    pub ece: f64,
    /// linfa's confusion-matrix metrics of the top-1 decisions.
    pub linfa: LinfaMetrics,
}

/// Metrics from linfa's [`ConfusionMatrix`](linfa::metrics::ConfusionMatrix) of top-1
/// decisions (a missing decision counts as the label `-`). None where linfa's value is not
/// a number (e.g. a class that was never predicted makes macro precision undefined).
#[derive(Debug, Clone, Serialize, Default)]
pub struct LinfaMetrics {
    /// Accuracy.
    pub accuracy: Option<f64>,
    /// Macro-averaged F1.
    pub macro_f1: Option<f64>,
    /// Matthews correlation coefficient (multi-class).
    pub mcc: Option<f64>,
    /// Per label: (precision, recall), from linfa's one-vs-all split.
    pub per_class: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

impl LinfaMetrics {
    /// The metrics of `predicted` against `truth` (same length; labels as strings).
    pub fn of(predicted: &Array1<String>, truth: &Array1<String>) -> Self {
        let num = |v: f32| v.is_finite().then_some(f64::from(v));
        let Ok(cm) = predicted.confusion_matrix(truth) else {
            return Self::default();
        };
        // linfa orders the labels as sorted (reversed for exactly two); its one-vs-all split
        // follows that order. Its matrix has predictions as rows: the split's "precision"
        // divides by the true count and its "recall" by the predicted count, so they are read
        // the other way round here (checked against hand-counted values in the tests).
        let mut labels: Vec<String> = predicted.iter().chain(truth.iter()).cloned().collect();
        labels.sort();
        labels.dedup();
        if labels.len() == 2 {
            labels.reverse();
        }
        let per_class = labels
            .into_iter()
            .zip(cm.split_one_vs_all())
            .map(|(l, b)| (l, (num(b.recall()), num(b.precision()))))
            .collect();
        LinfaMetrics {
            accuracy: num(cm.accuracy()),
            macro_f1: num(cm.f1_score()),
            mcc: num(cm.mcc()),
            per_class,
        }
    }
}

/// Summarises held-out predictions.
pub fn score(preds: &[Prediction], target: f64) -> ModeReport {
    let n = preds.len().max(1) as f64;
    let correct = |p: &Prediction| p.predicted.as_deref() == Some(p.truth.as_str());
    let top1 = preds.iter().filter(|p| correct(p)).count() as f64 / n;
    let mut sorted: Vec<&Prediction> = preds.iter().collect();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let best_n = straight_through_count(&sorted, target);
    let threshold = (best_n > 0).then(|| sorted[best_n - 1].confidence);
    let auto_ok = sorted[..best_n].iter().filter(|p| correct(p)).count();
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for p in preds {
        *confusion
            .entry(p.truth.clone())
            .or_default()
            .entry(p.predicted.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    let mut per_mailbox = BTreeMap::new();
    for m in confusion.keys() {
        let tp = preds.iter().filter(|p| &p.truth == m && correct(p)).count() as f64;
        let predicted = preds
            .iter()
            .filter(|p| p.predicted.as_deref() == Some(m.as_str()))
            .count() as f64;
        let support = preds.iter().filter(|p| &p.truth == m).count();
        per_mailbox.insert(
            m.clone(),
            (
                if predicted > 0.0 { tp / predicted } else { 0.0 },
                tp / support.max(1) as f64,
                support,
            ),
        );
    }
    let mut reliability = Vec::new();
    for b in 0..10 {
        let lo = b as f64 / 10.0;
        let hi = lo + 0.1;
        let in_bin: Vec<&Prediction> = preds
            .iter()
            .filter(|p| {
                p.confidence >= lo && (p.confidence < hi || (b == 9 && p.confidence <= 1.0))
            })
            .collect();
        if in_bin.is_empty() {
            continue;
        }
        let c = in_bin.len();
        let mean = in_bin.iter().map(|p| p.confidence).sum::<f64>() / c as f64;
        let acc = in_bin.iter().filter(|p| correct(p)).count() as f64 / c as f64;
        reliability.push((lo, c, mean, acc));
    }
    let label = |p: Option<&str>| p.unwrap_or("-").to_string();
    let linfa = LinfaMetrics::of(
        &preds
            .iter()
            .map(|p| label(p.predicted.as_deref()))
            .collect(),
        &preds.iter().map(|p| label(Some(&p.truth))).collect(),
    );
    ModeReport {
        linfa,
        top1,
        straight_through: best_n as f64 / n,
        auto_precision: if best_n > 0 {
            auto_ok as f64 / best_n as f64
        } else {
            0.0
        },
        threshold,
        per_mailbox,
        confusion,
        ece: reliability
            .iter()
            .map(|(_, c, conf, acc)| *c as f64 * (conf - acc).abs())
            .sum::<f64>()
            / n,
        reliability,
    }
}

/// Cross-validation result.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// Folds.
    pub folds: usize,
    /// Items.
    pub items: usize,
    /// Calibrated temperature.
    pub temperature: f64,
    /// Rules alone.
    pub rules: ModeReport,
    /// Model alone.
    pub model: ModeReport,
    /// Rules and model combined (the classifier; the review threshold is chosen on it).
    pub combined: ModeReport,
    /// As the daemon routes: the router around the classifier (e-mail recipient addresses).
    pub routed: ModeReport,
    /// Review thresholds for the precision target, chosen on the combined predictions.
    pub target: TargetThresholds,
    /// Scanned twins: the same held-out items read from rendered scans by OCR.
    pub twins: Option<TwinReport>,
    /// The settings chosen inside each fold (nested selection), when selection ran.
    pub selections: Vec<Selection>,
    /// Held-out predictions as routed.
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

/// Clean text versus OCR of scanned twins, on the same items and folds.
#[derive(Debug, Clone, Serialize)]
pub struct TwinReport {
    /// Items that have a twin.
    pub items: usize,
    /// Combined router on the clean text of those items.
    pub clean: ModeReport,
    /// Combined router on their scanned twins.
    pub scanned: ModeReport,
    /// Model alone on the scanned twins.
    pub scanned_model: ModeReport,
    /// Rules alone on the scanned twins.
    pub scanned_rules: ModeReport,
    /// Items whose scan was routed differently from their clean text: where OCR costs.
    pub changed: Vec<TwinChange>,
}

/// One item that its scanned twin routed differently.
#[derive(Debug, Clone, Serialize)]
pub struct TwinChange {
    /// The corpus item's id.
    pub id: String,
    /// True mailbox.
    pub truth: String,
    /// Combined decision on the clean text.
    pub clean: Option<String>,
    /// Combined decision on the scan.
    pub scanned: Option<String>,
    /// Confidence of the scan's decision.
    pub scanned_confidence: f64,
}

/// Four predictions for one text: rules alone, model alone, rules and model combined (the
/// classifier), and the router's decision (what the daemon files; e-mail recipients count).
/// `model_probs` are the held-out model's probabilities for `zones` over `classes`; `router`
/// holds the rules (its classifier has no model: the probabilities are given).
fn predict4(
    zones: &Zones,
    model_probs: &[f64],
    classes: &[MailboxId],
    router: &Router,
    it: &Item,
) -> [Prediction; 4] {
    let pred = |predicted: Option<String>, confidence: f64| Prediction {
        id: it.id.clone(),
        origin: it.origin.clone(),
        truth: it.mailbox.clone(),
        predicted,
        confidence,
    };
    let decided = |d: &crate::domain::Decision| {
        // The evaluation's classifiers have threshold 0, so a review here is one no threshold
        // lifts (no evidence, addresses of several mailboxes): never straight through.
        let straight = d.decided_by != DecidedBy::Nothing && !d.needs_review;
        pred(
            d.mailbox.as_ref().map(|m| m.to_string()),
            if straight { d.confidence } else { 0.0 },
        )
    };
    let (best, conf) = model_probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(c, v)| (c, *v))
        .unwrap_or((0, 0.0));
    let model_only = pred(classes.get(best).map(|c| c.to_string()), conf);
    let probs = classes.iter().cloned().zip(model_probs.iter().copied());
    let classifier = router.classifier();
    let combined = classifier.decide_given(zones, Some(probs.collect()), false);
    let routed = router.with_recipients(it.is_mail().then_some(it.text.as_str()), combined.clone());
    [
        decided(&classifier.decide_given(zones, None, false)),
        model_only,
        decided(&combined),
        decided(&routed),
    ]
}

/// A model's probabilities from its logits, at `temperature`.
fn probs(logits: &[f32], temperature: f64) -> Vec<f64> {
    let mut p = logits.to_vec();
    softmax_in_place(&mut p, temperature as f32);
    p.into_iter().map(f64::from).collect()
}

/// Runs stratified k-fold cross-validation. `twins` maps item ids to the OCR text of their
/// scanned twins; those are predicted by the same fold's model as their clean originals.
/// Every prediction that counts goes through the same [`Classifier`] combination and [`Router`]
/// the daemon uses, on the fold model's held-out probabilities at the fitted temperature.
#[allow(clippy::too_many_arguments)]
pub fn cross_validate(
    items: &[Item],
    classes: &[MailboxId],
    rules: &Arc<RuleSet>,
    routing: &RouterSettings,
    k: usize,
    params: &TrainParams,
    twins: Option<&BTreeMap<String, String>>,
) -> Result<CvReport, TrainError> {
    let markers = &routing.address_markers;
    let k = k.clamp(2, items.len().max(2));
    let folds = stratified_folds(items, k, params.seed);
    let zones: Vec<Zones> = items.iter().map(|i| from_text(&i.text, markers)).collect();
    let twin_zones: Vec<Option<Zones>> = items
        .iter()
        .map(|i| {
            twins
                .and_then(|t| t.get(&i.id))
                .map(|t| from_text(t, markers))
        })
        .collect();
    let mut logits: Vec<Vec<f32>> = vec![Vec::new(); items.len()];
    let mut twin_logits: Vec<Option<Vec<f32>>> = vec![None; items.len()];
    let mut selections = Vec::new();
    // Every fold's model is calibrated by what its own inner cross-validation fitted (with
    // nested selection, each fold has its own settings and so its own scale).
    let mut fold_temperature: Vec<Option<f64>> = vec![None; items.len()];
    for f in 0..k {
        let train_items: Vec<Item> = items
            .iter()
            .zip(&folds)
            .filter(|(_, fo)| **fo != f)
            .map(|(i, _)| i.clone())
            .collect();
        let train_examples = examples(&train_items, classes, markers);
        let (model, sel) = train_calibrated(
            &train_examples,
            classes,
            params.selection_budget.map(|b| b / k as u32),
            params,
        )?;
        for (i, fo) in folds.iter().enumerate() {
            if *fo == f {
                fold_temperature[i] = Some(model.meta.temperature);
            }
        }
        if params.selection_budget.is_some() {
            selections.push(sel);
        }
        for (i, fo) in folds.iter().enumerate() {
            if *fo == f {
                logits[i] = model.logits(&model.features(&zones[i]));
                twin_logits[i] = twin_zones[i]
                    .as_ref()
                    .map(|z| model.logits(&model.features(z)));
            }
        }
    }
    let labels: Vec<Option<usize>> = items
        .iter()
        .map(|it| classes.iter().position(|c| c.as_str() == it.mailbox))
        .collect();
    // Every fold's model is calibrated inside its own training part; the report names the
    // temperature that fits all held-out logits (for information).
    let temperature = crate::classify::select::fit_temperature(&logits, &labels);
    let temp_of = |i: usize| fold_temperature[i].unwrap_or(temperature);
    let router = Router::new(
        Arc::new(Classifier::new(rules.clone(), None, classes.to_vec(), 0.0)),
        routing.clone(),
    );
    let mut clean: [Vec<Prediction>; 4] = Default::default();
    let mut twin_clean = Vec::new();
    let mut twin_changed = Vec::new();
    let mut scanned: [Vec<Prediction>; 4] = Default::default();
    for (i, it) in items.iter().enumerate() {
        let p = predict4(
            &zones[i],
            &probs(&logits[i], temp_of(i)),
            classes,
            &router,
            it,
        );
        if let (Some(tl), Some(tz)) = (&twin_logits[i], &twin_zones[i]) {
            twin_clean.push(p[2].clone());
            let tp = predict4(tz, &probs(tl, temp_of(i)), classes, &router, it);
            if tp[2].predicted != p[2].predicted {
                twin_changed.push(TwinChange {
                    id: it.id.clone(),
                    truth: it.mailbox.clone(),
                    clean: p[2].predicted.clone(),
                    scanned: tp[2].predicted.clone(),
                    scanned_confidence: tp[2].confidence,
                });
            }
            for (acc, pr) in scanned.iter_mut().zip(tp) {
                acc.push(pr);
            }
        }
        for (acc, pr) in clean.iter_mut().zip(p) {
            acc.push(pr);
        }
    }
    let twins = (!twin_clean.is_empty()).then(|| TwinReport {
        items: twin_clean.len(),
        clean: score(&twin_clean, PRECISION_TARGET),
        scanned: score(&scanned[2], PRECISION_TARGET),
        scanned_model: score(&scanned[1], PRECISION_TARGET),
        scanned_rules: score(&scanned[0], PRECISION_TARGET),
        changed: twin_changed,
    });
    let [r, m, c, routed] = clean;
    let target = choose_thresholds(&c, params.precision_target);
    Ok(CvReport {
        target,
        folds: k,
        items: items.len(),
        temperature,
        rules: score(&r, PRECISION_TARGET),
        model: score(&m, PRECISION_TARGET),
        combined: score(&c, PRECISION_TARGET),
        routed: score(&routed, PRECISION_TARGET),
        twins,
        selections,
        predictions: routed,
    })
}

/// Cross-validates, then trains the final model on all items with the fitted temperature and
/// the threshold that reached the precision target.
pub fn fit(
    items: &[Item],
    configured: &[MailboxId],
    rules: &Arc<RuleSet>,
    routing: &RouterSettings,
    folds: usize,
    budget: Option<std::time::Duration>,
    precision_target: f64,
) -> Result<(Model, CvReport, Option<Selection>), TrainError> {
    let classes = classes_for(items, configured);
    let mut params = TrainParams {
        precision_target,
        ..TrainParams::default()
    };
    let all = examples(items, &classes, &routing.address_markers);
    let (mut model, sel) = train_calibrated(&all, &classes, budget, &params)?;
    let selection = budget.map(|_| sel);
    // The report cross-validates the chosen settings (each fold calibrated on its own).
    params.settings = model.meta.settings;
    let report = cross_validate(items, &classes, rules, routing, folds, &params, None)?;
    model.meta.threshold = report.target.global;
    model.meta.thresholds = report
        .target
        .per_mailbox
        .iter()
        .filter_map(|(m, t)| MailboxId::parse(m).map(|m| (m, *t)))
        .collect();
    model.meta.precision_target = Some(precision_target);
    model.meta.metrics = serde_json::json!({
        "folds": report.folds, "items": report.items,
        "combined": {"top1": report.combined.top1, "straight_through": report.combined.straight_through, "threshold": report.combined.threshold},
        "target": {"precision": precision_target, "threshold": report.target.global, "per_mailbox": report.target.per_mailbox, "straight_through": report.target.straight_through, "measured_precision": report.target.precision},
        "routed": {"top1": report.routed.top1, "straight_through": report.routed.straight_through},
        "model": {"top1": report.model.top1, "straight_through": report.model.straight_through},
        "rules": {"top1": report.rules.top1, "straight_through": report.rules.straight_through},
        "ece": report.model.ece,
        "selection": selection.as_ref().map(|s| s.why()),
    });
    Ok((model, report, selection))
}

/// Model versions in a directory: `<version>.model` files, `ACTIVE` names the one in use,
/// `HISTORY` lists activations (for rollback), `SHADOW` the one running in shadow beside it
/// (its decisions are logged, never used; see [`crate::shadow`]).
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// A model version as listed.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Version id.
    pub version: String,
    /// File.
    pub path: PathBuf,
    /// Whether it is active.
    pub active: bool,
    /// Whether it runs in shadow.
    pub shadow: bool,
    /// Metadata, when readable (None for files of another format).
    pub meta: Option<serde_json::Value>,
    /// Why the metadata could not be read.
    pub problem: Option<String>,
}

impl Registry {
    /// The registry at `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn io(&self, e: std::io::Error) -> TrainError {
        TrainError::Io(self.dir.display().to_string(), e)
    }

    /// The active version, if any.
    pub fn active_version(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("ACTIVE"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The version running in shadow, if any.
    pub fn shadow_version(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("SHADOW"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Lets a version run in shadow (replacing any other): the daemon routes with the active
    /// version and logs this one's decisions beside it. The active version cannot shadow itself.
    pub fn set_shadow(&self, version: &str) -> Result<(), TrainError> {
        if !self.path(version).exists() {
            return Err(TrainError::Registry(format!(
                "no model version {version} in {}",
                self.dir.display()
            )));
        }
        if self.active_version().as_deref() == Some(version) {
            return Err(TrainError::Registry(format!(
                "{version} is the active version; a shadow must be another one"
            )));
        }
        Model::load(&self.path(version))?;
        let tmp = self.dir.join("SHADOW.tmp");
        std::fs::write(&tmp, format!("{version}\n")).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, self.dir.join("SHADOW")).map_err(|e| self.io(e))?;
        Ok(())
    }

    /// Stops the shadow; returns the version that ran in shadow, if any.
    pub fn clear_shadow(&self) -> Result<Option<String>, TrainError> {
        let was = self.shadow_version();
        match std::fs::remove_file(self.dir.join("SHADOW")) {
            Ok(()) => Ok(was),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Path of a version's file.
    pub fn path(&self, version: &str) -> PathBuf {
        self.dir.join(format!("{version}.model"))
    }

    /// Loads the active model (None when none is active).
    pub fn load_active(&self) -> Result<Option<Model>, ModelError> {
        match self.active_version() {
            Some(v) => self.load(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Loads a version; its registry name is its version (whatever the file's header says).
    pub fn load(&self, version: &str) -> Result<Model, ModelError> {
        let mut m = Model::load(&self.path(version))?;
        m.meta.version = version.to_string();
        Ok(m)
    }

    /// Stores a new version (not yet active) and returns its id.
    pub fn add(&self, model: &mut Model) -> Result<String, TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
        let mut version = format!("v{stamp}");
        let mut n = 1;
        while self.path(&version).exists() {
            n += 1;
            version = format!("v{stamp}-{n}");
        }
        model.meta.version = version.clone();
        model.save(&self.path(&version))?;
        Ok(version)
    }

    /// Makes a version the active one.
    pub fn activate(&self, version: &str) -> Result<(), TrainError> {
        if !self.path(version).exists() {
            return Err(TrainError::Registry(format!(
                "no model version {version} in {}",
                self.dir.display()
            )));
        }
        Model::load(&self.path(version))?;
        let tmp = self.dir.join("ACTIVE.tmp");
        std::fs::write(&tmp, format!("{version}\n")).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, self.dir.join("ACTIVE")).map_err(|e| self.io(e))?;
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("HISTORY"))
            .map_err(|e| self.io(e))?;
        writeln!(h, "{version}").map_err(|e| self.io(e))?;
        // The shadowed version is the active one now: its shadow has ended.
        if self.shadow_version().as_deref() == Some(version) {
            self.clear_shadow()?;
        }
        Ok(())
    }

    /// Re-activates the version active before the current one.
    pub fn rollback(&self) -> Result<String, TrainError> {
        let history = std::fs::read_to_string(self.dir.join("HISTORY")).unwrap_or_default();
        let current = self.active_version();
        let previous = history
            .lines()
            .rev()
            .map(str::trim)
            .find(|v| Some(*v) != current.as_deref() && self.path(v).exists())
            .ok_or_else(|| TrainError::Registry("no earlier model version to roll back to".into()))?
            .to_string();
        self.activate(&previous)?;
        Ok(previous)
    }

    /// All versions, newest first.
    pub fn list(&self) -> Vec<VersionInfo> {
        let active = self.active_version();
        let shadow = self.shadow_version();
        let mut out: Vec<VersionInfo> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "model"))
            .filter_map(|p| {
                let version = p.file_stem()?.to_string_lossy().to_string();
                let (meta, problem) = match Model::load(&p) {
                    Ok(m) => (Some(serde_json::json!({"created_at": m.meta.created_at, "items": m.meta.items, "threshold": m.meta.threshold, "metrics": m.meta.metrics})), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                Some(VersionInfo {
                    active: active.as_deref() == Some(version.as_str()),
                    shadow: shadow.as_deref() == Some(version.as_str()),
                    version,
                    path: p,
                    meta,
                    problem,
                })
            })
            .collect();
        out.sort_by(|a, b| b.version.cmp(&a.version));
        out
    }
}

/// Loads the active model from `models`; when none exists yet, trains one from the corpus in
/// `training_data` and activates it, so a fresh checkout routes without a manual training step.
pub fn ensure_model(
    models: &Path,
    training_data: &Path,
    mailboxes: &[MailboxId],
    rules: &Arc<RuleSet>,
    routing: &RouterSettings,
    precision_target: f64,
) -> Result<Option<Model>, TrainError> {
    let reg = Registry::new(models);
    if let Some(m) = reg.load_active()? {
        return Ok(Some(m));
    }
    let items = load_corpus(training_data)?;
    if items.is_empty() {
        tracing::warn!(dir = %training_data.display(), "no training data and no model: routing by rules alone");
        return Ok(None);
    }
    tracing::info!(
        items = items.len(),
        "no active model: training one from the shipped corpus"
    );
    // The first start trains with the default settings (quick); `poststelle train` selects.
    let (mut model, report, _) = fit(&items, mailboxes, rules, routing, 5, None, precision_target)?;
    let version = reg.add(&mut model)?;
    reg.activate(&version)?;
    tracing::info!(
        version,
        top1 = report.combined.top1,
        straight_through = report.combined.straight_through,
        "model trained and activated"
    );
    Ok(Some(model))
}

/// How a newly trained version compares with the active one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Promotion {
    /// Why the new version must not replace the active one (empty: it may).
    pub problems: Vec<String>,
    /// On the recent corrections: how many there are, how many the new version gets right
    /// (held out in cross-validation), how many the active version gets right.
    pub recent: Option<(usize, usize, usize)>,
}

/// The promotion rule. A new version is *not worse* than the active one when
/// - its cross-validated top-1 is no more than half a point below the active version's, and
/// - on the corrections made since the active version was trained (`recent`: item ids), which
///   the active version never learned, it is right at least as often as the active version.
///
/// `active` routes with the active version; `report` is the new version's cross-validation on
/// `items`. Without an active version any new version may be activated.
pub fn judge_promotion(
    active: Option<&Router>,
    report: &CvReport,
    items: &[Item],
    recent: &std::collections::BTreeSet<String>,
) -> Promotion {
    let mut out = Promotion::default();
    let Some(active) = active else {
        return out;
    };
    let active_top1 = active
        .classifier()
        .model()
        .and_then(|m| m.meta.metrics["combined"]["top1"].as_f64());
    if let Some(c) = active_top1
        && report.combined.top1 + 0.005 < c
    {
        out.problems.push(format!(
            "cross-validated top-1 {:.1} % is below the active version's {:.1} %",
            report.combined.top1 * 100.0,
            c * 100.0
        ));
    }
    let recent_items: Vec<&Item> = items.iter().filter(|i| recent.contains(&i.id)).collect();
    if recent_items.is_empty() {
        return out;
    }
    let new_ok = report
        .predictions
        .iter()
        .filter(|p| recent.contains(&p.id) && p.predicted.as_deref() == Some(p.truth.as_str()))
        .count();
    let old_ok = recent_items
        .iter()
        .filter(|i| {
            let d = active.route_text(&i.text, i.is_mail(), false);
            d.mailbox.map(|m| m.to_string()).as_deref() == Some(i.mailbox.as_str())
        })
        .count();
    out.recent = Some((recent_items.len(), new_ok, old_ok));
    if new_ok < old_ok {
        out.problems.push(format!(
            "on the recent corrections the new version is right {new_ok} times, the active one {old_ok} times"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(truth: &str, predicted: &str, confidence: f64) -> Prediction {
        Prediction {
            id: String::new(),
            origin: String::new(),
            truth: truth.into(),
            predicted: Some(predicted.into()),
            confidence,
        }
    }

    #[test]
    fn min_items_follow_the_target() {
        assert_eq!(min_items_for(0.995), 200);
        assert_eq!(min_items_for(0.98), 50);
        assert_eq!(min_items_for(0.9), 20);
    }

    #[test]
    fn thresholds_reach_the_target_overall_and_per_mailbox() {
        // Mailbox 20: 60 predictions, wrong ones at 0.70 and 0.85; mailbox 63: 60, all right
        // from 0.50 up; mailbox 32: 5 (too few for its own threshold), one wrong at 0.95.
        let mut preds = Vec::new();
        for i in 0..58 {
            preds.push(pred("20", "20", 0.9 + i as f64 * 0.001));
        }
        preds.push(pred("63", "20", 0.70));
        preds.push(pred("63", "20", 0.85));
        for i in 0..60 {
            preds.push(pred("63", "63", 0.5 + i as f64 * 0.005));
        }
        for i in 0..4 {
            preds.push(pred("32", "32", 0.96 + i as f64 * 0.001));
        }
        preds.push(pred("20", "32", 0.95));
        let t = choose_thresholds(&preds, 0.98);
        assert_eq!(t.min_items, 50);
        // 20: from 0.85 up 58 of 59 are right (98.3 %); from 0.70 up 58 of 60 (96.7 %).
        assert_eq!(t.per_mailbox.get("20").copied(), Some(0.85));
        // 63: every prediction right, so its lowest confidence.
        assert_eq!(t.per_mailbox.get("63").copied(), Some(0.5));
        assert!(!t.per_mailbox.contains_key("32"));
        let global = t.global.expect("reached");
        assert!((t.for_mailbox("32") - global).abs() < 1e-12);
        let (st, precision) = t.apply(&preds);
        assert!(precision >= 0.98, "{precision}");
        assert!(st > 0.9, "{st}");
        // A mailbox that never reaches the target gets 1.0: nothing straight through.
        let mut bad: Vec<Prediction> = (0..50)
            .map(|i| pred("20", "20", 0.5 + i as f64 * 0.01))
            .collect();
        bad.push(pred("63", "20", 0.999));
        bad.push(pred("63", "20", 0.998));
        let t = choose_thresholds(&bad, 0.995);
        assert_eq!(t.per_mailbox.get("20"), None, "51 < 200 items");
        let t = choose_thresholds(&bad, 0.95);
        assert_eq!(
            t.per_mailbox.get("20").copied(),
            Some(0.5),
            "50 of 52 = 96 % >= 95 %"
        );
        let t = choose_thresholds(&bad, 0.97);
        assert_eq!(t.per_mailbox.get("20").copied(), Some(1.0));
        assert_eq!(t.apply(&bad).0, 0.0);
    }
}
