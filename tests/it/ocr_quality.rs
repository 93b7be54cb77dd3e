//! What OCR could not read well goes to a person: a letter in a handwriting-like face and a
//! faint, noisy copy are routed to review with the reason in German, read by the real workers
//! (Tesseract, German) through `route`; the same letter scanned cleanly is routed as usual.

use crate::harness::*;
use std::path::PathBuf;

fn hundesteuer() -> Vec<Line<'static>> {
    din_letter(
        &[
            "Stadt Musterstadt",
            "Steueramt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        "Abmeldung der Hundesteuer für unseren Hund Bello",
        &[
            "unser Hund Bello ist am 12. Januar leider verstorben.",
            "Bitte melden Sie ihn zur Hundesteuer ab und senden Sie mir",
            "einen geänderten Steuerbescheid. Die Steuermarke liegt bei.",
        ],
    )
}

fn route_json(install: &Install, file: &PathBuf) -> serde_json::Value {
    let out = install
        .command()
        .args(["route", "--json"])
        .arg(file)
        .output()
        .expect("route");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

#[test]
fn poorly_recognised_pages_wait_in_review_with_the_reason() {
    let install = Install::new();
    let dir = install.path("scans");
    std::fs::create_dir_all(&dir).expect("dir");
    let pdf = letter_pdf(&hundesteuer());
    let hand = handwriting_pdf(&hundesteuer(), 8.0, 7);
    // A clean scan and a lighter but legible copy are routed; a handwritten letter and a very
    // faint, noisy copy (from which a few misread words would point to a wrong mailbox) wait.
    let scans = [
        ("sauber", noisy(render_with(&pdf, 300, DEJAVU_SANS), 8)),
        ("hell", faint(render_with(&pdf, 300, DEJAVU_SANS), 150, 50)),
        (
            "handschrift",
            noisy(render_with(&hand, 300, HANDWRITING), 8),
        ),
        ("blass", faint(render_with(&pdf, 300, DEJAVU_SANS), 190, 40)),
    ];
    let mut routed = std::collections::BTreeMap::new();
    for (name, img) in &scans {
        let p = dir.join(format!("{name}.tif"));
        std::fs::write(&p, tiff(&[img])).expect("write");
        routed.insert(*name, route_json(&install, &p));
    }
    let ocr = |v: &serde_json::Value| v["explanation"]["ocr_confidence"].as_f64().unwrap_or(-1.0);
    let reason = |v: &serde_json::Value| {
        v["explanation"]["review_reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for name in ["sauber", "hell"] {
        let v = &routed[name];
        assert_eq!(v["mailbox"], "22", "{name}: {v}");
        assert_eq!(v["needs_review"], false, "{name}: {v}");
        assert!(ocr(v) >= 85.0, "{name}: {v}");
    }
    for name in ["handschrift", "blass"] {
        let v = &routed[name];
        assert_eq!(v["needs_review"], true, "{name}: {v}");
        assert!(ocr(v) < 70.0, "{name}: {v}");
        let r = reason(v);
        assert!(
            r.contains("Texterkennung war unsicher") && r.contains("Wortsicherheit"),
            "{name}: {r}"
        );
    }
}
