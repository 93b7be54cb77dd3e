//! Does learning from corrections help? A simulation on the corpus, with nothing seen twice.
//!
//! Run: `cargo bench --bench correction_loop`
//!
//! The corpus is split into five stratified folds (as `poststelle eval` does). Version 1 is
//! trained on folds 0-2. Fold 3 plays a day's post: version 1 routes it and a department
//! corrects up to 50 of its misroutes (the correction carries the right mailbox). Version 2 is
//! trained on folds 0-2 plus those corrections. Both versions then route fold 4, which neither
//! saw: the gain is measured on its items "of that kind" (whose true mailbox is one the
//! corrections were about) and on all of it. Version 1 is the reference, measured in the same
//! run. The model alone is measured: rules do not learn from corrections.

use poststelle::classify::model::{Example, Model, TrainParams};
use poststelle::domain::MailboxId;
use poststelle::extract::zones::from_text;
use poststelle::train::Item;
use std::collections::BTreeSet;
use std::path::Path;

fn examples(items: &[Item], classes: &[MailboxId], markers: &[String]) -> Vec<Example> {
    items
        .iter()
        .filter_map(|i| {
            Some(Example {
                zones: from_text(&i.text, markers),
                label: classes.iter().position(|c| c.as_str() == i.mailbox)?,
            })
        })
        .collect()
}

fn predict(model: &Model, item: &Item, markers: &[String]) -> String {
    let p = model.predict(&from_text(&item.text, markers));
    let best = p
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    model.meta.classes[best].to_string()
}

fn accuracy(model: &Model, items: &[&Item], markers: &[String]) -> f64 {
    let ok = items
        .iter()
        .filter(|i| predict(model, i, markers) == i.mailbox)
        .count();
    ok as f64 / items.len().max(1) as f64
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = poststelle::train::load_corpus(&root.join("training-data")).expect("corpus");
    let holdout =
        poststelle::train::load_dir(&root.join("training-data/holdout")).expect("holdout");
    assert!(!holdout.is_empty(), "training-data/holdout is empty");
    let markers = vec!["Stadt Musterstadt".to_string()];
    let classes = poststelle::train::classes_for(&corpus, &[]);
    let params = TrainParams::default();
    let folds = poststelle::train::stratified_folds(&corpus, 5, params.seed);
    let part = |f: &[usize]| -> Vec<&Item> {
        corpus
            .iter()
            .zip(&folds)
            .filter(|(_, x)| f.contains(x))
            .map(|(i, _)| i)
            .collect()
    };
    let base: Vec<Item> = part(&[0, 1, 2]).into_iter().cloned().collect();
    let (a, b) = (part(&[3]), part(&[4]));
    let v1 = Model::train(
        &examples(&base, &classes, &markers),
        classes.clone(),
        &params,
    )
    .expect("v1");
    let corrections: Vec<Item> = a
        .iter()
        .filter(|i| predict(&v1, i, &markers) != i.mailbox)
        .take(50)
        .map(|i| Item {
            id: format!("correction-{}", i.id),
            text: i.text.clone(),
            mailbox: i.mailbox.clone(),
            origin: "correction".into(),
            kind: i.kind.clone(),
        })
        .collect();
    let kinds: BTreeSet<&str> = corrections.iter().map(|c| c.mailbox.as_str()).collect();
    let mut train2 = base.clone();
    train2.extend(corrections.iter().cloned());
    let v2 = Model::train(
        &examples(&train2, &classes, &markers),
        classes.clone(),
        &params,
    )
    .expect("v2");
    let b_kind: Vec<&Item> = b
        .iter()
        .copied()
        .filter(|i| kinds.contains(i.mailbox.as_str()))
        .collect();
    let (k1, k2) = (
        accuracy(&v1, &b_kind, &markers),
        accuracy(&v2, &b_kind, &markers),
    );
    let (a1, a2) = (accuracy(&v1, &b, &markers), accuracy(&v2, &b, &markers));
    println!(
        "correction_loop: {} corrections of misroutes in fold 3 (mailboxes {:?})",
        corrections.len(),
        kinds
    );
    println!(
        "  fold 4, items of the corrected kinds ({}): v1 {:.1} %  v2 {:.1} %  gain {:+.1} points",
        b_kind.len(),
        k1 * 100.0,
        k2 * 100.0,
        (k2 - k1) * 100.0
    );
    println!(
        "  fold 4, all items ({}):               v1 {:.1} %  v2 {:.1} %  gain {:+.1} points",
        b.len(),
        a1 * 100.0,
        a2 * 100.0,
        (a2 - a1) * 100.0
    );
}
