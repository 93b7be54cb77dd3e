//! Throughput of scanned letters, against the Tesseract command line on the same pages (the
//! reference, measured in the same run on the same machine), and a letter that arrives while a
//! large backlog drains.
//!
//! Run: `cargo bench --bench throughput` (40 one-page letters), or with arguments after `--`:
//!
//! - `--letters N`: N letters (default 40);
//! - `--pages P`: pages per letter (default 1). With P > 1 page 1 is a DIN 5008 letter and pages
//!   2..P are continuation text (the multi-page variant; `--pages 5` as the issue asks);
//! - `--backlog [M]`: run the backlog case instead, with M documents waiting (default 1000);
//!   its documents have `--pages` pages;
//! - `--quick`: small sizes for CI: 4 letters of one page, a backlog of 30 (explicit sizes win);
//! - `--json`: also one JSON object (the last line of stdout).
//!
//! **Throughput.** N distinct scanned letters (300 dpi, German, image-only PDFs) are made before
//! anything is timed. The reference renders every page with `pdftoppm -r 300 -gray` to PGM and
//! reads it with `tesseract PAGE.pgm - -l deu` (one OCR thread, `OMP_THREAD_LIMIT=1`), two pages
//! at a time: two threads take pages from one queue; its time is the wall time for all pages.
//! Then a fresh install and daemon (`poststelle serve`, a child process) get all N files dropped
//! into the hot folder at once (renamed in, as a scanner dumping a batch), and the time until
//! the DMS target has all N (sidecars written) is poststelle's (the hot folder's 0.4 s settle
//! time included). Afterwards every delivered file is read with `pdftotext`: it counts as
//! searchable when it is a PDF with all P pages, page 1's text has the letter's words and every
//! page has text. Fewer than N searchable deliveries make the run invalid (exit code 1). Goal:
//! poststelle / reference <= 1.1.
//!
//! **Backlog.** In a fresh daemon, one single-page letter is dropped into the idle daemon: its
//! time to route (drop until the decision: review or a mailbox, not delivery) is the single-page
//! time. Once it is delivered, M documents are dropped at once; 5 s later one more single-page
//! letter (the late letter) is dropped and its time to route is measured while the backlog
//! drains. Then the measurement goes on for 30 s more or until the backlog is drained, whichever
//! is first (it does not wait for the whole backlog). Goals: late / single <= 3 (page 1 first)
//! and peak RSS < 500 MB.
//!
//! Times to route are taken from the daemon's audit log (the `classified` event's time minus
//! the drop's wall-clock time, same machine clock) and, as a check, from polling the HTTP API
//! every 100 ms. Peak RSS is the largest sum of `VmRSS` (from `/proc/PID/status`) over the
//! daemon and all its descendants (sandboxed workers, renderers), sampled every 100 ms from
//! the daemon's start to the end of the measurement; MB are 10^6 bytes.

// The integration tests' harness (letters, a fresh install, the daemon); the bench uses a part.
#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Scan resolution.
const DPI: u32 = 300;
/// The hot folder's settle time in the harness's configuration (included in every time).
const SETTLE_S: f64 = 0.4;
/// Document states in which a decision exists (routed to a mailbox, or to review).
const ROUTED: [&str; 4] = ["classified", "review", "queued", "delivered"];
/// States a document does not leave by itself.
const STUCK: [&str; 3] = ["review", "quarantined", "dead_letter"];
/// States of documents still to be worked on.
const PENDING: [&str; 4] = ["received", "extracted", "classified", "queued"];

const USAGE: &str = "usage: cargo bench --bench throughput -- [--letters N] [--pages P] \
                     [--backlog [M]] [--quick] [--json]";

