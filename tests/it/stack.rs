//! Stacks (Stapel): one duplex scan of twenty letters ([`letters`]) dropped into the hot
//! folder's batch folder is split into letters by patch-T sheets, barcode sheets (Code 128 and
//! QR, made by Debian's `zint`), blank back sides (noise, dust, bleed-through) and, without
//! separators, by what a letter's first page looks like, and each letter is routed to its
//! mailbox; an uncertain split waits in review, a person moves the split points on the web
//! desk (`/stapel/{id}`, thumbnails drawn in the sandbox, CSRF) and over the API
//! (`POST /api/batches/{id}/split`); a SIGKILL while splitting loses and duplicates nothing; a
//! broken page quarantines only its letter.

mod letters;

use crate::auth::{Session, add_user, browser, sign_in};
use crate::harness::*;
use image::GrayImage;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(300);
/// The stacks are scanned at 150 dpi (an office scanner's setting for post; cheaper OCR).
const DPI: u32 = 150;

fn mm(v: f32) -> u32 {
    (v * DPI as f32 / 25.4) as u32
}

fn white() -> GrayImage {
    GrayImage::from_pixel(mm(210.0), mm(297.0), image::Luma([250]))
}

/// A letter page rendered as scanned, with some noise.
fn scanned(lines: &[Line<'_>]) -> GrayImage {
    noisy(render(&letter_pdf(lines), DPI), 8)
}

/// The blank back side of `front`: paper with noise, dust specks and the front's text showing
/// through faintly, mirrored.
fn back_side(front: &GrayImage, seed: u32) -> GrayImage {
    let mut img = white();
    for (x, y, p) in front.enumerate_pixels() {
        let mx = img.width().saturating_sub(1 + x);
        if p.0[0] < 128 && mx < img.width() && y < img.height() {
            img.put_pixel(mx, y, image::Luma([222]));
        }
    }
    let mut img = noisy(img, 12);
    let mut s = seed;
    for _ in 0..150 {
        s = s.wrapping_mul(1103515245).wrapping_add(12345);
        let x = (s >> 8) % (img.width() - 3);
        s = s.wrapping_mul(1103515245).wrapping_add(12345);
        let y = (s >> 8) % (img.height() - 3);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            img.put_pixel(x + dx, y + dy, image::Luma([20]));
        }
    }
    img
}

fn fill(img: &mut GrayImage, x: u32, y: u32, w: u32, h: u32) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, image::Luma([15]));
        }
    }
}

/// A patch-T sheet: bars narrow, wide, narrow, wide (2.03 / 5.08 mm, narrow spaces), 63 mm
/// long, as printed on the sheets of the scanner makers.
fn patch_t_sheet() -> GrayImage {
    let mut img = white();
    let mut x = mm(80.0);
    for wide in [false, true, false, true] {
        let w = if wide { mm(5.08) } else { mm(2.03) };
        fill(&mut img, x, mm(110.0), w, mm(63.5));
        x += w + mm(2.03);
    }
    noisy(img, 10)
}

/// A separator sheet with the barcode `value` made by `zint` (`kind`: `CODE128` or `QRCODE`).
fn barcode_sheet(kind: &str, value: &str) -> GrayImage {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("code.png");
    // Code 128 at 0.25 mm a module (a 21-character value is about 70 mm wide), QR at 0.76 mm.
    let scale = if kind == "QRCODE" {
        "--scale=3"
    } else {
        "--scale=1"
    };
    let status = Command::new("zint")
        .arg(format!("--barcode={kind}"))
        .arg(scale)
        .arg("--notext")
        .arg(format!("--data={value}"))
        .arg(format!("--output={}", out.display()))
        .status()
        .expect("zint (Debian package zint) must be installed");
    assert!(status.success(), "zint failed");
    let code = image::open(&out).expect("zint png").to_luma8();
    let mut img = white();
    let (x0, y0) = (mm(40.0), mm(100.0));
    for (x, y, p) in code.enumerate_pixels() {
        if x0 + x < img.width() && y0 + y < img.height() {
            img.put_pixel(x0 + x, y0 + y, *p);
        }
    }
    noisy(img, 8)
}

