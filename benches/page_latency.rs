//! One scanned A4 page from drop to delivery, against the `tesseract` command line on the same
//! page (the reference, measured in the same run on the same machine).
//!
//! Run: `cargo bench --bench page_latency`
//!
//! Prints the reference time, poststelle's drop-to-delivery time (hot-folder settle time
//! included and shown separately), and their ratio.

// The integration tests' harness (letters, a fresh install, the daemon); the bench uses a part.
#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::*;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn letter(n: usize) -> Vec<u8> {
    let subject = format!("Bauantrag für einen Carport, Flurstück {}", 100 + n);
    let lines = din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        Box::leak(subject.into_boxed_str()),
        &[
            "anbei übersende ich den Bauantrag mit Lageplan, Bauzeichnungen",
            "und Baubeschreibung für einen Carport auf meinem Grundstück.",
            "Bitte teilen Sie mir mit, ob die Unterlagen vollständig sind und",
            "wann ich mit einer Entscheidung rechnen kann. Für Rückfragen",
            "erreichen Sie mich werktags ab 16 Uhr unter 0123 456789.",
        ],
    );
    letter_pdf(&lines)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // Reference: the tesseract CLI on the same page image (one thread, as poststelle runs it).
    let dir = tempfile::tempdir().expect("tempdir");
    let page = noisy(render(&letter(0), 300), 10);
    let png_path = dir.path().join("page.png");
    std::fs::write(&png_path, png(&page)).expect("write");
    let mut reference = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let st = std::process::Command::new("tesseract")
            .arg(&png_path)
            .arg("-")
            .args(["-l", "deu"])
            .env("OMP_THREAD_LIMIT", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("tesseract CLI (apt-get install tesseract-ocr-deu)");
        assert!(st.success());
        reference.push(t.elapsed().as_secs_f64());
    }

    // poststelle: scanned PDF dropped into the hot folder until the DMS target has it.
    let install = Install::new();
    let settle = Duration::from_millis(400);
    let _daemon = install.serve(&[]);
    let mut ours = Vec::new();
    for n in 1..=RUNS {
        let scan = scan_pdf(&noisy(render(&letter(n), 300), 10), 300);
        let before = install.delivered().len();
        let t = Instant::now();
        install.drop_file(&format!("scan-{n}.pdf"), &scan);
        wait_for("delivery", Duration::from_secs(120), || {
            (install.delivered().len() > before).then_some(())
        });
        ours.push(t.elapsed().as_secs_f64());
    }
    let r = median(reference);
    let o = median(ours);
    let processing = o - settle.as_secs_f64();
    println!("page_latency: one scanned A4 page, 300 dpi, German, median of {RUNS}");
    println!("  reference  tesseract CLI (OCR only)            {r:7.3} s");
    println!(
        "  poststelle drop -> delivered (incl. {:.1} s settle) {o:7.3} s",
        settle.as_secs_f64()
    );
    println!("  poststelle without the settle wait              {processing:7.3} s");
    println!(
        "  ratio poststelle/tesseract: {:.2} (with settle), {:.2} (without)",
        o / r,
        processing / r
    );
}
