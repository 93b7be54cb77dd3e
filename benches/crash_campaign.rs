//! Crash campaign: many documents through the real daemon while it is killed with SIGKILL at
//! random moments and started again, many times; then one clean run until it is idle, and an
//! account of every input.
//!
//! Run: `cargo bench --bench crash_campaign` (the long form: 500 documents, 50 kills), or with
//! arguments after `--`:
//!
//! - `--docs N`: N documents (default 500);
//! - `--kills K`: K kills (default 50);
//! - `--quick`: the short form for CI: 100 documents, 10 kills (explicit sizes win);
//! - `--seed S`: the random seed (default: from the clock); every run prints its seed, and the
//!   same seed replays the same documents, arrival order and kill delays.
//!
//! **Inputs.** Each document is unique (it carries its own Aktenzeichen): most are plain text
//! (`.txt`) and born-digital PDFs, about one in twenty is a scanned letter (image-only PDF, read
//! by OCR) and about one in twenty a PDF cut off in the middle (it must end in quarantine with
//! its German reason). The documents are dropped into the hot folder over the whole campaign,
//! the way a scanner does (written under a hidden name, then renamed), in K+1 waves: part of
//! each wave while the daemon is down, the rest in bursts after it is up again.
//!
//! **Kills.** After each wave the daemon (`poststelle serve`, a child process of this bench)
//! runs for a random time (0 to 3 s, from the seeded generator) and is then killed with
//! SIGKILL: in intake, extraction, routing, delivery or its own start-up, wherever it is. After
//! the last kill a final daemon runs until every input is answered and nothing is pending.
//!
//! **The account.** Every input (known by the SHA-256 of its bytes) must end exactly once:
//! delivered (a document in state `delivered` with exactly one file in the filesystem DMS
//! target), in review, or quarantined with a reason. The run fails (exit code 1) when an input
//! is lost (no document, or a document left in a working state or dead-lettered), when one is
//! delivered twice (two documents for the same bytes, or one document filed in two places, or a
//! delivered file whose document the store does not know), when a good letter is quarantined or
//! a broken one is not, when a file is left in the inbox, or when the idle daemon's temporary
//! directory holds more than its running workers' directories (each kill leaves its workers'
//! directories, copies of the letters being read; the next start must remove them). The last
//! line sums it up:
//!
//! ```text
//! crash campaign: documents 100, kills 10, delivered 86, review 9, quarantined 5, lost 0, duplicated 0, seconds 74.2
//! ```

// The integration tests' harness (letters, a fresh install, the daemon as a child process).
#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo bench --bench crash_campaign -- [--docs N] [--kills K] [--quick] [--seed S]";

/// Worker directories the idle daemon may have in its temporary directory: one per worker
/// (`extract.workers` is 2 in the example config), with room for one being replaced.
const MAX_WORKER_DIRS: usize = 3;

/// States a document is left in once the pipeline is done with it.
const FINAL: [&str; 4] = ["delivered", "review", "quarantined", "dead_letter"];

struct Options {
    docs: usize,
    kills: usize,
    seed: u64,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("crash_campaign: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Options {
    // `cargo bench` passes `--bench` to every bench binary.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (mut docs, mut kills, mut seed, mut quick) = (None, None, None, false);
    let number = |v: Option<&String>, what: &str| -> u64 {
        v.and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| usage_error(&format!("{what} needs a number")))
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--docs" => {
                docs = Some(number(args.get(i + 1), "--docs").max(1) as usize);
                i += 1;
            }
            "--kills" => {
                kills = Some(number(args.get(i + 1), "--kills") as usize);
                i += 1;
            }
            "--seed" => {
                seed = Some(number(args.get(i + 1), "--seed"));
                i += 1;
            }
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => usage_error(&format!("unknown argument {other}")),
        }
        i += 1;
    }
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    Options {
        docs: docs.unwrap_or(if quick { 100 } else { 500 }),
        kills: kills.unwrap_or(if quick { 10 } else { 50 }),
        seed: seed.unwrap_or(clock % 1_000_000_007),
    }
}

