//! The extraction worker's sandbox, tested from inside the real worker: a probe job
//! (`Job::Probe`, run by `poststelle check-sandbox` and by [`Extractor::probe`]) tries to read
//! the API token file and the database, to write where delivered documents lie, to connect to a
//! loopback port, and lists its environment; every test runs the same probe once more with
//! `extract.sandbox = false` and checks that it then succeeds, so a test cannot pass because its
//! probe could not have reached the target anyway.
//!
//! Where the kernel has Landlock, the sandbox must report it fully enforced; the file tests
//! rely on it (the machines this project runs on have it: Linux 6.x).

use crate::harness::{Install, exe};
use poststelle::extract::sandbox::{self, Enforcement, Probe, ProbeReport};
use poststelle::extract::settings::ExtractSettings;
use poststelle::extract::{ExtractError, Extractor, MediaType, pool::Urgency};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// One installation probed twice by `poststelle check-sandbox --json`: with the sandbox (as
/// configured) and without it.
struct Probed {
    install: Install,
    on: serde_json::Value,
    off: serde_json::Value,
    listener: std::net::TcpListener,
}

fn probed() -> &'static Probed {
    static P: OnceLock<Probed> = OnceLock::new();
    P.get_or_init(|| {
        let install = Install::new();
        for dir in ["blobs", "inbox", "processed", "dms/bauordnung"] {
            std::fs::create_dir_all(install.path(dir)).expect("dir");
        }
        std::fs::write(install.path("api-token"), "geheimes-token\n").expect("token");
        std::fs::write(install.path("poststelle.db"), b"SQLite format 3\0").expect("db");
        std::fs::write(install.path("dms/bauordnung/brief.pdf"), b"%PDF-1.7").expect("dms");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let run = |on: bool| {
            let addr = listener.local_addr().expect("addr").to_string();
            let out = install
                .command()
                .env("POSTSTELLE__API__TOKEN_FILE", install.path("api-token"))
                .env("POSTSTELLE__EXTRACT__SANDBOX", on.to_string())
                .env("POSTSTELLE__EXTRACT__WORKERS", "1")
                .arg("check-sandbox")
                .arg("--json")
                .arg("--read")
                .arg(install.path("dms/bauordnung/brief.pdf"))
                .arg("--write")
                .arg(install.path("dms/bauordnung/untergeschoben.pdf"))
                .arg("--write")
                .arg(install.path("poststelle.db"))
                .arg("--connect")
                .arg(&addr)
                .output()
                .expect("run check-sandbox");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().last().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "check-sandbox (sandbox {on}) printed no JSON ({e}): {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            assert_eq!(
                out.status.success(),
                v["closed"] == true,
                "the exit code tells whether anything is reachable: {v}"
            );
            v
        };
        let on = run(true);
        let off = run(false);
        Probed {
            install,
            on,
            off,
            listener,
        }
    })
}

/// The attempt on `target` in a report's list `what` (`read`, `write`, `connect`): `None` when
/// it succeeded, else the error.
fn attempt(report: &serde_json::Value, what: &str, target: &str) -> Option<String> {
    let list = report["report"][what].as_array().expect("list");
    let hit = list
        .iter()
        .find(|a| a[0].as_str() == Some(target))
        .unwrap_or_else(|| panic!("{target} was not probed: {report}"));
    hit[1].as_str().map(str::to_string)
}