/// A letter's first page to the town (DIN 5008) with `subject` and `body`.
fn first_page(department: &str, subject: &str, body: &[&str]) -> GrayImage {
    scanned(&din_letter(
        &[
            "Stadt Musterstadt",
            department,
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject,
        body,
    ))
}

/// A page that may or may not begin a letter: a date and a salutation, but no address field.
pub(crate) fn doubtful_page() -> GrayImage {
    scanned(&[
        (125.0, 30.0, 10.0, "Musterstadt, 05.02.2025"),
        (25.0, 50.0, 11.0, "Liebe Frau Schmidt,"),
        (
            25.0,
            58.0,
            11.0,
            "wie am Telefon besprochen lege ich die Fotos der Stelle bei.",
        ),
        (25.0, 64.0, 11.0, "Viele Grüße"),
    ])
}

/// A photo enclosed with a note: a picture, no text.
fn photo_page() -> GrayImage {
    let mut img = white();
    for y in mm(60.0)..mm(180.0) {
        for x in mm(30.0)..mm(180.0) {
            let v = 90 + ((x / 7 + y / 11) % 40) as u8;
            img.put_pixel(x, y, image::Luma([v]));
        }
    }
    noisy(img, 8)
}

fn bauantrag() -> GrayImage {
    first_page(
        "Bauordnungsamt",
        "Bauantrag für einen Wintergarten, Flurstück 88",
        &[
            "hiermit reiche ich den Bauantrag für einen Wintergarten auf",
            "meinem Grundstück ein. Lageplan und Bauzeichnungen liegen bei.",
        ],
    )
}

pub(crate) fn hundesteuer() -> GrayImage {
    first_page(
        "Steueramt",
        "Anmeldung zur Hundesteuer",
        &[
            "hiermit melde ich unseren Hund Bello zur Hundesteuer an.",
            "Bitte senden Sie mir den Hundesteuerbescheid und die Steuermarke.",
        ],
    )
}

fn schlagloch() -> GrayImage {
    first_page(
        "Tiefbauamt",
        "Schlagloch in der Fahrbahn der Lindenstraße",
        &[
            "in der Lindenstraße vor Haus Nr. 12 ist ein tiefes Schlagloch in der",
            "Fahrbahn. Bitte lassen Sie die Straße ausbessern.",
        ],
    )
}

fn geburtsurkunde() -> GrayImage {
    first_page(
        "Standesamt",
        "Antrag auf eine Geburtsurkunde",
        &[
            "bitte stellen Sie mir eine Geburtsurkunde für meinen Sohn aus,",
            "geboren am 12.03.2019 in Musterstadt.",
        ],
    )
}

/// The names (SHA-256) of the blobs in the install's blob store.
fn blob_files(install: &Install) -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(install.path("blobs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if dir.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(f.file_name().to_string_lossy().to_string());
        }
    }
    out.sort();
    out
}

pub(crate) fn pdf(pages: &[GrayImage]) -> Vec<u8> {
    let refs: Vec<&GrayImage> = pages.iter().collect();
    scan_pdf_pages(&refs, DPI)
}