struct Options {
    letters: usize,
    pages: usize,
    backlog: Option<usize>,
    json: bool,
    /// The arguments as given (for the command line printed with the results).
    args: Vec<String>,
    /// The load average (1, 5, 15 min) when the bench started.
    load: String,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("throughput: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Options {
    // `cargo bench` passes `--bench` to every bench binary.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (mut letters, mut pages, mut backlog) = (None, None, None::<Option<usize>>);
    let (mut quick, mut json) = (false, false);
    let number = |v: Option<&String>, what: &str| -> usize {
        match v.and_then(|v| v.parse::<usize>().ok()) {
            Some(n) if n > 0 => n,
            _ => usage_error(&format!("{what} needs a number of at least 1")),
        }
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--letters" => {
                letters = Some(number(args.get(i + 1), "--letters"));
                i += 1;
            }
            "--pages" => {
                pages = Some(number(args.get(i + 1), "--pages"));
                i += 1;
            }
            "--backlog" => match args.get(i + 1).and_then(|v| v.parse::<usize>().ok()) {
                Some(m) if m > 0 => {
                    backlog = Some(Some(m));
                    i += 1;
                }
                Some(_) => usage_error("--backlog needs a number of at least 1"),
                None => backlog = Some(None),
            },
            "--quick" => quick = true,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => usage_error(&format!("unknown argument {other}")),
        }
        i += 1;
    }
    Options {
        letters: letters.unwrap_or(if quick { 4 } else { 40 }),
        pages: pages.unwrap_or(1),
        backlog: backlog.map(|m| m.unwrap_or(if quick { 30 } else { 1000 })),
        json,
        args,
        load: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Letters

/// A kind of letter: page 1 is a DIN 5008 letter to a department.
struct Template {
    mailbox: &'static str,
    recipient: &'static [&'static str],
    subject: &'static str,
    body: &'static [&'static str],
    /// Words (lower case, ASCII) page 1's text layer must show; two of three suffice.
    words: [&'static str; 3],
}

