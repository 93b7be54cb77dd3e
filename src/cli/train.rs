//! `train` and `eval`: model versions from the corpus and corrections, and their evaluation.

use crate::app::router_settings;
use crate::classify::rules::RuleSet;
use crate::classify::{Classifier, Router};
use crate::config::Settings;
use crate::train::{Registry, judge_promotion};
use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The corpus: a JSON Lines file, else the shipped training data.
pub fn corpus(settings: &Settings, data: Option<&Path>) -> anyhow::Result<Vec<crate::train::Item>> {
    let items = match data {
        Some(f) => crate::train::load_jsonl(f)?,
        None => crate::train::load_corpus(&settings.classify.training_data)?,
    };
    if items.is_empty() {
        bail!("no training items found");
    }
    Ok(items)
}

/// A step of a training run, for people watching it (the admin page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainStep {
    /// Reading the corpus and the corrections.
    Loading,
    /// Cross-validating and training the new version (the long part).
    Fitting,
    /// Comparing it with the active version.
    Judging,
}

impl TrainStep {
    /// The step in German.
    pub fn label_de(self) -> &'static str {
        match self {
            TrainStep::Loading => "Korpus und Korrekturen werden gelesen",
            TrainStep::Fitting => "Kreuzvalidierung und Training laufen",
            TrainStep::Judging => "Vergleich mit der aktiven Version",
        }
    }
}

/// What a training run made.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The new version (kept in the registry whether activated or not).
    pub version: String,
    /// Training items, corrections among them, and corrections newer than the active model.
    pub items: usize,
    /// Corrections among the items.
    pub corrections: usize,
    /// Corrections the active version never learned.
    pub recent: usize,
    /// Seconds the training took.
    pub seconds: f64,
    /// Cross-validated top-1 (rules + model).
    pub top1: f64,
    /// Straight-through share at the thresholds (cross-validated).
    pub straight_through: f64,
    /// Precision of that share (cross-validated).
    pub precision: f64,
    /// The precision target the thresholds were chosen for.
    pub precision_target: f64,
    /// The overall review threshold chosen.
    pub threshold: Option<f64>,
    /// Thresholds of single mailboxes (where their data sufficed).
    pub thresholds: std::collections::BTreeMap<String, f64>,
    /// On the recent corrections: (count, new version right, active version right).
    pub recent_verdict: Option<(usize, usize, usize)>,
    /// Whether it is the active version now.
    pub activated: bool,
    /// Why it was not activated (or was only by force).
    pub problems: Vec<String>,
    /// Which settings automatic selection chose, and why (None: the defaults were used).
    pub selection: Option<String>,
    /// Expected calibration error of the model's held-out confidences.
    pub ece: f64,
}

/// A selection budget in seconds as an option (0 = no selection).
fn budget_of(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// Trains a new version on the corpus and the corrections people made, and activates it when
/// [`judge_promotion`] finds it not worse than the active one (or with `force`). `step` is told
/// each step as it begins.
pub async fn train_version(
    settings: &Settings,
    data: Option<&Path>,
    force: bool,
    folds: usize,
    budget: u64,
    step: &(dyn Fn(TrainStep) + Send + Sync),
) -> anyhow::Result<TrainOutcome> {
    step(TrainStep::Loading);
    let mut items = corpus(settings, data)?;
    let reg = Registry::new(&settings.classify.models);
    let current = match reg.load_active() {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "the active model cannot be read; the new version will replace it");
            None
        }
    };
    // Corrections people made join the training set (the store may not exist yet). Those made
    // after the active model was trained are "recent": the active model never learned them.
    let mut recent = BTreeSet::new();
    if data.is_none()
        && let Ok(store) = crate::store::Store::open(&settings.store.url).await
    {
        for (id, text, mailbox, at) in store.corrections_for_training().await? {
            if current.as_ref().is_none_or(|m| at > m.meta.created_at) {
                recent.insert(id.clone());
            }
            items.push(crate::train::Item {
                id,
                text,
                mailbox,
                origin: "correction".into(),
                kind: None,
            });
        }
    }
    let rules = Arc::new(RuleSet::load_dir(&settings.classify.rules, &[])?);
    let routing = router_settings(settings);
    let started = std::time::Instant::now();
    step(TrainStep::Fitting);
    let (mut model, report, selection) = crate::train::fit(
        &items,
        &settings.mailbox_ids(),
        &rules,
        &routing,
        folds,
        budget_of(budget),
        settings.classify.precision_target,
    )?;
    let version = reg.add(&mut model)?;
    let seconds = started.elapsed().as_secs_f64();
    step(TrainStep::Judging);
    let active = current.map(|m| {
        let classifier = Classifier::new(
            rules.clone(),
            Some(Arc::new(m)),
            settings.mailbox_ids(),
            settings.classify.review_threshold,
        );
        Router::new(Arc::new(classifier), routing.clone())
    });
    let verdict = judge_promotion(active.as_ref(), &report, &items, &recent);
    let activated = verdict.problems.is_empty() || force;
    if activated {
        reg.activate(&version)?;
        if let Ok(store) = crate::store::Store::open(&settings.store.url).await {
            store
                .record_model(
                    &version,
                    &reg.path(&version).display().to_string(),
                    &model.meta.metrics,
                    true,
                )
                .await?;
        }
    }
    Ok(TrainOutcome {
        version,
        items: items.len(),
        corrections: items.iter().filter(|i| i.origin == "correction").count(),
        recent: recent.len(),
        seconds,
        top1: report.combined.top1,
        straight_through: report.target.straight_through,
        precision: report.target.precision,
        precision_target: report.target.target,
        threshold: report.target.global,
        thresholds: report.target.per_mailbox.clone(),
        recent_verdict: verdict.recent,
        activated,
        problems: verdict.problems,
        selection: selection.map(|s| s.why()),
        ece: report.model.ece,
    })
}