/// Drops a stack into the batch folder the way a scanner does.
pub(crate) fn drop_stack(install: &Install, name: &str, bytes: &[u8]) {
    let dir = install.path("inbox/stapel");
    std::fs::create_dir_all(&dir).expect("batch folder");
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// The stack's documents: (pages in the stack, state, mailbox), by first page.
pub(crate) fn parts(install: &Install) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = install
        .documents()
        .iter()
        .filter(|d| !d["batch_id"].is_null())
        .map(|d| {
            (
                d["batch_pages"].as_str().unwrap_or_default().to_string(),
                d["state"].as_str().unwrap_or_default().to_string(),
                d["mailbox"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    out.sort_by_key(|(p, ..)| {
        p.split('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    out
}

pub(crate) fn settled(install: &Install, n: usize) -> Vec<(String, String, String)> {
    settled_within(install, n, LONG)
}

fn settled_within(install: &Install, n: usize, within: Duration) -> Vec<(String, String, String)> {
    wait_for("the stack's letters to settle", within, || {
        let p = parts(install);
        (p.len() == n
            && p.iter()
                .all(|(_, st, _)| matches!(st.as_str(), "delivered" | "review" | "quarantined")))
        .then_some(p)
    })
}

/// Renders a page given as owned lines, scanned.
fn page_image(lines: &[letters::L]) -> GrayImage {
    let refs: Vec<Line<'_>> = lines
        .iter()
        .map(|(x, y, s, t)| (*x, *y, *s, t.as_str()))
        .collect();
    scanned(&refs)
}

/// What a letter of the stack should become: its pages in the stack, its mailbox, the pages
/// of its delivered PDF (blank back sides dropped).
struct Expected {
    range: String,
    mailbox: &'static str,
    pages: usize,
    doubtful: Option<u32>,
}

/// The morning's stack of [`letters::stack`] scanned duplex: every sheet has a back side (a
/// blank one with noise, dust and the front showing through, or the letter's next page when it
/// was printed on both sides), the separator sheets too. Returns the pages and what each
/// letter should become.
fn scan_stack(letters: &[letters::Letter]) -> (Vec<GrayImage>, Vec<Expected>) {
    let patch = patch_t_sheet();
    let code128 = barcode_sheet("CODE128", "POSTSTELLE-TRENNBLATT");
    let qr = barcode_sheet("QRCODE", "POSTSTELLE-TRENNBLATT");
    let mut pages: Vec<GrayImage> = Vec::new();
    let mut expected = Vec::new();
    let mut seed = 0;
    let mut back = |front: &GrayImage| {
        seed += 1;
        back_side(front, seed)
    };
    for l in letters {
        let sheet = match l.sep {
            letters::Sep::Nothing => None,
            letters::Sep::PatchT => Some(&patch),
            letters::Sep::Code128 => Some(&code128),
            letters::Sep::Qr => Some(&qr),
        };
        if let Some(sheet) = sheet {
            pages.push(sheet.clone());
            pages.push(back(&white()));
        }
        let first = pages.len() + 1;
        let fronts: Vec<GrayImage> = l.pages.iter().map(|p| page_image(p)).collect();
        let mut doubtful = None;
        if l.two_sided {
            for sheet in fronts.chunks(2) {
                pages.push(sheet[0].clone());
                match sheet.get(1) {
                    Some(b) => pages.push(b.clone()),
                    None => pages.push(back(&sheet[0])),
                }
            }
        } else {
            for (i, f) in fronts.iter().enumerate() {
                if l.doubtful && i == 1 {
                    doubtful = Some(pages.len() as u32 + 1);
                }
                pages.push(f.clone());
                pages.push(back(f));
            }
        }
        expected.push(Expected {
            range: format!("{first}-{}", pages.len()),
            mailbox: l.mailbox,
            pages: l.pages.len(),
            doubtful,
        });
    }
    (pages, expected)
}

#[test]
fn a_duplex_stack_of_twenty_letters_lands_as_twenty_documents() {
    let letters = letters::stack();
    let made = std::time::Instant::now();
    let (pages, expected) = scan_stack(&letters);
    let bytes = pdf(&pages);
    eprintln!("stack scanned in {:.1} s", made.elapsed().as_secs_f64());
    let app = spawn_app(&[]);
    let started = std::time::Instant::now();
    drop_stack(&app, "stapel-montag.pdf", &bytes);
    let got = settled_within(&app, expected.len(), Duration::from_secs(900));
    eprintln!(
        "{} pages, {} letters split, routed and settled in {:.1} s",
        pages.len(),
        got.len(),
        started.elapsed().as_secs_f64()
    );
    let ranges: Vec<&str> = got.iter().map(|(p, ..)| p.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|e| e.range.as_str()).collect();
    assert_eq!(ranges, want, "{got:?}");
    // Every letter is routed to its mailbox: delivered there, or waiting in review with it
    // proposed; only the letter with the doubtful page waits because of the split.
    let docs = app.documents();
    for e in &expected {
        let doc = docs
            .iter()
            .find(|d| d["batch_pages"] == e.range.as_str())
            .expect("the letter's document");
        let (state, mailbox) = (
            doc["state"].as_str().unwrap_or_default(),
            doc["mailbox"].as_str().unwrap_or("-"),
        );
        let reason = doc["decision"]["explanation"]["review_reason"]
            .as_str()
            .unwrap_or_default();
        assert!(
            state == "delivered" || state == "review",
            "{}: {state} {reason}",
            e.range
        );
        assert_eq!(mailbox, e.mailbox, "{}: {state} {reason}", e.range);
        match e.doubtful {
            Some(page) => {
                assert_eq!(state, "review", "{}", e.range);
                assert!(
                    reason.contains("Stapel") && reason.contains(&format!("Seite {page}")),
                    "{}: {reason}",
                    e.range
                );
            }
            None => assert!(!reason.contains("Stapel"), "{}: {reason}", e.range),
        }
    }
    // The delivered letters: blank back sides dropped, the stack and the pages in the sidecar.
    let delivered = app.delivered();
    let in_review = got.iter().filter(|(_, st, _)| st == "review").count();
    assert_eq!(delivered.len() + in_review, expected.len(), "{got:?}");
    let mut batch_id = None;
    for (mailbox, file) in &delivered {
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file.with_extension("json")).expect("sidecar"))
                .expect("json");
        let range = sidecar["batch"]["pages"].as_str().unwrap_or_default();
        let e = expected
            .iter()
            .find(|e| e.range == range)
            .unwrap_or_else(|| panic!("a delivered letter of the stack: {sidecar}"));
        assert_eq!(mailbox, e.mailbox, "{range}");
        let doc = lopdf::Document::load(file).expect("delivered pdf");
        assert_eq!(
            doc.get_pages().len(),
            e.pages,
            "{range}: blank back sides are dropped"
        );
        batch_id = sidecar["batch"]["id"].as_str().map(str::to_string);
    }
    // The Bauantrag is searchable on both pages.
    let (_, bau) = delivered
        .iter()
        .find(|(m, _)| m == "63")
        .expect("the Bauantrag delivered");
    let text = Command::new("pdftotext")
        .arg(bau)
        .arg("-")
        .output()
        .expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Carport") && text.contains("Grenzbebauung"),
        "both pages searchable: {text}"
    );
    // The API shows the stack as the split saw it: every separator sheet and blank back side.
    let batch_id = batch_id.expect("a delivered letter");
    let client = reqwest::blocking::Client::new();
    let batch: serde_json::Value = client
        .get(app.url(&format!("/api/batches/{batch_id}")))
        .bearer_auth(&app.token)
        .send()
        .expect("batch")
        .json()
        .expect("json");
    assert_eq!(batch["page_count"], pages.len(), "{batch}");
    assert_eq!(
        batch["documents"].as_array().map(Vec::len),
        Some(expected.len())
    );
    let kinds: Vec<&str> = batch["plan"]["pages"]
        .as_array()
        .expect("plan pages")
        .iter()
        .map(|p| p["kind"]["kind"].as_str().unwrap_or_default())
        .collect();
    let separators = letters
        .iter()
        .filter(|l| l.sep != letters::Sep::Nothing)
        .count();
    let content: usize = expected.iter().map(|e| e.pages).sum();
    let count = |k: &str| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!(count("separator"), separators, "{kinds:?}");
    assert_eq!(count("content"), content, "{kinds:?}");
    assert_eq!(
        count("blank"),
        pages.len() - separators - content,
        "{kinds:?}"
    );
    // With letters of the stack delivered, its split points no longer move.
    let starts: Vec<u32> = expected
        .iter()
        .filter_map(|e| e.range.split('-').next()?.parse().ok())
        .collect();
    let moved = client
        .post(app.url(&format!("/api/batches/{batch_id}/split")))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({"starts": starts}))
        .send()
        .expect("split");
    assert_eq!(moved.status(), 409, "letters already delivered");
    let body = moved.text().unwrap_or_default();
    assert!(body.contains("Prüfkorb"), "a German reason: {body}");
    app.stop();
}

#[test]
fn the_poststelle_moves_split_points_on_the_desk_and_over_the_api() {
    // A note without an address field and the photo it encloses: one letter, in review (the
    // note names no department, the photo has no text), so every letter made of the two waits
    // in review and the split can move twice: on the desk, then over the API.
    let app = spawn_app(&[]);
    add_user(&app, "p.post", "poststelle", &[]);
    add_user(&app, "b.bau", "fachbereich", &["63"]);
    let stack = vec![doubtful_page(), photo_page()];
    drop_stack(&app, "stapel.pdf", &pdf(&stack));
    let got = settled(&app, 1);
    assert_eq!(got[0].0, "1-2", "{got:?}");
    assert_eq!(got[0].1, "review", "{got:?}");
    let batch_id = app
        .documents()
        .iter()
        .find_map(|d| d["batch_id"].as_str().map(str::to_string))
        .expect("batch");
    let post = sign_in(&app, "p.post");
    let get = |s: &Session, path: &str| {
        browser()
            .get(app.url(path))
            .header("Cookie", &s.cookie)
            .send()
            .expect("get")
    };
    // The Prüfkorb links the letter's stack; the stack's page shows its pages, page 1 as a
    // letter start for good, page 2 with a "Briefanfang" checkbox, not checked.
    let queue = get(&post, "/pruefkorb").text().expect("html");
    let page_url = format!("/stapel/{batch_id}");
    assert!(queue.contains(&format!("href=\"{page_url}\"")), "{queue}");
    let page = get(&post, &page_url);
    assert_eq!(page.status(), 200);
    let html = page.text().expect("html");
    assert!(
        html.contains("Briefanfang (erste Seite des Stapels)"),
        "{html}"
    );
    assert!(
        html.contains("<input type=\"checkbox\" name=\"start\" value=\"2\"> Briefanfang"),
        "{html}"
    );
    assert!(html.contains("Trennstellen übernehmen"), "{html}");
    // Thumbnails of every page of the stack, drawn in the sandbox; none past its end.
    let thumb = get(&post, &format!("{page_url}/seite/2"));
    assert_eq!(thumb.status(), 200);
    assert_eq!(
        thumb
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let img = image::load_from_memory(&thumb.bytes().expect("png")).expect("a png");
    assert!(img.width() > 100 && img.width() <= 420, "{}", img.width());
    assert_eq!(get(&post, &format!("{page_url}/seite/3")).status(), 404);
    // A department sees no stack; a form without the CSRF token is refused.
    let bau = sign_in(&app, "b.bau");
    assert_eq!(get(&bau, &page_url).status(), 403);
    assert_eq!(get(&bau, &format!("{page_url}/seite/1")).status(), 403);
    let split_url = app.url(&format!("{page_url}/trennen"));
    let refused = browser()
        .post(&split_url)
        .header("Cookie", &post.cookie)
        .form(&[("start", "2")])
        .send()
        .expect("post");
    assert_eq!(refused.status(), 403);
    let bad = browser()
        .post(&split_url)
        .header("Cookie", &post.cookie)
        .form(&[("csrf", post.csrf.as_str()), ("start", "9")])
        .send()
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert_eq!(parts(&app).len(), 1, "nothing moved");
    // Page 2 checked: two letters, decided by a person, waiting for their mailbox only.
    let moved = browser()
        .post(&split_url)
        .header("Cookie", &post.cookie)
        .form(&[("csrf", post.csrf.as_str()), ("start", "2")])
        .send()
        .expect("post");
    assert_eq!(moved.status(), 303, "{:?}", moved.text());
    let after = settled(&app, 2);
    let ranges: Vec<&str> = after.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(ranges, ["1", "2"]);
    for d in app.documents() {
        let reason = d["decision"]["explanation"]["review_reason"]
            .as_str()
            .unwrap_or_default();
        assert!(!reason.contains("Stapel"), "{reason}");
    }
    let html = get(&post, &format!("{page_url}?getrennt=1"))
        .text()
        .expect("html");
    assert!(html.contains("Trennstellen sind übernommen"), "{html}");
    assert!(
        html.contains("<input type=\"checkbox\" name=\"start\" value=\"2\" checked>"),
        "{html}"
    );
    // Over the API: page 0 and pages beyond the stack are refused; one letter again.
    let client = reqwest::blocking::Client::new();
    let url = app.url(&format!("/api/batches/{batch_id}/split"));
    let bad = client
        .post(&url)
        .bearer_auth(&app.token)
        .json(&serde_json::json!({"starts": [0, 9]}))
        .send()
        .expect("split");
    assert_eq!(bad.status(), 400);
    let moved = client
        .post(&url)
        .bearer_auth(&app.token)
        .json(&serde_json::json!({"starts": [1]}))
        .send()
        .expect("split");
    assert!(moved.status().is_success(), "{:?}", moved.text());
    let after = settled(&app, 1);
    assert_eq!(after[0].0, "1-2", "{after:?}");
    // The replaced letters' rows are gone; the events of the stack, its letters and the
    // moves stay, and the audit trail's chain is whole.
    let out = app
        .command()
        .args(["audit", "verify"])
        .output()
        .expect("poststelle audit verify");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop();
}

#[test]
fn a_stack_killed_while_being_split_ends_with_every_letter_once() {
    let install = Install::new();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "batch_before_split"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
    ]);
    // The separator sheet `poststelle trennblatt` prints, scanned.
    let sheet = install.path("trennblatt.pdf");
    let out = install
        .command()
        .arg("trennblatt")
        .arg(&sheet)
        .output()
        .expect("poststelle trennblatt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = noisy(render(&std::fs::read(&sheet).expect("sheet"), DPI), 8);
    let stack = vec![
        bauantrag(),
        printed,
        hundesteuer(),
        barcode_sheet("CODE128", "POSTSTELLE-TRENNBLATT"),
        schlagloch(),
    ];
    let bytes = pdf(&stack);
    drop_stack(&install, "stapel.pdf", &bytes);
    wait_file(&marker, LONG);
    // The parts' PDFs are made (blobs), the split is not committed: no letter exists yet.
    let cut = blob_files(&install);
    d.kill();
    assert_eq!(parts(&install).len(), 0);
    let stack_sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(cut.contains(&stack_sha), "{cut:?}");
    assert_eq!(cut.len(), 4, "the stack and its three parts' PDFs: {cut:?}");
    let _d = install.serve(&[]);
    let got = settled(&install, 3);
    let ranges: Vec<&str> = got.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(ranges, ["1", "3", "5"], "{got:?}");
    wait_for("three deliveries", LONG, || {
        (install.delivered().len() == 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(parts(&install).len(), 3, "no letter twice");
    // The parts cut before the kill are cut alike after it (same bytes, same blob): each
    // blob of then is a letter's now, or the stack's; no letter's copy is left unreferenced.
    let referenced: Vec<String> = install
        .documents()
        .iter()
        .filter_map(|d| d["sha256"].as_str().map(str::to_string))
        .chain([stack_sha])
        .collect();
    for blob in &cut {
        assert!(
            referenced.contains(blob),
            "blob {blob} cut before the kill is no letter's: {referenced:?}"
        );
    }
    assert_eq!(install.delivered().len(), 3, "each delivered once");
    assert_eq!(
        std::fs::read_dir(install.path("inbox/stapel"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "the stack left the batch folder"
    );
}

#[test]
fn a_broken_page_quarantines_only_its_letter() {
    let app = spawn_app(&[]);
    let hund = hundesteuer();
    let broken = geburtsurkunde();
    let stack = vec![
        bauantrag(),
        patch_t_sheet(),
        hund,
        patch_t_sheet(),
        broken.clone(),
        patch_t_sheet(),
        schlagloch(),
    ];
    let mut bytes = pdf(&stack);
    // Page 5's image stream: its JPEG header destroyed (same length, offsets stay right). The
    // headers and white margins of all pages are alike: the stream is found by the image data
    // of its middle.
    let jpeg = scan_jpeg(&broken);
    let mid = jpeg.len() / 2;
    let at = bytes
        .windows(64)
        .position(|w| w == &jpeg[mid..mid + 64])
        .expect("page 5's image in the PDF")
        - mid;
    for b in &mut bytes[at..at + 600] {
        *b = b'x';
    }
    drop_stack(&app, "stapel.pdf", &bytes);
    let got = settled(&app, 4);
    let ranges: Vec<&str> = got.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(ranges, ["1", "3", "5", "7"], "{got:?}");
    assert_eq!(got[2].1, "quarantined", "{got:?}");
    for i in [0, 1, 3] {
        assert_ne!(got[i].1, "quarantined", "{got:?}");
    }
    let docs = app.documents();
    let q = docs
        .iter()
        .find(|d| d["batch_pages"] == "5")
        .expect("part 5");
    let reason = q["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Seite 5") && reason.contains("beschädigt"),
        "{reason}"
    );
    // Its reason file stands beside the quarantined part.
    let files: Vec<String> = std::fs::read_dir(app.path("quarantine"))
        .expect("quarantine")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with(".reason.txt")),
        "{files:?}"
    );
    wait_for("the other letters delivered", LONG, || {
        (app.delivered().len() >= 2).then_some(())
    });
    app.stop();
}

/// A multi-page grayscale TIFF as a scanner writes it, with its resolution.
fn tiff_stack(pages: &[GrayImage]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).expect("tiff");
        for p in pages {
            let mut img = enc
                .new_image::<tiff::encoder::colortype::Gray8>(p.width(), p.height())
                .expect("page");
            img.resolution(
                tiff::tags::ResolutionUnit::Inch,
                tiff::encoder::Rational { n: DPI, d: 1 },
            );
            img.write_data(p.as_raw()).expect("data");
        }
    }
    out.into_inner()
}

#[test]
fn a_multi_page_tiff_is_a_stack_too() {
    let app = spawn_app(&[]);
    let bau = bauantrag();
    let stack = vec![
        bau.clone(),
        back_side(&bau, 1),
        patch_t_sheet(),
        back_side(&white(), 2),
        hundesteuer(),
    ];
    drop_stack(&app, "stapel.tif", &tiff_stack(&stack));
    let got = settled(&app, 2);
    let ranges: Vec<&str> = got.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(ranges, ["1-2", "5"], "{got:?}");
    assert_eq!(got[0].2, "63", "the Bauantrag: {got:?}");
    assert_eq!(got[1].2, "22", "the Hundesteuer: {got:?}");
    // Each letter is a PDF of its pages' images, the blank back side left out.
    for d in app.documents() {
        assert_eq!(d["media_type"], "application/pdf", "{d}");
    }
    let delivered = got.iter().filter(|(_, st, _)| st == "delivered").count();
    wait_for("the letters delivered", LONG, || {
        (app.delivered().len() == delivered).then_some(())
    });
    for (mailbox, file) in app.delivered() {
        let doc = lopdf::Document::load(&file).expect("delivered pdf");
        assert_eq!(doc.get_pages().len(), 1, "{mailbox}");
    }
    app.stop();
}
