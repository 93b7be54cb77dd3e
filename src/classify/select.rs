//! Automatic model selection: which features, how much regularisation, which class weights and
//! how much naive Bayes, chosen by cross-validation inside the training data within a time
//! budget, so that a town's admins get a good model on their own history without tuning.
//!
//! The candidates are tried in order of how often they won on real text (the default first), so
//! a short budget still ends with a sound choice. Every feature setting is vectorized once per
//! inner fold; the SVM is trained for each cost and class weighting, and the naive Bayes weight
//! is varied on the stored scores (it only adds). The winner has the best inner top-1; ties go
//! to the lower log-loss after temperature scaling, then to the earlier (simpler) candidate.

use super::learners::{Learner, fit_linear};
use super::model::{
    DEFAULT_ZONE_WEIGHT, Example, Fitted, ModelSettings, Prepared, TrainParams, Vectorized,
    apply_platt, fit_platt, softmax_in_place,
};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One candidate's inner cross-validation result.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The settings tried.
    pub settings: ModelSettings,
    /// Inner top-1.
    pub top1: f64,
    /// Inner mean negative log-likelihood at the best temperature.
    pub log_loss: f64,
    /// Seconds its inner cross-validation took (training and scoring; our candidates share
    /// the vectorizing of their feature setting).
    pub seconds: f64,
}

/// What selection tried and chose.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// The winner.
    pub chosen: ModelSettings,
    /// The winner's calibration, fitted on its inner held-out scores.
    pub calibration: Calibration,
    /// Every candidate tried, in order.
    pub trials: Vec<Trial>,
    /// False when the time budget ended the search early.
    pub complete: bool,
    /// Seconds it took.
    pub seconds: f64,
    /// Inner folds.
    pub folds: usize,
}

impl Selection {
    /// Why the winner won, in German (for `train` and `eval`).
    pub fn why(&self) -> String {
        let best = self
            .trials
            .iter()
            .find(|t| t.settings == self.chosen)
            .map(|t| t.top1)
            .unwrap_or(0.0);
        let default = self
            .trials
            .iter()
            .find(|t| t.settings == ModelSettings::default())
            .map(|t| t.top1);
        let linfa: Vec<String> = self
            .trials
            .iter()
            .filter(|t| t.settings.learner != Learner::Own && t.settings != self.chosen)
            .map(|t| {
                format!(
                    "{} C={} {:.1} %",
                    t.settings.learner.label_de(),
                    t.settings.c,
                    t.top1 * 100.0
                )
            })
            .collect();
        format!(
            "gewählt: {} – {:.1} % Top-1 in {}-facher Kreuzvalidierung im Trainingsteil, bester von {} Versuchen{}{}{} ({:.0} s)",
            self.chosen.describe(),
            best * 100.0,
            self.folds,
            self.trials.len(),
            default
                .map(|d| format!("; Voreinstellung {:.1} %", d * 100.0))
                .unwrap_or_default(),
            if linfa.is_empty() {
                String::new()
            } else {
                format!("; linfa: {}", linfa.join(", "))
            },
            if self.complete {
                ""
            } else {
                "; Zeitbudget erschöpft, nicht alle Kandidaten geprüft"
            },
            self.seconds
        )
    }
}

/// Calibration of a model's scores: per-class sigmoids, then a softmax temperature.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Calibration {
    /// `(a, b)` per class (see [`apply_platt`]).
    pub platt: Vec<(f32, f32)>,
    /// Temperature of the softmax over the calibrated logits.
    pub temperature: f64,
}

impl Calibration {
    /// Fits per-class sigmoids on held-out `scores`, then the temperature on their logits.
    pub fn fit(scores: &[Vec<f32>], labels: &[usize], k: usize) -> Self {
        let platt: Vec<(f32, f32)> = (0..k)
            .map(|c| {
                let s: Vec<f32> = scores
                    .iter()
                    .map(|v| v.get(c).copied().unwrap_or(0.0))
                    .collect();
                let pos: Vec<bool> = labels.iter().map(|l| *l == c).collect();
                fit_platt(&s, &pos)
            })
            .collect();
        let logits: Vec<Vec<f32>> = scores
            .iter()
            .map(|s| {
                let mut l = s.clone();
                apply_platt(&platt, &mut l);
                l
            })
            .collect();
        let labels: Vec<Option<usize>> = labels.iter().map(|l| Some(*l)).collect();
        let temperature = fit_temperature(&logits, &labels);
        Calibration { platt, temperature }
    }
}