/// Landlock is enforced where the kernel has it.
fn files_are_restricted(v: &serde_json::Value) -> bool {
    if sandbox::landlock_abi() == 0 {
        eprintln!("note: this kernel has no Landlock; file access is not restricted");
        return false;
    }
    assert_eq!(v["sandbox"]["landlock"], "full", "{v}");
    true
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn worker_cannot_read_the_token_file() {
    let p = probed();
    let token = path(p.install.path("api-token"));
    assert_eq!(
        attempt(&p.off, "read", &token),
        None,
        "control: without the sandbox the worker reads it"
    );
    if files_are_restricted(&p.on) {
        let err = attempt(&p.on, "read", &token).expect("refused");
        assert!(err.contains("Permission denied"), "{err}");
    }
}

#[test]
fn worker_cannot_reach_the_database() {
    let p = probed();
    let db = path(p.install.path("poststelle.db"));
    assert_eq!(attempt(&p.off, "read", &db), None, "control: {}", p.off);
    assert_eq!(attempt(&p.off, "write", &db), None, "control: {}", p.off);
    if files_are_restricted(&p.on) {
        assert!(attempt(&p.on, "read", &db).is_some(), "{}", p.on);
        assert!(attempt(&p.on, "write", &db).is_some(), "{}", p.on);
    }
}

#[test]
fn worker_cannot_read_or_write_delivered_documents() {
    let p = probed();
    let filed = path(p.install.path("dms/bauordnung/brief.pdf"));
    let planted = path(p.install.path("dms/bauordnung/untergeschoben.pdf"));
    assert_eq!(attempt(&p.off, "read", &filed), None, "control");
    assert_eq!(attempt(&p.off, "write", &planted), None, "control");
    if files_are_restricted(&p.on) {
        assert!(attempt(&p.on, "read", &filed).is_some(), "{}", p.on);
        assert!(attempt(&p.on, "write", &planted).is_some(), "{}", p.on);
        for blob in ["blobs", "inbox", "processed"] {
            assert!(
                attempt(&p.on, "read", &path(p.install.path(blob))).is_some(),
                "{blob}: {}",
                p.on
            );
        }
    }
    assert!(
        !p.install.path("dms/bauordnung/untergeschoben.pdf").exists(),
        "the probe leaves nothing behind"
    );
}

#[test]
fn worker_cannot_connect_to_loopback() {
    let p = probed();
    let addr = p.listener.local_addr().expect("addr").to_string();
    assert_eq!(
        attempt(&p.off, "connect", &addr),
        None,
        "control: without the sandbox the worker connects"
    );
    assert!(attempt(&p.on, "connect", &addr).is_some(), "{}", p.on);
    assert!(
        p.on["report"]["inet_socket"].is_string(),
        "no IPv4 socket at all: {}",
        p.on
    );
    let network = p.on["sandbox"]["network"].as_str().unwrap_or_default();
    assert!(
        network == "namespace" || network == "syscall_filter",
        "{}",
        p.on
    );
    assert_eq!(p.on["sandbox"]["seccomp"], true, "{}", p.on);
}

#[test]
fn worker_has_no_daemon_environment() {
    let p = probed();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["report"]["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    };
    let off = names(&p.off);
    assert!(
        off.iter().any(|n| n == "POSTSTELLE__API__TOKEN"),
        "control: without the sandbox the worker inherits the secrets: {off:?}"
    );
    let on = names(&p.on);
    let allowed = |n: &str| {
        sandbox::PASSED_ENV.contains(&n) || ["OMP_THREAD_LIMIT", "TMPDIR", "HOME"].contains(&n)
    };
    assert!(
        on.iter().all(|n| allowed(n)),
        "only what parsers need: {on:?}"
    );
    assert!(!on.iter().any(|n| n.starts_with("POSTSTELLE")), "{on:?}");
    assert!(on.iter().any(|n| n == "PATH"), "{on:?}");
    assert_eq!(p.on["closed"], true, "{}", p.on);
    assert_eq!(p.off["closed"], false, "{}", p.off);
}

/// An extractor with one worker and small limits.
fn small_extractor(sandbox: bool) -> Extractor {
    let settings = ExtractSettings {
        workers: 1,
        timeout: Duration::from_secs(30),
        cpu_limit: Duration::from_secs(1),
        max_output_bytes: 1024 * 1024,
        sandbox,
        ..Default::default()
    };
    Extractor::new(exe(), &settings)
}

fn probe(ex: &Extractor, spec: Probe) -> Result<ProbeReport, ExtractError> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(ex.probe(&spec))
}

#[test]
fn worker_output_is_capped() {
    for sandboxed in [true, false] {
        let ex = small_extractor(sandboxed);
        let ok = probe(
            &ex,
            Probe {
                result_bytes: 512 * 1024,
                json_bytes: 100 * 1024,
                ..Default::default()
            },
        )
        .expect("within the limits");
        assert_eq!(ok.result_len, 512 * 1024);
        assert_eq!(ok.padding.len(), 100 * 1024);

        for spec in [
            Probe {
                result_bytes: 3 * 1024 * 1024,
                ..Default::default()
            },
            Probe {
                json_bytes: 3 * 1024 * 1024,
                ..Default::default()
            },
        ] {
            let err = probe(&ex, spec.clone()).expect_err("over the limit");
            // With the sandbox the worker cannot even write it (RLIMIT_FSIZE); without, the
            // daemon refuses to read more than the limit.
            match (&err, sandboxed) {
                (ExtractError::FileSizeLimit(1), true) => {
                    assert!(err.reason_de().contains("Größenlimit von 1 MB"), "{err}");
                }
                (ExtractError::OutputTooLarge { limit_mb: 1, .. }, false) => {
                    assert!(err.reason_de().contains("Limit von 1 MB"), "{err}");
                }
                _ => panic!("sandbox {sandboxed}, {spec:?}: {err:?}"),
            }
            assert!(err.is_input_fault(), "quarantined like a timeout: {err:?}");
        }
        // The pool goes on with a fresh worker.
        probe(&ex, Probe::default()).expect("next job");
    }
}

#[test]
fn worker_stderr_is_drained_while_it_runs() {
    // Far more than a pipe holds: a daemon that did not drain it while waiting for the answer
    // would wait until the time limit.
    let ex = small_extractor(true);
    let started = std::time::Instant::now();
    let report = probe(
        &ex,
        Probe {
            stderr_bytes: 16 * 1024 * 1024,
            ..Default::default()
        },
    )
    .expect("the job ends although its worker wrote 16 MiB to stderr");
    assert!(report.env.iter().any(|n| n == "PATH"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn cpu_limit_ends_a_job_with_a_clear_reason() {
    let ex = small_extractor(true);
    let err = probe(
        &ex,
        Probe {
            cpu_secs: 10,
            ..Default::default()
        },
    )
    .expect_err("killed by its CPU limit");
    assert!(matches!(err, ExtractError::CpuLimit(1)), "{err:?}");
    assert!(
        err.reason_de().contains("Rechenzeit von 1 Sekunden"),
        "{}",
        err.reason_de()
    );
    probe(&ex, Probe::default()).expect("the next job runs on a fresh worker");
    // Control: without the sandbox's limits the same job runs to its end.
    let free = small_extractor(false);
    probe(
        &free,
        Probe {
            cpu_secs: 2,
            ..Default::default()
        },
    )
    .expect("no CPU limit without the sandbox");
}

#[test]
fn ocr_and_pdf_rendering_work_inside_the_sandbox() {
    let img = crate::harness::render(
        &crate::harness::letter_pdf(&[
            (25.0, 60.0, 14.0, "Stadtverwaltung Musterstadt"),
            (25.0, 80.0, 14.0, "Antrag auf Baugenehmigung"),
        ]),
        150,
    );
    let dir = tempfile::tempdir().expect("tmp");
    let png = dir.path().join("scan.png");
    std::fs::write(&png, crate::harness::png(&img)).expect("png");
    let pdf = dir.path().join("scan.pdf");
    std::fs::write(&pdf, crate::harness::scan_pdf(&img, 150)).expect("pdf");
    let ex = small_extractor(true);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (file, media) in [(&png, MediaType::Png), (&pdf, MediaType::Pdf)] {
        let e = rt
            .block_on(ex.extract(file, media, Urgency::interactive()))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(e.text().contains("Baugenehmigung"), "{}", e.text());
    }
    let image = rt
        .block_on(ex.page_image(&pdf, MediaType::Pdf, 1))
        .expect("page image (pdftoppm)");
    assert!(image.starts_with(b"\x89PNG"));
    let status = ex.sandbox_status().expect("a worker reported its sandbox");
    assert!(status.enabled && status.seccomp, "{status:?}");
    if sandbox::landlock_abi() > 0 {
        assert_eq!(status.landlock, Enforcement::Full, "{status:?}");
    }
    assert!(Path::new(&pdf).exists());
}
