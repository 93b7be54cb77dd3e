//! Fuzzing on stable Rust: a small seeded mutator over seed inputs, against three targets.
//!
//! - `rules`: the rule-file parser (`RuleSet::load_dir` on one mutated `rules/*.toml`), and, when
//!   a file loads, its rules evaluated against a letter and its own test cases run;
//! - `mime`: the e-mail intake: what the daemon itself does with an IMAP message's bytes
//!   (`intake::imap::parse_head`, `body_sha256`, `extract::sniff`, in process) and what the
//!   extraction worker does with them (its jobs `Extract` and `MailPdf` through
//!   `extract::run_job`, as the worker runs them: `extract::mail::extract` and `render_pdf`,
//!   a parser's panic caught and made the document's error);
//! - `extract`: the PDF and image intake through the sandboxed extraction workers, as the
//!   daemon calls them (`extract::sniff`, then `Extractor::extract` with a time limit of 10 s
//!   per job). A worker may die or run out of time: that is an error the pipeline quarantines
//!   with a German reason, not a finding.
//!
//! A **finding** is a panic in the caller, a call that does not return within its limit (rules
//! and mime: 10 s; extract: the job's time limit plus 20 s), or an error without a German
//! reason. Its input is saved under the findings directory (`<dir>/<target>/<sha256>.bin`, with
//! a `.txt` saying what happened) and the run fails (exit code 1). Replay one with `--replay`.
//!
//! Seeds: `rules/*.toml`; the e-mails of `../shared/corpora/eml/` and generated messages; the
//! PDFs of `../shared/corpora/pdf-malformed/` and the images of `images-hostile/`, plus
//! generated letters (born-digital PDF, scans as PNG, JPEG, TIFF, image-only PDF). The corpora
//! are read where they are (beside the repository). Mutations, one to four per input: bit flips,
//! interesting bytes, truncation, deletion and duplication of a range, splicing with another
//! seed, and inserting tokens that mean something to the parser (`[[rule]]`, `regex = '`,
//! `Content-Type: multipart/mixed; boundary=`, `/Length 2147483647`, `obj`, ...). An input whose
//! outcome was not seen before (the kind of result or error) joins the corpus.
//!
//! Run: `cargo bench --bench fuzz` (every target for 10 minutes), or with arguments after `--`:
//! `--seconds N` (per target, default 600), `--target rules|mime|extract` (repeatable; default
//! all), `--seed S` (default from the clock, printed), `--findings DIR` (default
//! `<target dir>/tmp/fuzz-findings`), `--replay FILE` (one input of `--target` once). CI runs
//! `cargo test --bench fuzz -- --seconds 20`. The last line per target:
//!
//! ```text
//! fuzz rules: seconds 20.0, executions 4123, corpus 16+41, findings 0
//! ```

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use poststelle::extract::{self, ExtractError, ExtractOptions, Extractor, MediaType};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo bench --bench fuzz -- [--seconds N] [--target rules|mime|extract]... \
                     [--seed S] [--findings DIR] [--replay FILE]";