/// What selection searches.
#[derive(Debug, Clone, Copy)]
pub enum Search {
    /// These settings only: the inner cross-validation serves their calibration.
    Fixed(ModelSettings),
    /// Every candidate, within this time.
    Auto(Duration),
}

/// Feature settings in the order they are tried (the default first): word pairs, character
/// n-gram range, zone weight. Another zone weight is only a candidate where some item has an
/// address field or a Betreff (elsewhere it would repeat the default).
fn feature_candidates(with_zones: bool) -> Vec<Families> {
    let z = DEFAULT_ZONE_WEIGHT;
    let mut c = vec![(false, Some((2, 5)), z)];
    if with_zones {
        c.push((false, Some((2, 5)), 1.0));
    }
    c.extend([
        (false, None, z),
        (true, Some((2, 5)), z),
        (false, Some((3, 6)), z),
    ]);
    c
}

/// The feature families of a candidate: word pairs, character n-gram range, zone weight.
type Families = (bool, Option<(u8, u8)>, f32);

/// Cost and class weighting pairs, in order.
const COSTS: [(f32, bool); 6] = [
    (1.0, false),
    (0.5, false),
    (2.0, false),
    (1.0, true),
    (0.5, true),
    (2.0, true),
];

/// Naive Bayes weights tried on each SVM.
const NB_WEIGHTS: [f32; 3] = [0.5, 0.0, 1.0];

/// linfa's classifiers tried after ours (on the default feature families): learner and cost.
/// linfa's SVM is not among them: one fit over its dense kernel matrix takes minutes on a
/// town's corpus and cannot be stopped, so it would overrun any budget (see BENCHMARKS.md);
/// `eval --learner svm` measures it on its own.
const LINFA_CANDIDATES: [(Learner, f32); 3] = [
    (Learner::LinfaLogistic, 1.0),
    (Learner::LinfaLogistic, 10.0),
    (Learner::LinfaBayes, 1.0),
];

/// The settings of a linfa candidate.
fn linfa_settings(learner: Learner, c: f32) -> ModelSettings {
    ModelSettings {
        learner,
        c,
        balanced: false,
        nb_weight: 0.0,
        ..ModelSettings::default()
    }
}

