//! Model training time on 10,000 items and prediction throughput on one core.
//!
//! Run: `cargo bench --bench model_speed` (add `-- --json` for one JSON line). Options:
//! `--learner own|logistic|bayes|svm` trains our model or one of linfa's classifiers (on
//! χ²-selected features, read back into our model's form, so prediction runs the same path);
//! `--items N` trains on N items instead of 10,000 (N = 0: the corpus itself, once).
//!
//! The 10,000 training items are the shipped corpus repeated, each copy made distinct by a
//! numbered line (timing only; quality is measured by `poststelle eval`). Prediction runs from
//! raw text (tokenising, zones, features, probabilities) on one thread. The reference, measured
//! in the same run, is the goals: 10 s for training, 20,000 documents/s for prediction.

use poststelle::classify::learners::Learner;
use poststelle::classify::model::{Example, Model, ModelSettings, TrainParams};
use poststelle::domain::MailboxId;
use poststelle::extract::zones::from_text;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let learner = value("--learner")
        .map(|l| Learner::parse(&l).expect("--learner own|logistic|bayes|svm"))
        .unwrap_or_default();
    let items: Option<usize> = value("--items").map(|n| n.parse().expect("--items N"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = poststelle::train::load_corpus(&root.join("training-data")).expect("corpus");
    assert!(!corpus.is_empty(), "no corpus");
    let classes: Vec<MailboxId> = poststelle::train::classes_for(&corpus, &[]);
    let markers = vec!["Stadt Musterstadt".to_string()];
    let n = match items {
        Some(0) => corpus.len(),
        Some(n) => n,
        None => 10_000,
    };
    let texts: Vec<(String, usize)> = (0..n)
        .map(|i| {
            let it = &corpus[i % corpus.len()];
            let label = classes
                .iter()
                .position(|c| c.as_str() == it.mailbox)
                .expect("class");
            if items == Some(0) {
                (it.text.clone(), label)
            } else {
                (format!("{}\nVorgang {i}", it.text), label)
            }
        })
        .collect();
    let params = TrainParams {
        settings: ModelSettings {
            learner,
            nb_weight: if learner == Learner::Own { 0.5 } else { 0.0 },
            ..ModelSettings::default()
        },
        ..TrainParams::default()
    };
    let t = Instant::now();
    let examples: Vec<Example> = texts
        .iter()
        .map(|(t, l)| Example {
            zones: from_text(t, &markers),
            label: *l,
        })
        .collect();
    let model = Model::train(&examples, classes.clone(), &params).expect("train");
    let train_s = t.elapsed().as_secs_f64();

    let docs: Vec<&str> = corpus.iter().map(|i| i.text.as_str()).collect();
    // Median of 5 rounds over the corpus texts (the machine's noise is large).
    let mut rates = Vec::new();
    let mut sink = 0.0;
    let mut predicted = 0;
    for _ in 0..5 {
        let rounds = (10_000 / docs.len()).max(1);
        let t = Instant::now();
        for _ in 0..rounds {
            for d in &docs {
                let p = model.predict(&from_text(d, &markers));
                sink += p[0];
            }
        }
        predicted += rounds * docs.len();
        rates.push((rounds * docs.len()) as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let per_s = rates[2];
    std::hint::black_box(sink);
    let mean_chars = docs.iter().map(|d| d.chars().count()).sum::<usize>() / docs.len();
    if json {
        println!(
            "{}",
            serde_json::json!({"learner": learner, "train_items": n, "train_seconds": train_s, "predict_docs": predicted, "predict_per_second": per_s, "mean_chars": mean_chars})
        );
    } else {
        println!(
            "model_speed: {}, {} classes, mean document {mean_chars} characters",
            learner.label_de(),
            classes.len()
        );
        println!(
            "  training on {n} items: {train_s:.2} s   (goal 10 s: ratio {:.2})",
            train_s / 10.0
        );
        println!(
            "  prediction, one core: {per_s:.0} documents/s   (goal 20000/s: ratio {:.2})",
            per_s / 20_000.0
        );
    }
}