/// Limit of one in-process call (rules, mime).
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The extraction job's own time limit in this campaign.
const JOB_LIMIT_SECS: u64 = 10;
/// How much longer than its job's limit a call of the extractor may take (queueing, a worker's
/// start and its replacement).
const EXTRACT_GRACE: Duration = Duration::from_secs(20);
/// Largest input a mutation may grow to.
const MAX_INPUT: usize = 4 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Rules,
    Mime,
    Extract,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Rules => "rules",
            Target::Mime => "mime",
            Target::Extract => "extract",
        }
    }

    fn parse(s: &str) -> Option<Target> {
        match s {
            "rules" => Some(Target::Rules),
            "mime" => Some(Target::Mime),
            "extract" => Some(Target::Extract),
            _ => None,
        }
    }

    /// Tokens that mean something to this target's parsers.
    fn tokens(self) -> &'static [&'static [u8]] {
        match self {
            Target::Rules => &[
                b"[[rule]]\n",
                b"[[test]]\n",
                b"mailbox = \"22\"\n",
                b"mailbox = \"\"\n",
                b"id = \"x\"\n",
                b"zone = \"address\"\n",
                b"zone = \"subject\"\n",
                b"zone = \"nirgends\"\n",
                b"terms = [\"*\", \"**\", \"\", \"a*b*\"]\n",
                b"regex = '(a+)+$'\n",
                b"regex = '(?i)\\b\\w{1000}{1000}'\n",
                b"regex = '['\n",
                b"near = { terms = [\"x\"], within = 0 }\n",
                b"near = { terms = [], within = 4294967296 }\n",
                b"unless = [\"*\"]\n",
                b"weight = 1e308\n",
                b"weight = -inf\n",
                b"weight = nan\n",
                b"text = \"\"\"\n\"\"\"\n",
                b"expect = \"22\"\n",
                b"\x00",
                b"\xff\xfe",
                b"\"\\u0000\"",
                b"{",
                b"]]]]",
            ],
            Target::Mime => &[
                b"Content-Type: multipart/mixed; boundary=\"b\"\r\n",
                b"\r\n--b\r\n",
                b"\r\n--b--\r\n",
                b"Content-Type: message/rfc822\r\n\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Transfer-Encoding: quoted-printable\r\n",
                b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n",
                b"Content-Disposition: attachment; filename*=utf-8''%E4%F6.txt\r\n",
                b"Content-Type: text/html; charset=\"utf-7\"\r\n",
                b"=?utf-8?B?w6TDtsO8?=",
                b"=?iso-8859-1?Q?=E4=F6?=",
                b"From: \"\" <@>\r\n",
                b"To: a@b, , <>, \"x\" <y@z>\r\n",
                b"Subject: \r\n",
                b"Date: Mon, 31 Feb 99999 25:61:61 +9999\r\n",
                b"Message-ID: <>\r\n",
                b"\r\n\r\n",
                b"=\r\n",
                b"%PDF-1.4\n",
                b"JVBERi0xLjQK",
                b"\x00",
            ],
            Target::Extract => &[
                b"%PDF-1.7\n",
                b"%%EOF\n",
                b"obj\n",
                b"endobj\n",
                b"stream\n",
                b"endstream\n",
                b"/Length 2147483647",
                b"/Length -1",
                b"/Count 1000000000",
                b"/Filter /FlateDecode",
                b"/Filter /DCTDecode",
                b"/Filter [/ASCIIHexDecode /LZWDecode /RunLengthDecode]",
                b"/Width 100000 /Height 100000",
                b"/Kids [3 0 R 3 0 R]",
                b"/Parent 3 0 R",
                b"xref\n0 1\n0000000000 65535 f \n",
                b"trailer << /Root 1 0 R /Encrypt 9 0 R >>",
                b"startxref\n0\n",
                b"<<<<<<<<<<<<",
                b"IHDR",
                b"IDAT",
                b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff",
                b"II*\x00",
                b"MM\x00*",
                b"\xff\xff\xff\xff",
                b"\x00\x00\x00\x00",
            ],
        }
    }
}

struct Options {
    seconds: u64,
    targets: Vec<Target>,
    seed: u64,
    findings: PathBuf,
    replay: Option<PathBuf>,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("fuzz: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut o = Options {
        seconds: 600,
        targets: Vec::new(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_007)
            .unwrap_or(1),
        findings: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings"),
        replay: None,
    };
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .unwrap_or_else(|| usage_error(&format!("{} needs a value", args[i])))
        };
        match args[i].as_str() {
            "--seconds" => {
                o.seconds = value(i)
                    .parse()
                    .unwrap_or_else(|_| usage_error("--seconds needs a number"));
                i += 1;
            }
            "--seed" => {
                o.seed = value(i)
                    .parse()
                    .unwrap_or_else(|_| usage_error("--seed needs a number"));
                i += 1;
            }
            "--target" => {
                let v = value(i);
                o.targets.push(
                    Target::parse(&v)
                        .unwrap_or_else(|| usage_error(&format!("unknown target {v}"))),
                );
                i += 1;
            }
            "--findings" => {
                o.findings = PathBuf::from(value(i));
                i += 1;
            }
            "--replay" => {
                o.replay = Some(PathBuf::from(value(i)));
                i += 1;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => usage_error(&format!("unknown argument {other}")),
        }
        i += 1;
    }
    if o.targets.is_empty() {
        o.targets = vec![Target::Rules, Target::Mime, Target::Extract];
    }
    o
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

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