/// `train`: [`train_version`], reported on the terminal.
pub async fn train(
    settings: &Settings,
    data: Option<&Path>,
    force: bool,
    folds: usize,
    budget: u64,
) -> anyhow::Result<ExitCode> {
    let o = train_version(settings, data, force, folds, budget, &|_| {}).await?;
    if let Some(why) = &o.selection {
        println!("model settings {why}");
    }
    let version = &o.version;
    println!(
        "trained {version} on {} items ({} corrections, {} recent) in {:.1} s: top-1 {:.1} %, straight-through {:.1} % at precision {:.1} % (target {:.1} %), threshold {}",
        o.items,
        o.corrections,
        o.recent,
        o.seconds,
        o.top1 * 100.0,
        o.straight_through * 100.0,
        o.precision * 100.0,
        o.precision_target * 100.0,
        o.threshold
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|| "-".into())
    );
    if !o.thresholds.is_empty() {
        let own: Vec<String> = o
            .thresholds
            .iter()
            .map(|(m, t)| format!("{m} {t:.3}"))
            .collect();
        println!("thresholds of their own: {}", own.join(", "));
    }
    if let Some((n, new_ok, old_ok)) = o.recent_verdict {
        println!(
            "recent corrections ({n}): new version right on {new_ok} (held out in cross-validation), active version right on {old_ok}"
        );
    }
    if o.activated {
        println!(
            "activated {version}{}",
            if o.problems.is_empty() {
                ""
            } else {
                " (forced)"
            }
        );
    } else {
        println!(
            "NOT activated: {}.\nThe version is kept; activate it anyway with `poststelle model activate {version}` or `train --force`.",
            o.problems.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `eval --live`: the precision per mailbox measured by the Stichprobe, from the database.
pub async fn eval_live(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let store = crate::store::Store::open(&settings.store.url)
        .await
        .context("opening the store")?;
    let measured = crate::sample::measure(&store.judged_samples(None).await?);
    let raises = store.threshold_raises().await?;
    let open = store.open_sample_count().await?;
    let target = settings.classify.precision_target;
    if json {
        let rows: Vec<serde_json::Value> = measured
            .iter()
            .map(|m| {
                serde_json::json!({
                    "mailbox": m.mailbox, "judged": m.judged, "confirmed": m.confirmed,
                    "overturned": m.overturned, "precision": m.precision,
                    "lower": m.lower, "upper": m.upper, "below_target": m.upper < target,
                    "raised_threshold": raises.get(&m.mailbox).map(|r| r.threshold),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"target": target, "open": open, "mailboxes": rows})
        );
    } else {
        print!(
            "{}",
            crate::sample::live_table(&measured, &raises, open, target)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `eval`: cross-validates rules, model, both combined and the router (as the daemon routes),
/// plus the held-out set and scanned twins. `learner` fixes the learner (no selection).
#[allow(clippy::too_many_arguments)]
pub fn eval(
    settings: &Settings,
    json: bool,
    data: Option<&Path>,
    folds: usize,
    twins: Option<&Path>,
    export_folds: Option<&Path>,
    budget: u64,
    learner: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let learner = match learner {
        Some(name) => Some(
            crate::classify::learners::Learner::parse(name)
                .ok_or_else(|| anyhow::anyhow!("unbekanntes Lernverfahren {name:?}"))?,
        ),
        None => None,
    };
    let items = corpus(settings, data)?;
    let rules = Arc::new(crate::classify::rules::RuleSet::load_dir(
        &settings.classify.rules,
        &[],
    )?);
    let configured = if data.is_some() {
        Vec::new()
    } else {
        settings.mailbox_ids()
    };
    let classes = crate::train::classes_for(&items, &configured);
    let mut params = crate::classify::model::TrainParams {
        selection_budget: if learner.is_some() {
            None
        } else {
            budget_of(budget)
        },
        precision_target: settings.classify.precision_target,
        ..Default::default()
    };
    if let Some(l) = learner {
        params.settings = crate::classify::model::ModelSettings {
            learner: l,
            ..Default::default()
        };
        if l != crate::classify::learners::Learner::Own {
            params.settings.nb_weight = 0.0;
        }
    }
    if let Some(out) = export_folds {
        let folds = crate::train::stratified_folds(&items, folds, params.seed);
        let lines: Vec<String> = items
            .iter()
            .zip(folds)
            .map(|(i, f)| {
                serde_json::json!({"id": i.id, "mailbox": i.mailbox, "fold": f}).to_string()
            })
            .collect();
        std::fs::write(out, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let twins = match twins {
        Some(p) => Some(
            crate::train::load_jsonl(p)?
                .into_iter()
                .map(|i| (i.id, i.text))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
        None => None,
    };
    let started = std::time::Instant::now();
    let routing = router_settings(settings);
    let report = crate::train::cross_validate(
        &items,
        &classes,
        &rules,
        &routing,
        folds,
        &params,
        twins.as_ref(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    // The held-out set: written separately, never seen by training or by the rules' authors.
    let holdout_items = if data.is_none() {
        crate::train::load_dir(&settings.classify.training_data.join("holdout"))?
    } else {
        Vec::new()
    };
    let holdout = if holdout_items.is_empty() {
        None
    } else {
        Some(crate::train::evaluate_holdout(
            &items,
            &holdout_items,
            &classes,
            &rules,
            &routing,
            &params,
            &report.target,
        )?)
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "items": report.items, "folds": report.folds, "temperature": report.temperature,
                "top1": report.combined.top1, "straight_through": report.combined.straight_through,
                "threshold": report.combined.threshold,
                "rules": report.rules, "model": report.model, "combined": report.combined,
                "routed": report.routed, "target": report.target,
                "twins": report.twins, "holdout": holdout, "seconds": seconds,
                "ece": report.model.ece, "selections": report.selections,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} items, {}-fold stratified cross-validation, temperature {:.3}, {:.1} s",
        report.items, report.folds, report.temperature, seconds
    );
    if report.selections.is_empty() {
        println!(
            "model settings: {} (defaults, no selection)",
            params.settings.describe()
        );
    }
    for (f, s) in report.selections.iter().enumerate() {
        println!("fold {}: model settings {}", f + 1, s.why());
    }
    println!(
        "expected calibration error (model, 10 bins): {:.3}",
        report.model.ece
    );
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.1} %", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    for (name, r) in [("Modell", &report.model), ("kombiniert", &report.combined)] {
        println!(
            "linfa-Metriken ({name}): Genauigkeit {}, Makro-F1 {}, MCC {}",
            pct(r.linfa.accuracy),
            num(r.linfa.macro_f1),
            num(r.linfa.mcc)
        );
    }
    for (name, r) in [
        ("rules", &report.rules),
        ("model", &report.model),
        ("combined", &report.combined),
        ("routed", &report.routed),
    ] {
        println!(
            "{name:<9} top-1 {:5.1} %   straight-through {:5.1} % at precision {:5.1} % (threshold {})",
            r.top1 * 100.0,
            r.straight_through * 100.0,
            r.auto_precision * 100.0,
            r.threshold
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    let tt = &report.target;
    println!(
        "\nprecision target {:.1} % (classify.precision_target): threshold {} overall; straight-through {:.1} % at precision {:.1} %",
        tt.target * 100.0,
        tt.global
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|| "- (not reached: everything to review)".into()),
        tt.straight_through * 100.0,
        tt.precision * 100.0
    );
    if tt.per_mailbox.is_empty() {
        println!(
            "  no mailbox has the {} predictions needed for a threshold of its own",
            tt.min_items
        );
    } else {
        let own: Vec<String> = tt
            .per_mailbox
            .iter()
            .map(|(m, t)| format!("{m} {t:.3}"))
            .collect();
        println!(
            "  thresholds of their own (mailboxes with at least {} predictions): {}",
            tt.min_items,
            own.join(", ")
        );
    }
    if let Some(t) = &report.twins {
        println!(
            "\nscanned twins ({} items, same folds): clean top-1 {:.1} % / straight-through {:.1} %   \
             scanned top-1 {:.1} % / straight-through {:.1} %   (model alone on scans {:.1} %, rules alone {:.1} %)",
            t.items,
            t.clean.top1 * 100.0,
            t.clean.straight_through * 100.0,
            t.scanned.top1 * 100.0,
            t.scanned.straight_through * 100.0,
            t.scanned_model.top1 * 100.0,
            t.scanned_rules.top1 * 100.0
        );
        for c in &t.changed {
            println!(
                "  {:<10} truth {:<5} clean -> {:<5} scan -> {:<5} ({:.2})",
                c.id,
                c.truth,
                c.clean.as_deref().unwrap_or("-"),
                c.scanned.as_deref().unwrap_or("-"),
                c.scanned_confidence
            );
        }
    }
    if let Some(h) = &holdout {
        println!(
            "\nheld-out set ({} items; trained on the whole corpus):",
            h.items
        );
        for (name, r) in [
            ("rules", &h.rules),
            ("model", &h.model),
            ("combined", &h.combined),
            ("routed", &h.routed),
        ] {
            println!(
                "  {name:<9} top-1 {:5.1} %   straight-through {:5.1} % at precision {:5.1} %",
                r.top1 * 100.0,
                r.straight_through * 100.0,
                r.auto_precision * 100.0
            );
        }
        println!(
            "  linfa-Metriken (Modell, über linfas Predict): Genauigkeit {}, Makro-F1 {}, MCC {}",
            pct(h.model_metrics.accuracy),
            num(h.model_metrics.macro_f1),
            num(h.model_metrics.mcc)
        );
        println!(
            "  at the thresholds chosen on the corpus for the target ({} overall): straight-through {:.1} %, precision {:.1} %",
            h.threshold
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into()),
            h.straight_through_at_threshold * 100.0,
            h.precision_at_threshold * 100.0
        );
        if !h.errors.is_empty() {
            println!(
                "  wrong (routed or model alone): id, truth, rules, model (p), routed (confidence)"
            );
        }
        for e in &h.errors {
            println!(
                "  {:<12} {:<5} rules {:<5} model {:<5} ({:.2})  routed {:<5} ({:.2})",
                e.id,
                e.truth,
                e.rules.as_deref().unwrap_or("-"),
                e.model.as_deref().unwrap_or("-"),
                e.model_confidence,
                e.routed.as_deref().unwrap_or("-"),
                e.routed_confidence
            );
        }
    }
    println!("\nje Postfach (kombiniert, linfa): Präzision / Trefferquote / n");
    for (m, (p, r)) in &report.combined.linfa.per_class {
        let n = report.combined.per_mailbox.get(m).map(|v| v.2).unwrap_or(0);
        println!("  {m:<8} {:>7} {:>7} {n:4}", pct(*p), pct(*r));
    }
    println!("\nreliability (model): confidence bin, n, mean confidence, accuracy");
    for (lo, n, mean, acc) in &report.model.reliability {
        println!(
            "  {lo:.1}-{:.1} {n:5} {:5.1} % {:5.1} %",
            lo + 0.1,
            mean * 100.0,
            acc * 100.0
        );
    }
    println!("\nconfusion (combined; rows = truth, columns = predicted, off-diagonal only):");
    for (t, row) in &report.combined.confusion {
        let off: Vec<String> = row
            .iter()
            .filter(|(p, _)| *p != t)
            .map(|(p, n)| format!("{p}:{n}"))
            .collect();
        if !off.is_empty() {
            println!("  {t:<8} -> {}", off.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
