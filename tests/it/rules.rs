//! Every rule file's own `[[test]]` cases, checked against all rules together.

use poststelle::classify::rules::RuleSet;
use poststelle::config::Settings;
use std::path::Path;

#[test]
fn every_rule_file_passes_its_own_test_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = Settings::load_with_env(&root.join("config/musterstadt.toml"), &[])
        .expect("example config is valid");
    let rules =
        RuleSet::load_dir(&root.join("rules"), &settings.mailbox_ids()).expect("rules load");
    assert_eq!(
        rules.files.len(),
        settings.mailboxes.len(),
        "one rule file per mailbox"
    );
    for f in &rules.files {
        assert!(
            f.tests.len() >= 3,
            "{} has too few test cases",
            f.path.display()
        );
    }
    let failures = rules.check_tests(&settings.address_markers);
    assert!(
        failures.is_empty(),
        "rule test failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn example_config_covers_the_taxonomy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings =
        Settings::load_with_env(&root.join("config/musterstadt.toml"), &[]).expect("valid");
    let ids: Vec<&str> = settings.mailboxes.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "10", "11", "20", "21", "22", "32", "33", "34", "40", "50", "51", "61", "63", "66",
            "67", "70"
        ]
    );
}