/// SplitMix64: small, seedable, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Text,
    Pdf,
    Scan,
    Broken,
}

struct Input {
    name: String,
    bytes: Vec<u8>,
    sha256: String,
    kind: Kind,
}

const DEPARTMENTS: &[(&str, &str, &str)] = &[
    (
        "Bauordnungsamt",
        "Bauantrag für einen Carport",
        "anbei der Bauantrag mit Lageplan und Bauzeichnungen für einen Carport.",
    ),
    (
        "Steueramt",
        "Anmeldung der Hundesteuer",
        "ich melde unseren Hund zur Hundesteuer an und bitte um die Steuermarke.",
    ),
    (
        "Abfallwirtschaft",
        "Sperrmüllabholung",
        "ich bitte um einen Termin für die Abholung von Sperrmüll: ein Sofa und zwei Schränke.",
    ),
    (
        "Stadtkasse",
        "Ratenzahlung",
        "ich bitte um Ratenzahlung für den Gebührenbescheid, Kassenzeichen 210.114.7789.",
    ),
];

fn make_inputs(n: usize, rng: &mut Rng) -> Vec<Input> {
    (0..n)
        .map(|i| {
            let (dept, subject, body) = DEPARTMENTS[rng.below(DEPARTMENTS.len() as u64) as usize];
            let reference = format!("Aktenzeichen K-{i:05}-{:08x}", rng.next() as u32);
            let roll = rng.below(100);
            let kind = match roll {
                0..=4 => Kind::Scan,
                5..=9 => Kind::Broken,
                10..=54 => Kind::Text,
                _ => Kind::Pdf,
            };
            let letter = || {
                let body = [body, reference.as_str()];
                letter_pdf(&din_letter(
                    &["Stadt Musterstadt", dept, "Rathausplatz 1", "12345 Musterstadt"],
                    subject,
                    &body,
                ))
            };
            let (name, bytes) = match kind {
                Kind::Text => (
                    format!("c{i:05}.txt"),
                    format!(
                        "An: Stadt Musterstadt, {dept}\nBetreff: {subject}\n\nSehr geehrte Damen und Herren,\n\
                         {body}\n{reference}\n\nMit freundlichen Grüßen\nErika Mustermann\n"
                    )
                    .into_bytes(),
                ),
                Kind::Pdf => (format!("c{i:05}.pdf"), letter()),
                // 200 dpi keeps OCR quick; the letter is still read well.
                Kind::Scan => (format!("c{i:05}-scan.pdf"), scan_pdf(&render(&letter(), 200), 200)),
                Kind::Broken => {
                    let full = letter();
                    (format!("c{i:05}-kaputt.pdf"), full[..full.len() / 3].to_vec())
                }
            };
            Input {
                sha256: hex::encode(Sha256::digest(&bytes)),
                name,
                bytes,
                kind,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The campaign

fn inbox_files(install: &Install) -> usize {
    std::fs::read_dir(install.path("inbox"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .count()
        })
        .unwrap_or(0)
}

fn documents(install: &Install) -> Vec<serde_json::Value> {
    install.json_lines(["documents", "list", "--json", "--limit", "1000000"])
}

/// Every input answered (a document in a final state, or a quarantine entry of its own when it
/// never became a document), nothing pending, the inbox empty.
fn idle(install: &Install, inputs: &[Input]) -> bool {
    if inbox_files(install) > 0 {
        return false;
    }
    let docs = documents(install);
    if docs
        .iter()
        .any(|d| !FINAL.contains(&d["state"].as_str().unwrap_or("")))
    {
        return false;
    }
    let known: std::collections::HashSet<&str> =
        docs.iter().filter_map(|d| d["sha256"].as_str()).collect();
    inputs.iter().all(|i| known.contains(i.sha256.as_str()))
}

#[derive(Default)]
struct Account {
    delivered: usize,
    review: usize,
    quarantined: usize,
    lost: usize,
    duplicated: usize,
    wrong_class: usize,
    problems: Vec<String>,
}

fn account(install: &Install, inputs: &[Input]) -> Account {
    let docs = documents(install);
    let mut by_sha: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
    let mut sha_of: HashMap<&str, &str> = HashMap::new();
    for d in &docs {
        let (Some(sha), Some(id)) = (d["sha256"].as_str(), d["id"].as_str()) else {
            continue;
        };
        by_sha.entry(sha).or_default().push(d);
        sha_of.insert(id, sha);
    }
    // Delivered files per document id, over every mailbox of the target.
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mb in std::fs::read_dir(install.path("dms"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(mb.path()).into_iter().flatten().flatten() {
            let p = f.path();
            let name = f.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.ends_with(".json") {
                continue;
            }
            if !p.with_extension("json").exists() {
                continue;
            }
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            files
                .entry(stem)
                .or_default()
                .push(mb.file_name().to_string_lossy().to_string());
        }
    }
    let mut a = Account::default();
    for (id, mailboxes) in &files {
        if !sha_of.contains_key(id.as_str()) {
            a.duplicated += 1;
            a.problems.push(format!(
                "delivered file {id} in {mailboxes:?} belongs to no document in the store"
            ));
        }
    }
    for input in inputs {
        let found = by_sha
            .get(input.sha256.as_str())
            .cloned()
            .unwrap_or_default();
        let Some(doc) = found.first() else {
            a.lost += 1;
            a.problems
                .push(format!("{}: lost (no document for its bytes)", input.name));
            continue;
        };
        if found.len() > 1 {
            a.duplicated += 1;
            a.problems.push(format!(
                "{}: {} documents for the same bytes",
                input.name,
                found.len()
            ));
        }
        let id = doc["id"].as_str().unwrap_or_default();
        let filed = files.get(id).map(Vec::len).unwrap_or(0);
        let state = doc["state"].as_str().unwrap_or_default();
        match state {
            "delivered" => {
                a.delivered += 1;
                if filed == 0 {
                    a.lost += 1;
                    a.problems.push(format!(
                        "{}: state delivered, but no file at the target",
                        input.name
                    ));
                }
            }
            "review" => a.review += 1,
            "quarantined" => {
                a.quarantined += 1;
                if doc["reason"].as_str().unwrap_or_default().trim().is_empty() {
                    a.problems
                        .push(format!("{}: quarantined without a reason", input.name));
                    a.wrong_class += 1;
                }
            }
            other => {
                a.lost += 1;
                a.problems
                    .push(format!("{}: left in state {other}: {doc}", input.name));
            }
        }
        if filed > 1 {
            a.duplicated += 1;
            a.problems
                .push(format!("{}: filed {filed} times at the target", input.name));
        }
        if state != "delivered" && filed > 0 {
            a.duplicated += 1;
            a.problems.push(format!(
                "{}: at the target, but in state {state}",
                input.name
            ));
        }
        let should_quarantine = input.kind == Kind::Broken;
        if (state == "quarantined") != should_quarantine && FINAL.contains(&state) {
            a.wrong_class += 1;
            a.problems.push(format!(
                "{} ({:?}): ended {state}: {}",
                input.name,
                input.kind,
                doc["reason"].as_str().unwrap_or_default()
            ));
        }
    }
    a
}

fn drop_input(install: &Install, input: &Input) {
    install.drop_file(&input.name, &input.bytes);
}

fn run(opts: &Options) -> bool {
    println!(
        "crash campaign: {} documents, {} kills, seed {} (replay: cargo bench --bench crash_campaign -- --docs {} --kills {} --seed {})",
        opts.docs, opts.kills, opts.seed, opts.docs, opts.kills, opts.seed
    );
    let mut rng = Rng(opts.seed);
    let inputs = make_inputs(opts.docs, &mut rng);
    let count = |k: Kind| inputs.iter().filter(|i| i.kind == k).count();
    println!(
        "inputs: {} text, {} born-digital PDF, {} scans, {} broken PDF",
        count(Kind::Text),
        count(Kind::Pdf),
        count(Kind::Scan),
        count(Kind::Broken)
    );
    let install = Install::new();
    // The workers' directories go into the install (a killed daemon leaves them behind).
    let tmp = install.path("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let tmp = tmp.display().to_string();
    let env = [("TMPDIR", tmp.as_str())];
    let started = Instant::now();
    let waves = opts.kills + 1;
    let mut next = 0;
    let mut leftovers = 0;
    for round in 0..waves {
        // Documents still to come are spread over the remaining waves.
        let left = inputs.len() - next;
        let size = if round + 1 == waves {
            left
        } else {
            left / (waves - round)
        };
        let wave = &inputs[next..next + size];
        next += size;
        // The scanner keeps scanning while the daemon is down.
        let before = rng.below(wave.len() as u64 / 3 + 1) as usize;
        for input in &wave[..before] {
            drop_input(&install, input);
        }
        let t = Instant::now();
        let daemon = install.serve(&env);
        let up = t.elapsed();
        // The rest in one to three bursts.
        let mut rest = &wave[before..];
        while !rest.is_empty() {
            let burst = (rng.below(rest.len() as u64) as usize + 1).max(rest.len() / 3);
            let burst = burst.min(rest.len());
            for input in &rest[..burst] {
                drop_input(&install, input);
            }
            rest = &rest[burst..];
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        if round + 1 < waves {
            let delay = rng.below(3000);
            std::thread::sleep(Duration::from_millis(delay));
            daemon.kill();
            println!(
                "kill {:>3}: wave of {size} ({before} while down), up after {:.1} s, killed {delay} ms after the last drop",
                round + 1,
                up.as_secs_f64()
            );
        } else {
            println!("final run: wave of {size} ({before} while down); waiting until idle");
            let timeout = Duration::from_secs(300 + 3 * opts.docs as u64);
            let deadline = Instant::now() + timeout;
            while !idle(&install, &inputs) {
                if Instant::now() > deadline {
                    println!("not idle after {} s", timeout.as_secs());
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            // Nothing may move after idle: a late duplicate would show here.
            std::thread::sleep(Duration::from_secs(2));
            // What the kills left of the workers' directories (copies of letters) is removed
            // when the daemon starts again: only the running workers' own are there now.
            leftovers = std::fs::read_dir(&tmp)
                .map(|d| d.flatten().count())
                .unwrap_or(0);
            daemon.kill();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let a = account(&install, &inputs);
    let inbox = inbox_files(&install);
    for p in a.problems.iter().take(30) {
        println!("  {p}");
    }
    if a.problems.len() > 30 {
        println!("  ... {} more", a.problems.len() - 30);
    }
    println!(
        "worker directories in TMPDIR when idle: {leftovers} (at most {MAX_WORKER_DIRS}: the running workers'); files left in the inbox: {inbox}"
    );
    println!(
        "crash campaign: documents {}, kills {}, delivered {}, review {}, quarantined {}, lost {}, duplicated {}, seconds {seconds:.1}",
        opts.docs, opts.kills, a.delivered, a.review, a.quarantined, a.lost, a.duplicated
    );
    let ok = a.lost == 0
        && a.duplicated == 0
        && a.wrong_class == 0
        && inbox == 0
        && leftovers <= MAX_WORKER_DIRS;
    if !ok {
        println!("FAILED (seed {})", opts.seed);
        keep(install);
    }
    ok
}

/// Keeps a copy of a failed campaign's install (database, logs, inbox, target) for inspection.
fn keep(install: Install) {
    let to = std::env::temp_dir().join(format!("poststelle-crash-campaign-{}", std::process::id()));
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(install.dir.path())
        .arg(&to)
        .status()
        .is_ok_and(|s| s.success());
    if copied {
        println!("install kept: {}", to.display());
    }
}

fn main() {
    let opts = parse_args();
    if !run(&opts) {
        std::process::exit(1);
    }
}
