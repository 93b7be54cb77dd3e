//! `route --json` on real files: born-digital and scanned PDF, PNG, multi-page TIFF and text,
//! read by the real pdf-extract / poppler / Tesseract (German) and routed by rules + model.

use crate::harness::*;
use std::path::PathBuf;

fn hundesteuer() -> Vec<Line<'static>> {
    din_letter(
        &["Stadt Musterstadt", "Rathausplatz 1", "12345 Musterstadt"],
        "Abmeldung der Hundesteuer für unseren Hund Bello",
        &[
            "unser Hund Bello ist am 12. Januar leider verstorben.",
            "Bitte melden Sie ihn zur Hundesteuer ab und senden Sie mir",
            "einen geänderten Steuerbescheid. Die Steuermarke liegt bei.",
        ],
    )
}

fn sperrmuell() -> Vec<Line<'static>> {
    din_letter(
        &["Stadt Musterstadt", "Rathausplatz 1", "12345 Musterstadt"],
        "Sperrmüllabholung",
        &[
            "ich möchte einen Termin für die Abholung von Sperrmüll",
            "vereinbaren: ein altes Sofa, zwei Schränke und eine Matratze.",
            "Außerdem ist unsere Biotonne seit zwei Wochen nicht geleert worden.",
        ],
    )
}

fn bauantrag() -> Vec<Line<'static>> {
    din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        "Bauantrag für einen Carport, Flurstück 117, Gemarkung Musterstadt",
        &[
            "anbei übersende ich den Bauantrag mit Lageplan, Bauzeichnungen",
            "und Baubeschreibung für einen Carport auf meinem Grundstück.",
            "Bitte teilen Sie mir mit, ob die Unterlagen vollständig sind.",
        ],
    )
}

struct Routed {
    mailbox: Option<String>,
    value: serde_json::Value,
}

fn route(install: &Install, files: &[PathBuf]) -> (bool, Vec<Routed>) {
    let out = install
        .command()
        .arg("route")
        .arg("--json")
        .args(files)
        .output()
        .expect("route");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let routed = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            Routed {
                mailbox: v["mailbox"].as_str().map(str::to_string),
                value: v,
            }
        })
        .collect();
    (out.status.success(), routed)
}

#[test]
fn routes_every_supported_format_to_the_right_mailbox() {
    let install = Install::new();
    let dir = install.path("files");
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let hund = letter_pdf(&hundesteuer());
    let sperr = letter_pdf(&sperrmuell());
    let bau = letter_pdf(&bauantrag());
    let blank = image::GrayImage::from_pixel(2480, 3508, image::Luma([255]));
    let files = vec![
        write("born-digital.pdf", hund.clone()),
        write("scan.pdf", scan_pdf(&noisy(render(&sperr, 300), 12), 300)),
        write("scan.png", png(&noisy(render(&bau, 300), 8))),
        // Page 1 is an empty cover sheet: the router must read on to page 2.
        write("scan.tif", tiff(&[&blank, &render(&hund, 300)])),
        write(
            "mail.txt",
            "Von: Eva Schmitz <eva@example.org>\nAn: info@musterstadt.de\nBetreff: Sperrmüll\n\nHallo, bitte holen Sie unseren Sperrmüll ab, ein Sofa und ein Regal. Danke!"
                .as_bytes()
                .to_vec(),
        ),
    ];
    let (ok, routed) = route(&install, &files);
    assert!(ok, "route must succeed");
    let got: Vec<Option<&str>> = routed.iter().map(|r| r.mailbox.as_deref()).collect();
    assert_eq!(
        got,
        [Some("22"), Some("70"), Some("63"), Some("22"), Some("70")],
        "{:#?}",
        routed.iter().map(|r| &r.value).collect::<Vec<_>>()
    );
    for r in &routed {
        let v = &r.value;
        for key in [
            "file",
            "mailbox",
            "confidence",
            "decided_by",
            "needs_review",
            "explanation",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        let c = v["confidence"].as_f64().expect("confidence");
        assert!((0.0..=1.0).contains(&c));
        assert!(
            !v["explanation"]["candidates"]
                .as_array()
                .expect("candidates")
                .is_empty()
        );
    }
    // The Bauordnungsamt letter names the department in its DIN 5008 address field, read by OCR.
    let addr = routed[2].value["explanation"]["address_field"]
        .as_str()
        .unwrap_or_default();
    assert!(
        addr.contains("Bauordnungsamt"),
        "address field read by OCR: {addr:?}"
    );
}

#[test]
fn a_bad_file_fails_alone_and_the_exit_code_says_so() {
    let install = Install::new();
    let good = install.path("good.txt");
    std::fs::write(
        &good,
        "Betreff: Hundesteuer\n\nIch melde meinen Hund zur Hundesteuer an.",
    )
    .expect("write");
    let bad = install.path("fake.pdf");
    std::fs::write(&bad, "this is not a PDF").expect("write");
    let (ok, routed) = route(&install, &[bad.clone(), good.clone()]);
    assert!(!ok, "exit code must report the failure");
    assert_eq!(routed.len(), 2);
    assert!(
        routed[0].value["error"]
            .as_str()
            .expect("error")
            .contains("Unbekanntes Dateiformat")
    );
    assert_eq!(routed[1].mailbox.as_deref(), Some("22"));
}

#[test]
fn check_config_names_file_line_and_hint() {
    let install = Install::new();
    let text = std::fs::read_to_string(repo().join("config/musterstadt.toml"))
        .expect("example config")
        .replace("address_markers =", "adress_markers =");
    let bad = install.path("bad.toml");
    std::fs::write(&bad, &text).expect("write");
    let line = text
        .lines()
        .position(|l| l.starts_with("adress_markers"))
        .expect("line")
        + 1;
    let out = install
        .command()
        .arg("--config")
        .arg(&bad)
        .arg("check-config")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("bad.toml: line {line}: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("did you mean \"address_markers\"?"),
        "{stdout}"
    );
    // The example config itself is fine.
    let out = install.command().arg("check-config").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Issue 12: a letter that carries no routing information (no address, no subject, nothing
/// about a matter) must wait for a person, never be routed on a guess.
#[test]
fn a_letter_without_routing_information_waits_in_review() {
    let install = Install::new();
    let dir = install.path("files");
    std::fs::create_dir_all(&dir).expect("dir");
    let letter = dir.join("rueckruf.txt");
    std::fs::write(
        &letter,
        "Sehr geehrte Damen und Herren,\n\nbitte rufen Sie mich zurück wegen der Sache von \
         letzter Woche.\n\nMit freundlichen Grüßen\nK. Weber\n",
    )
    .expect("write");
    let (ok, routed) = route(&install, &[letter]);
    assert!(
        ok && routed.len() == 1,
        "route failed or printed {} lines",
        routed.len()
    );
    let v = &routed[0].value;
    assert_eq!(v["needs_review"], true, "{v}");
    let confidence = v["confidence"].as_f64().expect("confidence");
    let threshold = v["explanation"]["threshold"].as_f64().expect("threshold");
    assert!(confidence < threshold, "{v}");
}