const TEMPLATES: &[Template] = &[
    Template {
        mailbox: "63",
        recipient: &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Bauantrag für einen Carport, Flurstück 117",
        body: &[
            "anbei übersende ich den Bauantrag mit Lageplan, Bauzeichnungen",
            "und Baubeschreibung für einen Carport auf meinem Grundstück.",
            "Bitte teilen Sie mir mit, ob die Unterlagen vollständig sind und",
            "wann ich mit einer Entscheidung rechnen kann.",
        ],
        words: ["bauantrag", "carport", "lageplan"],
    },
    Template {
        mailbox: "22",
        recipient: &[
            "Stadt Musterstadt",
            "Steueramt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Abmeldung der Hundesteuer für unseren Hund Bello",
        body: &[
            "unser Hund Bello ist am 12. Januar leider verstorben.",
            "Bitte melden Sie ihn zur Hundesteuer ab und senden Sie mir",
            "einen geänderten Steuerbescheid. Die Steuermarke liegt bei.",
        ],
        words: ["hundesteuer", "bello", "steuermarke"],
    },
    Template {
        mailbox: "70",
        recipient: &[
            "Stadt Musterstadt",
            "Abfallwirtschaft",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Sperrmüllabholung",
        body: &[
            "ich möchte einen Termin für die Abholung von Sperrmüll",
            "vereinbaren: ein altes Sofa, zwei Schränke und eine Matratze.",
            "Außerdem ist unsere Biotonne seit zwei Wochen nicht geleert worden.",
        ],
        words: ["abholung", "sofa", "matratze"],
    },
    Template {
        mailbox: "51",
        recipient: &[
            "Stadt Musterstadt",
            "Jugendamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Antrag auf einen Kitaplatz für unsere Tochter Lena",
        body: &[
            "hiermit beantragen wir einen Platz in einer Kindertagesstätte",
            "für unsere Tochter Lena, geboren am 4. Mai 2023, ab dem 1. August.",
            "Wir benötigen eine Betreuung von 35 Stunden in der Woche.",
            "Die Anmeldebestätigung der Kita Sonnenschein liegt bei.",
        ],
        words: ["kitaplatz", "tochter", "betreuung"],
    },
    Template {
        mailbox: "32",
        recipient: &[
            "Stadt Musterstadt",
            "Ordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Gewerbeanmeldung für einen Onlinehandel",
        body: &[
            "ich möchte zum 1. April ein Gewerbe anmelden: den Onlinehandel",
            "mit Holzspielzeug im Nebenerwerb. Das ausgefüllte Formular zur",
            "Gewerbeanmeldung und eine Kopie meines Ausweises liegen bei.",
            "Bitte senden Sie mir die Bestätigung an meine Anschrift.",
        ],
        words: ["gewerbe", "onlinehandel", "formular"],
    },
    Template {
        mailbox: "67",
        recipient: &[
            "Stadt Musterstadt",
            "Grünflächenamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Antrag auf Fällung einer Birke nach der Baumschutzsatzung",
        body: &[
            "auf meinem Grundstück steht eine etwa 40 Jahre alte Birke, die",
            "nach einem Sturm stark geschädigt ist und auf das Haus zu kippen",
            "droht. Ich beantrage daher die Genehmigung zur Fällung nach der",
            "Baumschutzsatzung. Fotos und ein Lageplan liegen bei.",
        ],
        words: ["birke", "baumschutzsatzung", "sturm"],
    },
    Template {
        mailbox: "33",
        recipient: &[
            "Stadt Musterstadt",
            "Bürgeramt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        subject: "Antrag auf eine erweiterte Meldebescheinigung",
        body: &[
            "für meinen neuen Arbeitgeber benötige ich eine erweiterte",
            "Meldebescheinigung mit allen früheren Wohnanschriften.",
            "Bitte senden Sie mir die Bescheinigung per Post zu; die Gebühr",
            "überweise ich nach Erhalt des Gebührenbescheids.",
        ],
        words: ["meldebescheinigung", "arbeitgeber", "wohnanschriften"],
    },
];

/// Text of the continuation pages (2..P), cycled.
const CONTINUATION: &[&str] = &[
    "Zur Begründung meines Antrags möchte ich die folgenden Punkte ergänzen.",
    "Die beigefügten Unterlagen sind vollständig und von mir unterschrieben.",
    "Sollten weitere Nachweise erforderlich sein, reiche ich diese gern nach.",
    "Für Rückfragen erreichen Sie mich werktags ab 16 Uhr telefonisch.",
    "Ich bitte um eine schriftliche Eingangsbestätigung dieses Schreibens.",
    "Die Angaben zu Fristen und Gebühren habe ich zur Kenntnis genommen.",
    "Eine Kopie des letzten Bescheids liegt diesem Schreiben ebenfalls bei.",
    "Ich bedanke mich im Voraus für die zügige Bearbeitung meines Anliegens.",
    "Bitte berücksichtigen Sie, dass ich im Juli drei Wochen verreist bin.",
    "Die Zahlung der Gebühren kann per Lastschrift von meinem Konto erfolgen.",
    "Alle Angaben in diesem Schreiben habe ich nach bestem Wissen gemacht.",
];

/// Page 1 of a template as a born-digital PDF.
fn first_page(t: &Template) -> Vec<u8> {
    letter_pdf(&din_letter(t.recipient, t.subject, t.body))
}

/// Continuation page `page` (2-based) of `pages`, as a born-digital PDF.
fn continuation_page(page: usize, pages: usize) -> Vec<u8> {
    let header =
        format!("Erika Mustermann, Lindenweg 4, 12345 Musterstadt - Seite {page} von {pages}");
    let mut lines: Vec<Line<'_>> = vec![(25.0, 20.0, 9.0, header.as_str())];
    for i in 0..34 {
        let text = CONTINUATION[(i + page * 3) % CONTINUATION.len()];
        lines.push((25.0, 35.0 + i as f32 * 7.0, 11.0, text));
    }
    letter_pdf(&lines)
}

/// A copy of a page image made distinct by a serial number: a row of small gray dots in the
/// bottom margin (as a scanner's imprinter would print), so that no two files share bytes (the
/// daemon recognises identical bytes as a duplicate) and no two pages share pixels.
fn stamped(img: &image::GrayImage, serial: u32) -> image::GrayImage {
    let mut img = img.clone();
    let (w, h) = img.dimensions();
    let (x0, y0) = (w - 60 - 33 * 6, h - 60);
    for bit in 0..33u32 {
        if bit == 0 || (serial >> (bit - 1)) & 1 == 1 {
            for dx in 0..3 {
                for dy in 0..3 {
                    img.put_pixel(x0 + bit * 6 + dx, y0 + dy, image::Luma([110]));
                }
            }
        }
    }
    img
}

/// One generated input file.
struct Doc {
    name: String,
    path: PathBuf,
    template: usize,
    pages: usize,
}

/// Renders each page image once (noisy 300 dpi scans) and makes distinct copies of them.
struct Letters {
    first: Vec<Option<image::GrayImage>>,
    continuation: BTreeMap<(usize, usize), image::GrayImage>,
    serial: u32,
}

impl Letters {
    fn new() -> Letters {
        Letters {
            first: TEMPLATES.iter().map(|_| None).collect(),
            continuation: BTreeMap::new(),
            serial: 0,
        }
    }

    fn page_images(&mut self, template: usize, pages: usize) -> Vec<image::GrayImage> {
        let first = self.first[template]
            .get_or_insert_with(|| noisy(render(&first_page(&TEMPLATES[template]), DPI), 10));
        let mut out = Vec::with_capacity(pages);
        self.serial += 1;
        out.push(stamped(first, self.serial));
        for page in 2..=pages {
            let img = self
                .continuation
                .entry((page, pages))
                .or_insert_with(|| noisy(render(&continuation_page(page, pages), DPI), 10));
            self.serial += 1;
            out.push(stamped(img, self.serial));
        }
        out
    }

    /// Writes a scanned letter of `pages` pages to `dir/name`.
    fn write(&mut self, dir: &Path, name: &str, template: usize, pages: usize) -> Doc {
        let images = self.page_images(template, pages);
        let refs: Vec<&image::GrayImage> = images.iter().collect();
        let bytes = scan_pdf_pages(&refs, DPI);
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write scan");
        Doc {
            name: name.to_string(),
            path,
            template,
            pages,
        }
    }

    /// `count` letters `prefix-0001.pdf`, ..., the templates in turn.
    fn batch(&mut self, dir: &Path, prefix: &str, count: usize, pages: usize) -> Vec<Doc> {
        let started = Instant::now();
        let mut docs = Vec::with_capacity(count);
        for i in 0..count {
            docs.push(self.write(
                dir,
                &format!("{prefix}-{:04}.pdf", i + 1),
                i % TEMPLATES.len(),
                pages,
            ));
            if (i + 1) % 100 == 0 {
                eprintln!("  made {} of {count} scans", i + 1);
            }
        }
        eprintln!(
            "  made {count} scans of {pages} page(s) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        docs
    }
}

/// Moves the files from the staging folder into the hot folder, all at once (rename on the same
/// file system, like the harness's `drop_file`). Returns when the first one was dropped.
fn drop_all(install: &Install, docs: &[&Doc]) -> (Instant, SystemTime) {
    let inbox = install.path("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let at = (Instant::now(), SystemTime::now());
    for d in docs {
        std::fs::rename(&d.path, inbox.join(&d.name)).expect("drop into the hot folder");
    }
    at
}

// ---------------------------------------------------------------------------------------------
// The reference

/// `pdftoppm -r 300 -gray` and `tesseract PAGE.pgm - -l deu` (one OCR thread) for every page,
/// two pages at a time; the wall time for all pages.
fn reference(docs: &[Doc], work: &Path) -> f64 {
    let jobs: Vec<(&Path, usize)> = docs
        .iter()
        .flat_map(|d| (1..=d.pages).map(move |p| (d.path.as_path(), p)))
        .collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (jobs, next) = (&jobs, &next);
            s.spawn(move || {
                let prefix = work.join(format!("ref-{worker}"));
                let pgm = prefix.with_extension("pgm");
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((pdf, page)) = jobs.get(i) else {
                        break;
                    };
                    let out = Command::new("pdftoppm")
                        .args(["-r", "300", "-gray", "-singlefile"])
                        .args(["-f", &page.to_string(), "-l", &page.to_string()])
                        .arg(pdf)
                        .arg(&prefix)
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .output()
                        .expect("pdftoppm (apt-get install poppler-utils)");
                    assert!(
                        out.status.success(),
                        "pdftoppm: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let out = Command::new("tesseract")
                        .arg(&pgm)
                        .arg("-")
                        .args(["-l", "deu"])
                        .env("OMP_THREAD_LIMIT", "1")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .output()
                        .expect("tesseract CLI (apt-get install tesseract-ocr-deu)");
                    assert!(
                        out.status.success(),
                        "tesseract failed on {pdf:?} page {page}"
                    );
                    let letters = String::from_utf8_lossy(&out.stdout)
                        .chars()
                        .filter(|c| c.is_alphabetic())
                        .count();
                    assert!(
                        letters >= 20,
                        "tesseract read no text on {pdf:?} page {page}"
                    );
                    let _ = std::fs::remove_file(&pgm);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Peak RSS of the daemon and its descendants

/// Parent pid and start time (clock ticks since boot) of a process.
fn proc_stat(pid: i32) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything, so count from its end.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// The process and all its descendants, each with its start time.
fn process_tree(root: i32) -> Vec<(i32, u64)> {
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    let mut root_start = None;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Some((ppid, start)) = proc_stat(pid) else {
            continue;
        };
        if pid == root {
            root_start = Some(start);
        }
        children.entry(ppid).or_default().push((pid, start));
    }
    let Some(start) = root_start else {
        return Vec::new();
    };
    let mut out = vec![(root, start)];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i].0) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// `VmRSS` of a process in kB (0 when gone, or for a zombie).
fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the summed RSS of a process tree every 100 ms on a thread of its own.
struct RssSampler {
    root: i32,
    stop: Arc<AtomicBool>,
    peak_kb: Arc<AtomicU64>,
    peak_processes: Arc<AtomicUsize>,
    /// Every process of the tree seen (pid, start time), for the clean-up.
    seen: Arc<Mutex<HashMap<i32, u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct RssPeak {
    mb: f64,
    processes: usize,
    seen: HashMap<i32, u64>,
}

impl RssSampler {
    fn start(root: u32) -> RssSampler {
        let root = root as i32;
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kb = Arc::new(AtomicU64::new(0));
        let peak_processes = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let thread = {
            let (stop, peak_kb, peak_processes, seen) = (
                stop.clone(),
                peak_kb.clone(),
                peak_processes.clone(),
                seen.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let tree = process_tree(root);
                    let kb: u64 = tree.iter().map(|(p, _)| rss_kb(*p)).sum();
                    peak_kb.fetch_max(kb, Ordering::SeqCst);
                    peak_processes.fetch_max(tree.len(), Ordering::SeqCst);
                    if let Ok(mut s) = seen.lock() {
                        s.extend(tree);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        RssSampler {
            root,
            stop,
            peak_kb,
            peak_processes,
            seen,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> RssPeak {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.remove(&self.root);
        RssPeak {
            mb: self.peak_kb.load(Ordering::SeqCst) as f64 * 1024.0 / 1e6,
            processes: self.peak_processes.load(Ordering::SeqCst),
            seen,
        }
    }
}

/// After the daemon is killed: its workers end when their pipe closes; any still there after
/// 5 s (same pid and start time, so never another process) is killed.
fn reap(seen: &HashMap<i32, u64>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<i32> = seen
            .iter()
            .filter(|(pid, start)| proc_stat(**pid).is_some_and(|(_, s)| s == **start))
            .map(|(pid, _)| *pid)
            .collect();
        if alive.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for pid in &alive {
                // SAFETY: kill(2) on a pid of the daemon's tree, checked just above.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
            eprintln!("  killed {} leftover worker process(es)", alive.len());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon's HTTP API

struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(install: &Install) -> Api {
        Api {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: format!("http://127.0.0.1:{}", install.port),
            token: install.token.clone(),
        }
    }

    /// GET with the API token; None if the daemon did not answer 200.
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    /// Documents per state (`/health` with the token).
    fn states(&self) -> Option<BTreeMap<String, u64>> {
        let v = self.get("/health")?;
        Some(
            v["documents"]
                .as_object()?
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect(),
        )
    }

    /// Documents in states they do not leave by themselves (review, quarantine, dead letter).
    fn stuck(&self) -> Vec<String> {
        let mut out = Vec::new();
        for state in STUCK {
            let Some(v) = self.get(&format!("/api/documents?state={state}&limit=1000")) else {
                continue;
            };
            for d in v["documents"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{} ({state}, proposal {}, {})",
                    d["original_name"].as_str().unwrap_or("?"),
                    d["mailbox"].as_str().unwrap_or("-"),
                    d["reason"].as_str().unwrap_or("")
                ));
            }
        }
        out
    }
}

fn count(states: &BTreeMap<String, u64>, which: &[&str]) -> u64 {
    which
        .iter()
        .map(|s| states.get(*s).copied().unwrap_or(0))
        .sum()
}

/// When and where a document was routed.
struct Routed {
    /// Drop until the `classified` event (the daemon's audit log), if found.
    event_s: Option<f64>,
    /// Drop until the poller saw a routed state.
    polled_s: f64,
    state: String,
    mailbox: String,
}

impl Routed {
    fn seconds(&self) -> f64 {
        self.event_s.unwrap_or(self.polled_s)
    }
}

/// Polls the API every 100 ms until the document dropped as `name` has a decision.
fn wait_routed(api: &Api, name: &str, dropped: (Instant, SystemTime), timeout: Duration) -> Routed {
    let mut id: Option<String> = None;
    let mut polls = 0u64;
    loop {
        let doc = match &id {
            Some(id) => api
                .get(&format!("/api/documents/{id}"))
                .map(|v| v["document"].clone()),
            None => {
                // Newest first: a letter dropped last is near the top, unless the intake took
                // many documents after it; now and then look further.
                let limit = if polls % 20 == 19 { 1000 } else { 50 };
                polls += 1;
                api.get(&format!("/api/documents?limit={limit}"))
                    .and_then(|v| {
                        v["documents"]
                            .as_array()?
                            .iter()
                            .find(|d| d["original_name"] == name)
                            .cloned()
                    })
            }
        };
        if let Some(d) = doc.filter(|d| d.is_object()) {
            let seen = dropped.0.elapsed().as_secs_f64();
            id = d["id"].as_str().map(str::to_string);
            let state = d["state"].as_str().unwrap_or("").to_string();
            if ROUTED.contains(&state.as_str()) {
                let event_s = id
                    .as_deref()
                    .and_then(|id| classified_at(api, id, dropped.1));
                return Routed {
                    event_s,
                    polled_s: seen,
                    state,
                    mailbox: d["mailbox"].as_str().unwrap_or("-").to_string(),
                };
            }
            assert!(
                !STUCK.contains(&state.as_str()),
                "{name} ended as {state}: {}",
                d["reason"]
            );
        }
        assert!(
            dropped.0.elapsed() < timeout,
            "{name} was not routed within {} s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds from `dropped` to the document's first `classified` event.
fn classified_at(api: &Api, id: &str, dropped: SystemTime) -> Option<f64> {
    let v = api.get(&format!("/api/documents/{id}"))?;
    let at = v["events"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == "classified")?["at"]
        .as_str()?
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&at).ok()?;
    let dropped: chrono::DateTime<chrono::Utc> = dropped.into();
    Some((at.with_timezone(&chrono::Utc) - dropped).num_milliseconds() as f64 / 1000.0)
}

// ---------------------------------------------------------------------------------------------
// Searchable PDFs

struct Checked {
    searchable: usize,
    right_mailbox: usize,
    problems: Vec<String>,
}

/// Reads every delivered file: a PDF with all its pages, page 1 showing the letter's words and
/// every page some text.
fn check_delivered(install: &Install, docs: &[Doc]) -> Checked {
    let by_name: HashMap<&str, &Doc> = docs.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut c = Checked {
        searchable: 0,
        right_mailbox: 0,
        problems: Vec::new(),
    };
    for (mailbox, path) in install.delivered() {
        let sidecar: serde_json::Value = std::fs::read(path.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let name = sidecar["original_name"].as_str().unwrap_or("?");
        let Some(doc) = by_name.get(name) else {
            c.problems
                .push(format!("{}: not one of ours ({name})", path.display()));
            continue;
        };
        let template = &TEMPLATES[doc.template];
        if mailbox == template.mailbox {
            c.right_mailbox += 1;
        }
        let is_pdf = std::fs::read(&path)
            .map(|b| b.starts_with(b"%PDF-"))
            .unwrap_or(false);
        let out = Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .stderr(Stdio::null())
            .output()
            .expect("pdftotext (apt-get install poppler-utils)");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        // pdftotext ends every page with a form feed.
        let pages: Vec<&str> = text
            .split('\x0c')
            .take(text.matches('\x0c').count())
            .collect();
        let words = template
            .words
            .iter()
            .filter(|w| pages.first().is_some_and(|p| p.contains(*w)))
            .count();
        let empty = pages
            .iter()
            .filter(|p| p.chars().filter(|c| c.is_alphabetic()).count() < 20)
            .count();
        if is_pdf && out.status.success() && pages.len() == doc.pages && words >= 2 && empty == 0 {
            c.searchable += 1;
        } else {
            c.problems.push(format!(
                "{name}: pdf {is_pdf}, {} of {} pages, {words} of 3 words on page 1, {empty} page(s) without text",
                pages.len(),
                doc.pages
            ));
        }
    }
    c
}

// ---------------------------------------------------------------------------------------------
// The cases

fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn header(opts: &Options) {
    let args = if opts.args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", opts.args.join(" "))
    };
    println!("  command: cargo bench --bench throughput{args}");
    println!(
        "  machine: nproc {}, load average (1, 5, 15 min) at start {}",
        nproc(),
        opts.load
    );
}

/// N letters into a fresh daemon versus the reference; false if the run is invalid.
fn throughput(opts: &Options) -> bool {
    let (n, p) = (opts.letters, opts.pages);
    let install = Install::new();
    let staging = install.path("staging");
    std::fs::create_dir_all(&staging).expect("staging");
    eprintln!("throughput: making {n} scanned letters of {p} page(s)");
    let docs = Letters::new().batch(&staging, "letter", n, p);
    let cores = nproc();

    eprintln!("throughput: reference (pdftoppm + tesseract, 2 pages at a time)");
    let work = install.path("reference");
    std::fs::create_dir_all(&work).expect("reference dir");
    let reference_s = reference(&docs, &work);

    eprintln!("throughput: poststelle");
    let daemon = install.serve(&[]);
    let api = Api::new(&install);
    let sampler = RssSampler::start(daemon.child.id());
    let all: Vec<&Doc> = docs.iter().collect();
    let (t0, _) = drop_all(&install, &all);
    let drop_s = t0.elapsed().as_secs_f64();
    let timeout = Duration::from_secs(1800.max(20 * (n * p) as u64));
    let mut last_check = Instant::now();
    loop {
        let delivered = install.delivered().len();
        if delivered >= n {
            break;
        }
        if last_check.elapsed() > Duration::from_secs(2) {
            last_check = Instant::now();
            let stuck = api.stuck();
            assert!(
                stuck.is_empty(),
                "letters that will not be delivered (every letter must be routable):\n  {}",
                stuck.join("\n  ")
            );
        }
        assert!(
            t0.elapsed() < timeout,
            "only {delivered} of {n} letters delivered after {} s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ours_s = t0.elapsed().as_secs_f64();
    let peak = sampler.stop();
    daemon.kill();
    reap(&peak.seen);

    let checked = check_delivered(&install, &docs);
    let ratio = ours_s / reference_s;
    let pages = n * p;
    println!(
        "throughput: {n} scanned letters x {p} page(s) = {pages} pages, {DPI} dpi, German, dropped at once"
    );
    header(opts);
    println!(
        "  reference  pdftoppm + tesseract CLI, 2 pages at a time   {reference_s:8.2} s  ({:.2} s/page)",
        reference_s / pages as f64
    );
    println!(
        "  poststelle drop -> all delivered (incl. {SETTLE_S:.1} s settle)   {ours_s:8.2} s  ({:.2} s/page; drop took {:.3} s)",
        ours_s / pages as f64,
        drop_s
    );
    println!(
        "  ratio poststelle/reference: {ratio:.2}  (goal <= 1.10: {})",
        if ratio <= 1.1 { "met" } else { "not met" }
    );
    println!(
        "  searchable PDFs delivered: {} of {n}; in the expected mailbox: {} of {n}",
        checked.searchable, checked.right_mailbox
    );
    for problem in &checked.problems {
        println!("    not searchable: {problem}");
    }
    println!(
        "  peak RSS, daemon + workers: {:.0} MB ({} processes at most)",
        peak.mb, peak.processes
    );
    let valid = checked.searchable >= n;
    if !valid {
        println!("  INVALID: fewer than {n} searchable PDFs delivered");
    }
    if opts.json {
        println!(
            "{}",
            serde_json::json!({
                "case": "throughput",
                "letters": n,
                "pages_per_letter": p,
                "pages": pages,
                "dpi": DPI,
                "nproc": cores,
                "reference_seconds": reference_s,
                "poststelle_seconds": ours_s,
                "settle_seconds": SETTLE_S,
                "ratio": ratio,
                "goal_ratio": 1.1,
                "searchable": checked.searchable,
                "right_mailbox": checked.right_mailbox,
                "peak_rss_mb": peak.mb,
                "peak_processes": peak.processes,
                "valid": valid,
            })
        );
    }
    keep_if_asked(install);
    valid
}

/// With `POSTSTELLE_BENCH_KEEP=1` a copy of the install (database, daemon log, delivered files)
/// is kept for a look at the audit trail; its path is printed on stderr.
fn keep_if_asked(install: Install) {
    if std::env::var_os("POSTSTELLE_BENCH_KEEP").is_some() {
        let to = std::env::temp_dir().join(format!("poststelle-bench-{}", std::process::id()));
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(install.dir.path())
            .arg(&to)
            .status()
            .is_ok_and(|s| s.success());
        if copied {
            eprintln!("install kept: {}", to.display());
        }
    }
}

/// A letter dropped into a backlog of `m` documents, against one dropped into the idle daemon.
fn backlog(opts: &Options, m: usize) -> bool {
    let p = opts.pages;
    let install = Install::new();
    let staging = install.path("staging");
    std::fs::create_dir_all(&staging).expect("staging");
    eprintln!("backlog: making 2 single-page letters and {m} documents of {p} page(s)");
    let mut letters = Letters::new();
    let single = letters.write(&staging, "single.pdf", 0, 1);
    let late = letters.write(&staging, "late.pdf", 0, 1);
    let waiting = letters.batch(&staging, "backlog", m, p);
    let cores = nproc();

    let daemon = install.serve(&[]);
    let api = Api::new(&install);
    let sampler = RssSampler::start(daemon.child.id());

    eprintln!("backlog: one letter into the idle daemon");
    let dropped = drop_all(&install, &[&single]);
    let first = wait_routed(&api, &single.name, dropped, Duration::from_secs(600));
    wait_for(
        "the single letter's delivery",
        Duration::from_secs(600),
        || (!install.delivered().is_empty()).then_some(()),
    );

    eprintln!("backlog: {m} documents at once, 5 s later the late letter");
    let all: Vec<&Doc> = waiting.iter().collect();
    let (t_backlog, _) = drop_all(&install, &all);
    let drop_s = t_backlog.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t_backlog.elapsed()));
    let dropped = drop_all(&install, &[&late]);
    let after_backlog_s = dropped.0.duration_since(t_backlog).as_secs_f64();
    let timeout = Duration::from_secs(1800.max(10 * (m * p) as u64));
    let second = wait_routed(&api, &late.name, dropped, timeout);
    let at_route = api.states().unwrap_or_default();
    // Not yet routed then: received or extracted (the late letter itself is routed).
    let unrouted = count(&at_route, &["received", "extracted"]);

    // Memory while the backlog drains: 30 s more, or until it is drained.
    let routed_at = Instant::now();
    let mut drained = false;
    while routed_at.elapsed() < Duration::from_secs(30) {
        if let Some(s) = api.states()
            && count(&s, &PENDING) == 0
            && s.values().sum::<u64>() >= (m + 2) as u64
        {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let at_end = api.states().unwrap_or_default();
    let sampled_s = t_backlog.elapsed().as_secs_f64();
    let peak = sampler.stop();
    daemon.kill();
    reap(&peak.seen);

    let ratio = second.seconds() / first.seconds();
    let states = |s: &BTreeMap<String, u64>| {
        s.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "throughput, backlog: a single-page letter dropped {after_backlog_s:.1} s after {m} documents of {p} page(s), {DPI} dpi"
    );
    header(opts);
    println!(
        "  single-page letter, idle daemon: drop -> routed {:7.2} s  (seen by polling {:.2} s; {} to {})",
        first.seconds(),
        first.polled_s,
        first.state,
        first.mailbox
    );
    println!(
        "  late letter, into the backlog:   drop -> routed {:7.2} s  (seen by polling {:.2} s; {} to {})",
        second.seconds(),
        second.polled_s,
        second.state,
        second.mailbox
    );
    println!(
        "  ratio late/single: {ratio:.2}  (goal <= 3: {})",
        if ratio <= 3.0 { "met" } else { "not met" }
    );
    println!(
        "  backlog documents not yet routed when the late letter was: {unrouted} of {m}{}",
        if unrouted == 0 {
            "  (WARNING: the backlog no longer delayed it; use a larger --backlog)"
        } else {
            ""
        }
    );
    println!(
        "  peak RSS, daemon + workers: {:.0} MB, from the daemon's start to {sampled_s:.0} s after the backlog's drop ({} processes at most; goal < 500 MB: {})",
        peak.mb,
        peak.processes,
        if peak.mb < 500.0 { "met" } else { "not met" }
    );
    println!(
        "  documents at the end ({}): {}; dropping the backlog took {drop_s:.3} s",
        if drained {
            "backlog drained"
        } else {
            "30 s after the late letter was routed"
        },
        states(&at_end)
    );
    if opts.json {
        println!(
            "{}",
            serde_json::json!({
                "case": "backlog",
                "backlog": m,
                "pages_per_document": p,
                "dpi": DPI,
                "nproc": cores,
                "late_dropped_after_seconds": after_backlog_s,
                "single_route_seconds": first.seconds(),
                "single_route_polled_seconds": first.polled_s,
                "late_route_seconds": second.seconds(),
                "late_route_polled_seconds": second.polled_s,
                "ratio": ratio,
                "goal_ratio": 3.0,
                "unrouted_when_late_routed": unrouted,
                "peak_rss_mb": peak.mb,
                "peak_processes": peak.processes,
                "goal_rss_mb": 500.0,
                "sampled_seconds": sampled_s,
                "drained": drained,
                "states_at_end": at_end,
            })
        );
    }
    keep_if_asked(install);
    true
}

fn main() {
    let opts = parse_args();
    let ok = match opts.backlog {
        Some(m) => backlog(&opts, m),
        None => throughput(&opts),
    };
    // The model and font folders the harness made for this process.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for dir in ["test-models", "test-fonts"] {
        let _ = std::fs::remove_dir_all(tmp.join(format!("{dir}-{}", std::process::id())));
    }
    if !ok {
        std::process::exit(1);
    }
}