/// Chooses settings for `examples` (labels `0..k`) by `folds`-fold cross-validation, stopping
/// after the budget (the first candidate always completes), and calibrates the winner on its
/// held-out scores.
pub fn select(
    examples: &[Example],
    k: usize,
    folds: usize,
    search: Search,
    params: &TrainParams,
) -> Selection {
    let started = Instant::now();
    let (budget, features, costs, nb_weights, linfa) = match search {
        Search::Auto(b) => (
            b,
            feature_candidates(
                examples
                    .iter()
                    .any(|e| e.zones.address.is_some() || e.zones.subject.is_some()),
            ),
            COSTS.to_vec(),
            NB_WEIGHTS.to_vec(),
            LINFA_CANDIDATES
                .iter()
                .map(|(l, c)| linfa_settings(*l, *c))
                .collect(),
        ),
        Search::Fixed(s) if s.learner == Learner::Own => (
            Duration::MAX,
            vec![(s.word_pairs, s.chars, s.zone_weight)],
            vec![(s.c, s.balanced)],
            vec![s.nb_weight],
            Vec::new(),
        ),
        Search::Fixed(s) => (Duration::MAX, Vec::new(), Vec::new(), Vec::new(), vec![s]),
    };
    let folds = folds.clamp(2, 10);
    let all_features: Vec<Families> = features
        .iter()
        .copied()
        .chain(
            linfa
                .iter()
                .map(|s: &ModelSettings| (s.word_pairs, s.chars, s.zone_weight)),
        )
        .collect();
    let widest = ModelSettings {
        word_pairs: all_features.iter().any(|f| f.0),
        chars: all_features
            .iter()
            .filter_map(|f| f.1)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1))),
        ..ModelSettings::default()
    };
    let prep = Prepared::new(examples, &widest);
    let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
    let assignment = stratified(&labels, folds, params.seed);
    let mut trials: Vec<Trial> = Vec::new();
    let mut held_out: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut complete = true;
    'features: for (fi, (pairs, chars, zone_weight)) in features.into_iter().enumerate() {
        if fi > 0 && started.elapsed() > budget {
            complete = false;
            break;
        }
        let block_started = Instant::now();
        let base = ModelSettings {
            word_pairs: pairs,
            chars,
            zone_weight,
            ..ModelSettings::default()
        };
        // Held-out scores per (cost index): SVM margins and naive Bayes scores per item.
        let mut svm: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); examples.len()]; costs.len()];
        let mut nb: Vec<Vec<f32>> = vec![Vec::new(); examples.len()];
        for f in 0..folds {
            if fi > 0 && started.elapsed() > budget.saturating_mul(2) {
                // Far over budget: stop even inside a candidate (its partial result is dropped).
                complete = false;
                break 'features;
            }
            let train: Vec<usize> = (0..examples.len())
                .filter(|&i| assignment[i] != f)
                .collect();
            let test: Vec<usize> = (0..examples.len())
                .filter(|&i| assignment[i] == f)
                .collect();
            let v = Vectorized::new(&prep, &train, &base);
            let xs: Vec<_> = test.iter().map(|&i| v.transform(&prep, i)).collect();
            for (ci, (c, balanced)) in costs.iter().enumerate() {
                let s = ModelSettings {
                    c: *c,
                    balanced: *balanced,
                    ..base
                };
                let fitted = Fitted::train(&v, k, &s, params);
                for (x, &i) in xs.iter().zip(&test) {
                    svm[ci][i] = fitted.svm_scores(x);
                    if ci == 0 {
                        nb[i] = fitted.nb_scores(x);
                    }
                }
            }
        }
        let per_cost = block_started.elapsed().as_secs_f64() / costs.len().max(1) as f64;
        for (ci, (c, balanced)) in costs.iter().enumerate() {
            for &w in &nb_weights {
                let scores: Vec<Vec<f32>> = svm[ci]
                    .iter()
                    .zip(&nb)
                    .map(|(s, n)| s.iter().zip(n).map(|(a, b)| a + w * b).collect())
                    .collect();
                let (top1, log_loss) = quality(&scores, &labels);
                trials.push(Trial {
                    settings: ModelSettings {
                        c: *c,
                        balanced: *balanced,
                        nb_weight: w,
                        ..base
                    },
                    top1,
                    log_loss,
                    seconds: per_cost,
                });
                held_out.push(scores);
            }
        }
    }
    // linfa's classifiers, after ours, while the budget lasts (a fixed one always runs).
    let fixed = matches!(search, Search::Fixed(_));
    for s in linfa {
        if !fixed && (!complete || started.elapsed() > budget) {
            complete = false;
            break;
        }
        let t = Instant::now();
        let mut scores: Vec<Vec<f32>> = vec![Vec::new(); examples.len()];
        let mut failed = None;
        for f in 0..folds {
            if !fixed && started.elapsed() > budget.saturating_mul(2) {
                // Far over budget: this candidate is dropped (one fit itself cannot be stopped).
                complete = false;
                break;
            }
            let train: Vec<usize> = (0..examples.len())
                .filter(|&i| assignment[i] != f)
                .collect();
            let v = Vectorized::new(&prep, &train, &s);
            match fit_linear(v.items(), v.labels(), k, v.dims(), s.learner, s.c) {
                Ok(lin) => {
                    for i in (0..examples.len()).filter(|&i| assignment[i] == f) {
                        scores[i] = lin.scores(&v.transform(&prep, i));
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(learner = ?s.learner, error = %e, "linfa candidate failed, skipped");
            continue;
        }
        if scores.iter().any(|v| v.is_empty()) {
            break;
        }
        let (top1, log_loss) = quality(&scores, &labels);
        trials.push(Trial {
            settings: s,
            top1,
            log_loss,
            seconds: t.elapsed().as_secs_f64(),
        });
        held_out.push(scores);
    }
    let best = winner(&trials);
    let (chosen, calibration) = match best {
        Some(i) => (
            trials[i].settings,
            Calibration::fit(&held_out[i], &labels, k),
        ),
        None => (
            match search {
                Search::Fixed(s) => s,
                Search::Auto(_) => ModelSettings::default(),
            },
            Calibration::default(),
        ),
    };
    Selection {
        chosen,
        calibration,
        trials,
        complete,
        seconds: started.elapsed().as_secs_f64(),
        folds,
    }
}

/// The index of the winning trial: the best inner top-1, ties to the lower log-loss, then to
/// the earlier candidate (ours come before linfa's).
fn winner(trials: &[Trial]) -> Option<usize> {
    trials
        .iter()
        .enumerate()
        .min_by(|(ia, a), (ib, b)| {
            b.top1
                .total_cmp(&a.top1)
                .then(a.log_loss.total_cmp(&b.log_loss))
                .then(ia.cmp(ib))
        })
        .map(|(i, _)| i)
}

/// Top-1 and mean negative log-likelihood at the best temperature of held-out scores.
fn quality(scores: &[Vec<f32>], labels: &[usize]) -> (f64, f64) {
    let n = scores.len().max(1) as f64;
    let top1 = scores
        .iter()
        .zip(labels)
        .filter(|(s, y)| {
            s.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .is_some_and(|(c, _)| c == **y)
        })
        .count() as f64
        / n;
    let labels: Vec<Option<usize>> = labels.iter().map(|l| Some(*l)).collect();
    let t = fit_temperature(scores, &labels);
    let nll = nll_at(scores, &labels, t) / n;
    (top1, nll)
}

/// The temperature minimising the negative log-likelihood of held-out scores (a geometric grid
/// from 0.005 to 5, then refined around the best).
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[Option<usize>]) -> f64 {
    let nll = |t: f64| nll_at(logits, labels, t);
    let mut best = (1.0f64, f64::INFINITY);
    let mut t = 0.005f64;
    while t <= 5.0 {
        let v = nll(t);
        if v < best.1 {
            best = (t, v);
        }
        t *= 1.1;
    }
    // Refine: golden-section search inside the neighbouring grid cells.
    let (mut lo, mut hi) = (best.0 / 1.1, best.0 * 1.1);
    let g = 0.618_033_988_75;
    for _ in 0..20 {
        let a = hi - g * (hi - lo);
        let b = lo + g * (hi - lo);
        if nll(a) < nll(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    let t = (lo + hi) / 2.0;
    if nll(t) < best.1 { t } else { best.0 }
}

/// Summed negative log-likelihood of the labelled items' softmax(logits / t).
fn nll_at(logits: &[Vec<f32>], labels: &[Option<usize>], t: f64) -> f64 {
    logits
        .iter()
        .zip(labels)
        .filter_map(|(l, y)| {
            let y = (*y)?;
            let mut p = l.clone();
            softmax_in_place(&mut p, t as f32);
            Some(-f64::from(p.get(y).copied().unwrap_or(1e-9).max(1e-9)).ln())
        })
        .sum()
}

/// Stratified fold assignment over labels `0..`: the items of each class, in class order, are
/// shuffled (xorshift, seeded) and dealt round-robin over `k` folds. Deterministic.
pub fn stratified(labels: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![0; labels.len()];
    let mut rng = seed | 1;
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        for i in (1..idx.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            idx.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for (n, &i) in idx.iter().enumerate() {
            out[i] = n % k;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::zones::from_text;

    fn examples() -> Vec<Example> {
        let topics = [
            [
                "Hundesteuer",
                "Hund",
                "Steuermarke",
                "Grundsteuer",
                "Bescheid",
            ],
            ["Biotonne", "Restmüll", "Sperrmüll", "Abholung", "Tonne"],
            [
                "Bauantrag",
                "Carport",
                "Baugenehmigung",
                "Flurstück",
                "Bauvorlage",
            ],
        ];
        let mut out = Vec::new();
        for (label, words) in topics.iter().enumerate() {
            for i in 0..24 {
                let text = format!(
                    "Sehr geehrte Damen und Herren, es geht um {} und {} (Vorgang {i}), bitte {}.",
                    words[i % 5],
                    words[(i + 2) % 5],
                    words[(i + 3) % 5]
                );
                out.push(Example {
                    zones: from_text(&text, &[]),
                    label,
                });
            }
        }
        out
    }

    #[test]
    fn platt_recovers_a_known_sigmoid() {
        // Scores spread evenly; positives drawn with probability σ(2s - 1), deterministically.
        let scores: Vec<f32> = (0..2000).map(|i| (i as f32 / 1000.0) - 1.0).collect();
        let positive: Vec<bool> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = 1.0 / (1.0 + (-(2.0 * s - 1.0)).exp());
                // A low-discrepancy sequence instead of random draws.
                ((i as f32 * 0.618_034) % 1.0) < p
            })
            .collect();
        let (a, b) = fit_platt(&scores, &positive);
        assert!((a - 2.0).abs() < 0.3, "a = {a}");
        assert!((b + 1.0).abs() < 0.2, "b = {b}");
    }

    #[test]
    fn selection_tries_candidates_and_calibrates_the_winner() {
        let ex = examples();
        let params = TrainParams::default();
        let sel = select(&ex, 3, 3, Search::Auto(Duration::from_secs(60)), &params);
        assert!(sel.complete, "{}", sel.why());
        let with_zones = ex
            .iter()
            .any(|e| e.zones.address.is_some() || e.zones.subject.is_some());
        assert_eq!(
            sel.trials.len(),
            feature_candidates(with_zones).len() * COSTS.len() * NB_WEIGHTS.len()
                + LINFA_CANDIDATES.len()
        );
        // Another zone weight is a candidate only where there are zones.
        let other_zone_weight = |z: bool| {
            feature_candidates(z)
                .iter()
                .filter(|f| f.2 != DEFAULT_ZONE_WEIGHT)
                .count()
        };
        assert_eq!(other_zone_weight(false), 0);
        assert_eq!(other_zone_weight(true), 1);
        assert_eq!(
            sel.trials
                .iter()
                .filter(|t| t.settings.learner != Learner::Own)
                .count(),
            LINFA_CANDIDATES.len()
        );
        let best = sel.trials.iter().map(|t| t.top1).fold(0.0, f64::max);
        let chosen = sel
            .trials
            .iter()
            .find(|t| t.settings == sel.chosen)
            .expect("the chosen settings were tried");
        assert_eq!(chosen.top1, best);
        assert!(best > 0.9, "{}", sel.why());
        assert_eq!(sel.calibration.platt.len(), 3);
        assert!(sel.calibration.temperature > 0.0);
        assert!(sel.why().contains("gewählt"));
        // A fixed search tries exactly the given settings.
        let fixed = select(&ex, 3, 3, Search::Fixed(sel.chosen), &params);
        assert_eq!(fixed.trials.len(), 1);
        assert_eq!(fixed.chosen, sel.chosen);
    }

    #[test]
    fn a_linfa_candidate_that_measures_better_wins_and_a_fixed_one_is_kept() {
        let trial = |learner, top1, log_loss| Trial {
            settings: ModelSettings {
                learner,
                ..ModelSettings::default()
            },
            top1,
            log_loss,
            seconds: 0.0,
        };
        // Better top-1 wins whoever made it; equal top-1 goes to the lower log-loss; a full
        // tie to the earlier candidate (ours).
        let t = [
            trial(Learner::Own, 0.90, 0.30),
            trial(Learner::LinfaLogistic, 0.91, 0.50),
        ];
        assert_eq!(winner(&t), Some(1));
        let t = [
            trial(Learner::Own, 0.90, 0.30),
            trial(Learner::LinfaBayes, 0.90, 0.20),
        ];
        assert_eq!(winner(&t), Some(1));
        let t = [
            trial(Learner::Own, 0.90, 0.30),
            trial(Learner::LinfaSvm, 0.90, 0.30),
        ];
        assert_eq!(winner(&t), Some(0));
        // A fixed linfa learner is what selection returns, calibrated on its own scores.
        let ex = examples();
        let fixed = ModelSettings {
            learner: Learner::LinfaLogistic,
            nb_weight: 0.0,
            ..ModelSettings::default()
        };
        let sel = select(&ex, 3, 3, Search::Fixed(fixed), &TrainParams::default());
        assert_eq!(sel.chosen, fixed);
        assert_eq!(sel.trials.len(), 1);
        assert!(sel.trials[0].top1 > 0.9, "{}", sel.why());
        assert_eq!(sel.calibration.platt.len(), 3);
        assert!(sel.why().contains("linfa logistische Regression"));
    }

    #[test]
    fn a_zero_budget_still_completes_the_first_candidate() {
        let ex = examples();
        let sel = select(
            &ex,
            3,
            3,
            Search::Auto(Duration::ZERO),
            &TrainParams::default(),
        );
        assert!(!sel.complete);
        assert_eq!(sel.trials.len(), COSTS.len() * NB_WEIGHTS.len());
        assert!(sel.why().contains("Zeitbudget"));
    }
}