fn mutate(input: &[u8], corpus: &[Vec<u8>], tokens: &[&[u8]], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            // Bit flips.
            0 if len > 0 => {
                for _ in 0..=rng.below(8) {
                    let i = rng.below(len);
                    out[i] ^= 1 << rng.below(8);
                }
            }
            // Interesting bytes.
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = [0x00, 0xff, 0x7f, 0x80, b'\n', b'"', b'\\', b'%'][rng.below(8)];
            }
            // Truncation.
            2 if len > 0 => out.truncate(rng.below(len)),
            // Deletion of a range.
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64.min(len - a))).min(len);
                out.drain(a..b);
            }
            // Duplication of a range.
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256.min(len - a))).min(len);
                let copy = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            // Splicing with another input.
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            // A token of the format, inserted or overwriting.
            _ => {
                let t = tokens[rng.below(tokens.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || at + t.len() > len {
                    out.splice(at..at, t.iter().copied());
                } else {
                    out[at..at + t.len()].copy_from_slice(t);
                }
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn corpora() -> PathBuf {
    harness::corpora()
}

fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() <= MAX_INPUT)
        .collect()
}

fn seeds(target: Target) -> Vec<Vec<u8>> {
    let ext = |p: &Path, e: &str| p.extension().is_some_and(|x| x == e);
    match target {
        Target::Rules => files_under(&harness::repo().join("rules"), |p| ext(p, "toml")),
        Target::Mime => {
            let mut s = files_under(&corpora().join("eml"), |p| ext(p, "eml"));
            s.extend(generated_mails());
            s
        }
        Target::Extract => {
            let mut s = files_under(&corpora().join("pdf-malformed"), |p| ext(p, "pdf"));
            s.extend(files_under(&corpora().join("images-hostile"), |p| {
                !p.to_string_lossy().contains("LICENSE")
            }));
            s.extend(generated_scans());
            s
        }
    }
}

fn small_letter() -> Vec<u8> {
    harness::letter_pdf(&harness::din_letter(
        &[
            "Stadt Musterstadt",
            "Steueramt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        "Anmeldung der Hundesteuer",
        &["ich melde unseren Hund Bello zur Hundesteuer an."],
    ))
}

fn generated_mails() -> Vec<Vec<u8>> {
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD.encode(small_letter());
    let plain = "From: Eva Schmitz <eva@example.org>\r\nTo: steueramt@musterstadt.de\r\n\
                 Subject: Hundesteuer\r\nDate: Mon, 7 Dec 2026 10:00:00 +0100\r\n\
                 Message-ID: <a1@example.org>\r\n\r\nIch melde unseren Hund an.\r\n";
    let multipart = format!(
        "From: Eva Schmitz <eva@example.org>\r\nTo: steueramt@musterstadt.de\r\n\
         Subject: =?utf-8?Q?Anh=C3=A4nge?=\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nSiehe Anhang.\r\n--b\r\n\
         Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"brief.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b\r\n\
         Content-Type: message/rfc822\r\n\r\n{plain}\r\n--b--\r\n"
    );
    vec![plain.as_bytes().to_vec(), multipart.into_bytes()]
}

fn generated_scans() -> Vec<Vec<u8>> {
    // A small piece of a scanned letter keeps OCR quick.
    let page = harness::render(&small_letter(), 100);
    let piece = image::imageops::crop_imm(&page, 60, 60, 500, 300).to_image();
    vec![
        small_letter(),
        harness::png(&piece),
        harness::scan_jpeg(&piece),
        harness::tiff(&[&piece]),
        harness::scan_pdf(&piece, 100),
    ]
}

// ---------------------------------------------------------------------------------------------
// Targets

/// What one execution did: an outcome class (for the corpus's feedback) or a finding.
enum Outcome {
    Class(String),
    Finding(String),
}

/// The class of an extraction error (its kind and the start of its message).
fn error_class(e: &ExtractError) -> String {
    let debug = format!("{e:?}");
    let variant = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    let message: String = e.to_string().chars().take(30).collect();
    format!("{variant}:{message}")
}

/// An error must carry a German reason (the quarantine's).
fn check_reason(e: &ExtractError) -> Outcome {
    let reason = e.reason_de();
    if reason.trim().is_empty() {
        Outcome::Finding(format!("error without a German reason: {e}"))
    } else {
        Outcome::Class(error_class(e))
    }
}

struct Rules {
    dir: tempfile::TempDir,
    markers: Vec<String>,
}

impl Rules {
    fn run(&self, input: &[u8]) -> Outcome {
        let file = self.dir.path().join("fuzz.toml");
        if let Err(e) = std::fs::write(&file, input) {
            return Outcome::Finding(format!("cannot write the input: {e}"));
        }
        match poststelle::classify::rules::RuleSet::load_dir(self.dir.path(), &[]) {
            Err(e) => {
                let msg = e.to_string();
                if msg.trim().is_empty() {
                    return Outcome::Finding("a rule error without a message".into());
                }
                Outcome::Class(format!(
                    "error:{}",
                    msg.chars().take(30).collect::<String>()
                ))
            }
            Ok(set) => {
                let zones = extract::zones::from_text(
                    "Stadt Musterstadt\nSteueramt\nRathausplatz 1\n12345 Musterstadt\n\n\
                     Anmeldung der Hundesteuer\n\nSehr geehrte Damen und Herren,\n\
                     ich melde unseren Hund Bello zur Hundesteuer an.",
                    &self.markers,
                );
                let hits = set.eval(&zones);
                let failures = set.check_tests(&self.markers);
                Outcome::Class(format!("ok:{}:{}", hits.len(), failures.len()))
            }
        }
    }
}

struct Mime {
    opts: ExtractOptions,
    dir: tempfile::TempDir,
}

impl Mime {
    /// One job of the worker, run as the worker runs it (`extract::run_job`: a panic of a
    /// parser is caught there and becomes the document's error); its JSON result, decoded.
    fn job<T: serde::de::DeserializeOwned>(
        &self,
        job: extract::Job,
        path: &Path,
    ) -> Result<Result<T, ExtractError>, String> {
        let out = self.dir.path().join("result.json");
        let _ = std::fs::remove_file(&out);
        extract::run_job(job, MediaType::Eml, path, &out, None, &self.opts)
            .map_err(|e| format!("the worker's job failed: {e}"))?;
        let json = std::fs::read(&out).map_err(|e| format!("no result: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("unreadable result: {e}"))
    }

    fn run(&self, input: &[u8]) -> Outcome {
        // In the daemon (IMAP intake): header facts and the body's hash, in process.
        let head = poststelle::intake::imap::parse_head(input);
        let _ = poststelle::intake::imap::body_sha256(input);
        let sniffed = extract::sniff(input, "nachricht.eml");
        // In the worker: the text and the delivery PDF of the message.
        let path = self.dir.path().join("nachricht.eml");
        if let Err(e) = std::fs::write(&path, input) {
            return Outcome::Finding(format!("cannot write the input: {e}"));
        }
        let extracted = match self.job::<extract::Extraction>(extract::Job::Extract, &path) {
            Ok(r) => r,
            Err(f) => return Outcome::Finding(f),
        };
        let pdf = match self.job::<()>(extract::Job::MailPdf, &path) {
            Ok(r) => r,
            Err(f) => return Outcome::Finding(f),
        };
        let mut class = format!(
            "{}:{}:{}",
            extracted
                .as_ref()
                .map(|e| format!("ok pages {}", e.pages.len().min(5)))
                .unwrap_or_else(error_class),
            head.message_id.is_some(),
            sniffed.map(|m| m.mime()).unwrap_or("-"),
        );
        for e in [extracted.err(), pdf.err()].into_iter().flatten() {
            match check_reason(&e) {
                Outcome::Finding(f) => return Outcome::Finding(f),
                Outcome::Class(c) => class.push_str(&c),
            }
        }
        Outcome::Class(class)
    }
}

struct Extract {
    rt: tokio::runtime::Runtime,
    extractor: Extractor,
    dir: tempfile::TempDir,
    n: u64,
}

impl Extract {
    fn new() -> Extract {
        let mut settings = poststelle::config::Settings::load_with_env(
            &harness::repo().join("config/musterstadt.toml"),
            &[],
        )
        .expect("config/musterstadt.toml");
        settings.extract.timeout = Duration::from_secs(JOB_LIMIT_SECS);
        settings.extract.cpu_limit = Duration::from_secs(JOB_LIMIT_SECS);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let extractor = {
            let _guard = rt.enter();
            Extractor::new(harness::exe(), &settings.extract)
        };
        Extract {
            rt,
            extractor,
            dir: tempfile::tempdir().expect("tempdir"),
            n: 0,
        }
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let names = ["scan.pdf", "scan.png", "scan.tif", "scan.jpg"];
        let name = names[(self.n % names.len() as u64) as usize];
        self.n += 1;
        let media = match extract::sniff(input, name) {
            Ok(m) => m,
            Err(e) => return check_reason(&e),
        };
        let path = self.dir.path().join(format!("input.{}", media.extension()));
        if let Err(e) = std::fs::write(&path, input) {
            return Outcome::Finding(format!("cannot write the input: {e}"));
        }
        let limit = Duration::from_secs(JOB_LIMIT_SECS) + EXTRACT_GRACE;
        let result = self.rt.block_on(async {
            tokio::time::timeout(
                limit,
                self.extractor
                    .extract(&path, media, extract::pool::Urgency::interactive()),
            )
            .await
        });
        match result {
            Err(_) => Outcome::Finding(format!(
                "the extractor did not answer within {} s",
                limit.as_secs()
            )),
            Ok(Ok(x)) => Outcome::Class(format!("ok {}:{}", media.mime(), x.pages.len().min(5))),
            Ok(Err(e)) => check_reason(&e),
        }
    }
}

enum Runner {
    Rules(Rules),
    Mime(Mime),
    Extract(Box<Extract>),
}

impl Runner {
    fn new(target: Target) -> Runner {
        match target {
            Target::Rules => Runner::Rules(Rules {
                dir: tempfile::tempdir().expect("tempdir"),
                markers: harness::address_markers(),
            }),
            Target::Mime => {
                let settings = poststelle::config::Settings::load_with_env(
                    &harness::repo().join("config/musterstadt.toml"),
                    &[],
                )
                .expect("config/musterstadt.toml");
                Runner::Mime(Mime {
                    opts: (&settings.extract).into(),
                    dir: tempfile::tempdir().expect("tempdir"),
                })
            }
            Target::Extract => Runner::Extract(Box::new(Extract::new())),
        }
    }

    /// One execution: panics are caught (a finding); the in-process targets are watched
    /// against [`CALL_LIMIT`] (the extractor has its own limit).
    fn run(&mut self, input: &[u8]) -> Outcome {
        let result = match self {
            Runner::Extract(x) => std::panic::catch_unwind(AssertUnwindSafe(|| x.run(input))),
            Runner::Rules(r) => {
                watched(|| std::panic::catch_unwind(AssertUnwindSafe(|| r.run(input))))
            }
            Runner::Mime(m) => {
                watched(|| std::panic::catch_unwind(AssertUnwindSafe(|| m.run(input))))
            }
        };
        match result {
            Ok(o) => o,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Outcome::Finding(format!("panic: {msg}"))
            }
        }
    }
}

/// Runs `f`; if it takes longer than [`CALL_LIMIT`], reports a hang through the watchdog (the
/// caller is then stuck: the watchdog saves nothing itself, [`Fuzzer`] does before the call).
fn watched<T>(f: impl FnOnce() -> T) -> T {
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(CALL_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!(
                "fuzz: a call did not return within {} s: hang (the input is the pending one in the findings directory)",
                CALL_LIMIT.as_secs()
            );
            std::process::exit(1);
        }
    });
    let out = f();
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

// ---------------------------------------------------------------------------------------------
// The loop

fn save_finding(dir: &Path, target: Target, input: &[u8], what: &str) -> PathBuf {
    let dir = dir.join(target.name());
    let _ = std::fs::create_dir_all(&dir);
    let sha = hex::encode(Sha256::digest(input));
    let path = dir.join(format!("{}.bin", &sha[..16]));
    let _ = std::fs::write(&path, input);
    let _ = std::fs::write(path.with_extension("txt"), format!("{what}\n"));
    path
}

/// Fuzzes one target for `seconds`; returns the number of findings.
fn fuzz(target: Target, opts: &Options, seed: u64) -> usize {
    let mut runner = Runner::new(target);
    let seeds = seeds(target);
    let n_seeds = seeds.len();
    let mut corpus = seeds;
    let mut seen = BTreeSet::new();
    let mut rng = Rng(seed);
    let tokens = target.tokens();
    let (mut executions, mut findings) = (0u64, 0usize);
    let pending_dir = opts.findings.join(target.name());
    let _ = std::fs::create_dir_all(&pending_dir);
    let pending = pending_dir.join("pending.bin");
    let started = Instant::now();
    let budget = Duration::from_secs(opts.seconds);
    // Every other execution runs the next seed as it is (until all have run), the others a
    // mutation of a random corpus entry, so that a short budget does both.
    let (mut i, mut next_seed) = (0u64, 0usize);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    while started.elapsed() < budget {
        let fresh = i % 2 == 0 && next_seed < n_seeds;
        let input = if fresh {
            next_seed += 1;
            corpus[next_seed - 1].clone()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            mutate(base, &corpus, tokens, &mut rng)
        };
        i += 1;
        // Written before the call: a hang ends the process, and the input is then here.
        let _ = std::fs::write(&pending, &input);
        let outcome = runner.run(&input);
        executions += 1;
        match outcome {
            Outcome::Class(c) => {
                let kind = c.split(':').next().unwrap_or_default().to_string();
                *kinds.entry(kind).or_default() += 1;
                if seen.insert(c) && !fresh && corpus.len() < n_seeds + 500 {
                    corpus.push(input);
                }
            }
            Outcome::Finding(what) => {
                findings += 1;
                let path = save_finding(&opts.findings, target, &input, &what);
                println!(
                    "fuzz {}: FINDING {what}\n  input saved: {} (replay: cargo bench --bench fuzz -- --target {} --replay {})",
                    target.name(),
                    path.display(),
                    target.name(),
                    path.display()
                );
            }
        }
    }
    let _ = std::fs::remove_file(&pending);
    println!(
        "fuzz {}: seconds {:.1}, executions {executions}, corpus {n_seeds}+{}, outcomes {}, findings {findings}",
        target.name(),
        started.elapsed().as_secs_f64(),
        corpus.len() - n_seeds,
        seen.len()
    );
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    let top: Vec<String> = kinds
        .iter()
        .take(8)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("  outcomes by kind: {}", top.join(", "));
    findings
}

fn main() {
    let opts = parse_args();
    // One line per panic (a finding, or a parser's panic that the worker's guard turns into
    // the document's error), not a backtrace each.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("panic at {at}: {msg}");
    }));
    if let Some(file) = &opts.replay {
        let input = std::fs::read(file)
            .unwrap_or_else(|e| usage_error(&format!("{}: {e}", file.display())));
        let mut failed = false;
        for &t in &opts.targets {
            match Runner::new(t).run(&input) {
                Outcome::Class(c) => println!("replay {}: no finding ({c})", t.name()),
                Outcome::Finding(f) => {
                    println!("replay {}: FINDING {f}", t.name());
                    failed = true;
                }
            }
        }
        std::process::exit(i32::from(failed));
    }
    println!(
        "fuzz: seed {} (replay the same sequence: --seed {}), {} s per target, findings under {}",
        opts.seed,
        opts.seed,
        opts.seconds,
        opts.findings.display()
    );
    let mut findings = 0;
    for (k, &t) in opts.targets.iter().enumerate() {
        findings += fuzz(t, &opts, opts.seed.wrapping_add(k as u64));
    }
    if findings > 0 {
        std::process::exit(1);
    }
}
