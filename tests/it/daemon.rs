//! The daemon end to end: hot folder -> OCR -> classification -> filesystem DMS, with crashes
//! (SIGKILL at exact points), half-written files, duplicates, hostile input and the API. The
//! crash tests run the daemon as a child process and kill it; the others run it in-process.

use crate::harness::*;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

fn hundesteuer_txt(name: &str) -> Vec<u8> {
    format!(
        "Von: Eva Schmitz <eva.schmitz@example.org>\nAn: steueramt@musterstadt.de\nBetreff: Anmeldung Hundesteuer\n\n\
         Guten Tag, ich melde hiermit unseren Hund {name} zur Hundesteuer an. Er ist seit dem 1. März bei uns, \
         ein Mischling. Bitte senden Sie mir den Hundesteuerbescheid und die Steuermarke zu.\nMit freundlichen Grüßen\nEva Schmitz"
    )
    .into_bytes()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                // Files only: the inbox holds the stacks' folder `stapel/`.
                .filter(|e| {
                    !e.file_name().to_string_lossy().starts_with('.')
                        && e.file_type().is_ok_and(|t| t.is_file())
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn health_without_a_token_says_only_that_the_daemon_is_up() {
    let install = spawn_app(&[]);
    install.drop_file("mail.txt", &hundesteuer_txt("Bello"));
    // Delivered and recorded: the DMS has its files a moment before the store commits.
    wait_for("a delivery", LONG, || {
        (install.delivered().len() == 1
            && install
                .documents()
                .iter()
                .any(|d| d["state"] == "delivered"))
        .then_some(())
    });
    let anonymous: serde_json::Value = reqwest::blocking::get(install.url("/health"))
        .expect("health")
        .json()
        .expect("json");
    assert_eq!(anonymous, serde_json::json!({"status": "ok"}));
    let with_token: serde_json::Value = reqwest::blocking::Client::new()
        .get(install.url("/health"))
        .bearer_auth(&install.token)
        .send()
        .expect("health")
        .json()
        .expect("json");
    assert_eq!(with_token["status"], "ok");
    assert_eq!(with_token["documents"]["delivered"], 1, "{with_token}");
    // How far the extraction workers are locked in (README "Security: the extraction sandbox").
    let sandbox = &with_token["sandbox"];
    assert_ne!(sandbox["level"], "off", "{with_token}");
    assert_eq!(sandbox["status"]["seccomp"], true, "{with_token}");
    if poststelle::extract::sandbox::landlock_abi() > 0 {
        assert_eq!(sandbox["status"]["landlock"], "full", "{with_token}");
    }
    let wrong = reqwest::blocking::Client::new()
        .get(install.url("/health"))
        .bearer_auth("wrong")
        .send()
        .expect("health");
    assert_eq!(
        wrong.status(),
        401,
        "a wrong token is refused, not served anonymously"
    );
}

#[test]
fn scans_dropped_into_the_hot_folder_land_in_the_right_mailbox_with_sidecar() {
    let install = spawn_app(&[]);
    let scan = scan_pdf(&noisy(render(&bauantrag_pdf(), 300), 10), 300);
    install.drop_file("scan-0001.pdf", &scan);
    install.drop_file("mail.txt", &hundesteuer_txt("Bello"));
    let delivered = wait_for("two deliveries", LONG, || {
        let d = install.delivered();
        (d.len() == 2).then_some(d)
    });
    let mailboxes: Vec<&str> = delivered.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(mailboxes, ["22", "63"]);
    let (_, pdf) = delivered.iter().find(|(m, _)| m == "63").expect("63");
    let delivered_pdf = std::fs::read(pdf).expect("read");
    assert!(
        delivered_pdf.starts_with(b"%PDF-") && delivered_pdf != scan,
        "a scan is delivered as its searchable PDF"
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pdf.with_extension("json")).expect("sidecar"))
            .expect("json");
    assert_eq!(sidecar["mailbox"], "63");
    assert_eq!(sidecar["original_name"], "scan-0001.pdf");
    let expl = &sidecar["decision"]["explanation"];
    assert!(
        expl["address_field"]
            .as_str()
            .unwrap_or_default()
            .contains("Bauordnungsamt"),
        "{expl}"
    );
    assert!(
        !expl["candidates"]
            .as_array()
            .expect("candidates")
            .is_empty()
    );
    assert_eq!(count_files(&install.path("inbox")), 0);
    assert_eq!(count_files(&install.path("processed")), 2);
}

#[test]
fn sigkill_between_commit_and_move_loses_and_duplicates_nothing() {
    let install = Install::new();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "after_commit"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
    ]);
    install.drop_file("brief.txt", &hundesteuer_txt("Rex"));
    wait_file(&marker, LONG);
    d.kill();
    // Committed but not moved: the file is still in the inbox and the store knows it once.
    assert!(install.path("inbox/brief.txt").exists());
    assert_eq!(install.documents().len(), 1);
    let _d = install.serve(&[]);
    wait_for("delivery", LONG, || {
        (install.delivered().len() == 1).then_some(())
    });
    wait_for("inbox empty", LONG, || {
        (count_files(&install.path("inbox")) == 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(install.documents().len(), 1, "no second document");
    assert_eq!(install.delivered().len(), 1, "delivered exactly once");
    assert_eq!(install.documents()[0]["state"], "delivered");
}

#[test]
fn sigkill_between_delivery_and_confirmation_delivers_exactly_once() {
    let install = Install::new();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "after_deliver"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
    ]);
    install.drop_file("brief.txt", &hundesteuer_txt("Luna"));
    wait_file(&marker, LONG);
    d.kill();
    // The target has it, the store does not know yet.
    assert_eq!(install.delivered().len(), 1);
    assert_eq!(install.documents()[0]["state"], "queued");
    let _d = install.serve(&[]);
    wait_for("confirmed", LONG, || {
        (install.documents()[0]["state"] == "delivered").then_some(())
    });
    assert_eq!(
        install.delivered().len(),
        1,
        "the retry must not create a second copy"
    );
    assert_eq!(install.documents().len(), 1);
}

/// The extraction workers' directories (each holds a copy of the document being read) in the
/// daemon's temporary directory.
fn worker_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("poststelle-worker-")
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_restart_removes_the_worker_directories_a_killed_daemon_left() {
    let install = Install::new();
    let tmp = install.path("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    // Another daemon's or a command's directory: not ours to remove.
    let foreign = tmp.join("poststelle-workerAbC123");
    std::fs::create_dir_all(&foreign).expect("foreign dir");
    let tmp_s = tmp.display().to_string();
    let env = [("TMPDIR", tmp_s.as_str())];
    let d = install.serve(&env);
    install.drop_file("brief.pdf", &bauantrag_pdf());
    wait_for("delivery", LONG, || {
        (install.delivered().len() == 1).then_some(())
    });
    let left = worker_dirs(&tmp);
    d.kill();
    assert!(
        !left.is_empty() && left.iter().all(|p| p.exists()),
        "a daemon killed with SIGKILL leaves its workers' directories: {left:?}"
    );
    let _d = install.serve(&env);
    for p in &left {
        assert!(!p.exists(), "{} left behind after the restart", p.display());
    }
    assert!(foreign.exists(), "a directory of someone else was removed");
}

#[test]
fn a_file_still_being_written_is_not_taken_early() {
    let install = spawn_app(&[]);
    std::fs::create_dir_all(install.path("inbox")).expect("inbox");
    let path = install.path("inbox/growing.txt");
    let full = hundesteuer_txt("Bruno").repeat(20);
    let chunks: Vec<&[u8]> = full.chunks(full.len() / 16 + 1).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).expect("create");
        for c in &chunks {
            f.write_all(c).expect("write");
            f.flush().expect("flush");
            // Shorter than the settle time (400 ms), longer than a rescan tick.
            std::thread::sleep(Duration::from_millis(120));
            assert!(path.exists(), "taken while still growing");
            assert_eq!(
                count_files(&install.path("processed")),
                0,
                "taken while still growing"
            );
        }
    }
    let delivered = wait_for("delivery", LONG, || {
        let d = install.delivered();
        (d.len() == 1).then_some(d)
    });
    assert_eq!(
        std::fs::read(&delivered[0].1).expect("read"),
        full,
        "the whole file was taken"
    );
    assert_eq!(
        install.documents().len(),
        1,
        "one document, not one per chunk"
    );
}

#[test]
fn the_same_bytes_dropped_twice_are_filed_once() {
    let install = spawn_app(&[]);
    install.drop_file("a.txt", &hundesteuer_txt("Max"));
    wait_for("delivery", LONG, || {
        (install.delivered().len() == 1).then_some(())
    });
    install.drop_file("a-again.txt", &hundesteuer_txt("Max"));
    wait_for("second file moved", LONG, || {
        (count_files(&install.path("processed")) == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(install.documents().len(), 1);
    assert_eq!(install.delivered().len(), 1);
}

#[test]
fn bad_input_is_quarantined_with_a_german_reason_and_the_daemon_stays_up() {
    let d = spawn_app(&[]);
    let install = &*d;
    let good = bauantrag_pdf();
    let encrypted = {
        let src = install.path("plain.pdf");
        let dst = install.path("enc.pdf");
        std::fs::write(&src, &good).expect("write");
        let st = std::process::Command::new("qpdf")
            .args(["--encrypt", "geheim", "owner", "256", "--"])
            .arg(&src)
            .arg(&dst)
            .status()
            .expect("qpdf");
        assert!(st.success());
        std::fs::read(&dst).expect("read")
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("leer.pdf", Vec::new(), "leer"),
        ("abgeschnitten.pdf", good[..good.len() / 3].to_vec(), "PDF"),
        ("verschluesselt.pdf", encrypted, "verschlüsselt"),
        (
            "keinpdf.pdf",
            b"<html><body>Hallo</body></html>".to_vec(),
            "Unbekanntes Dateiformat",
        ),
        ("bombe.png", png_bomb(), "zu groß"),
    ];
    for (name, bytes, _) in &cases {
        install.drop_file(name, bytes);
    }
    // Hostile files from the shared corpora (CI has ../shared beside the checkout; missing,
    // the test fails). Every file of them goes through the daemon in `hostile_corpora`.
    let shared = corpora();
    let mut hostile = 0;
    for (dir, n) in [("pdf-malformed", 12), ("images-hostile", 12)] {
        let mut files: Vec<_> = std::fs::read_dir(shared.join(dir))
            .unwrap_or_else(|e| panic!("{}: {e}", shared.join(dir).display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().contains("LICENSE"))
            .collect();
        files.sort();
        for f in files.into_iter().take(n) {
            let name = format!(
                "{dir}-{}",
                f.file_name()
                    .map(|x| x.to_string_lossy().to_string())
                    .unwrap_or_default()
            );
            install.drop_file(&name, &std::fs::read(&f).expect("read"));
            hostile += 1;
        }
    }
    assert_eq!(hostile, 24, "too few hostile files in {}", shared.display());
    let total = cases.len() + hostile;
    // Every file ends as a document (routed, review or quarantined) or a quarantine entry.
    wait_for("all inputs handled", Duration::from_secs(300), || {
        let docs = install.documents();
        let settled = docs.iter().all(|d| {
            ["delivered", "review", "quarantined", "dead_letter"]
                .contains(&d["state"].as_str().unwrap_or(""))
        });
        let in_inbox = count_files(&install.path("inbox"));
        (in_inbox == 0 && settled).then_some(())
    });
    for (name, _, reason) in &cases {
        let reason_file = std::fs::read_dir(install.path("quarantine"))
            .expect("quarantine dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.to_string_lossy().to_string();
                n.ends_with(&format!("{name}.reason.txt"))
            })
            .unwrap_or_else(|| panic!("no reason file for {name}"));
        let text = std::fs::read_to_string(reason_file).expect("reason");
        assert!(text.contains(reason), "{name}: {text}");
    }
    // The daemon is still up and answers (parsers run in the sandbox, never in the daemon).
    assert!(d.is_running(), "the daemon ended");
    let health = reqwest::blocking::get(d.url("/health")).expect("health");
    assert!(health.status().is_success());
    let processed_or_quarantined =
        count_files(&install.path("processed")) + count_files(&install.path("quarantine")) / 2;
    assert!(
        processed_or_quarantined >= total,
        "{processed_or_quarantined} < {total}: an input was lost"
    );
}

/// A PNG header claiming 100000 x 100000 pixels.
fn png_bomb() -> Vec<u8> {
    let img = image::GrayImage::from_pixel(1, 1, image::Luma([0]));
    let mut bytes = png(&img);
    // IHDR width/height live at offsets 16..24; the chunk's CRC (over type + data) follows.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn api_upload_review_and_assignment() {
    let d = spawn_app(&[]);
    let install = &*d;
    let client = reqwest::blocking::Client::new();
    // Without a token: refused.
    let r = client.get(d.url("/api/review")).send().expect("send");
    assert_eq!(r.status(), 401);
    let auth = format!("Bearer {}", install.token);
    // A blank page: nothing to read, so a person must decide.
    let blank = png(&image::GrayImage::from_pixel(
        1240,
        1754,
        image::Luma([255]),
    ));
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(blank).file_name("leer.png"),
    );
    let r = client
        .post(d.url("/api/documents"))
        .header("Authorization", &auth)
        .multipart(form)
        .send()
        .expect("upload");
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let review = wait_for("review", LONG, || {
        let v: serde_json::Value = client
            .get(d.url("/api/review"))
            .header("Authorization", &auth)
            .send()
            .ok()?
            .json()
            .ok()?;
        let items = v["review"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    });
    assert_eq!(review[0]["id"], id.as_str());
    assert!(
        review[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("Kein lesbarer Text")
    );
    let r = client
        .post(d.url(&format!("/api/documents/{id}/assign")))
        .header("Authorization", &auth)
        .json(&serde_json::json!({"mailbox": "34", "actor": "frau.meier"}))
        .send()
        .expect("assign");
    assert!(r.status().is_success(), "{:?}", r.text());
    let doc: serde_json::Value = wait_for("delivered", LONG, || {
        let doc: serde_json::Value = client
            .get(d.url(&format!("/api/documents/{id}")))
            .header("Authorization", &auth)
            .send()
            .ok()?
            .json()
            .ok()?;
        (doc["state"] == "delivered").then_some(doc)
    });
    assert!(
        install.delivered().iter().any(|(m, _)| m == "34"),
        "filed into mailbox 34"
    );
    let kinds: Vec<&str> = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"assigned"), "{kinds:?}");
    assert_eq!(doc["state"], "delivered");
    let assigned = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "assigned")
        .expect("assigned");
    assert_eq!(
        assigned["actor"], "api",
        "the actor is the identity (the global token), never a name from the body"
    );
    // Unknown mailbox: a clear German error.
    let r = client
        .post(d.url(&format!("/api/documents/{id}/assign")))
        .header("Authorization", &auth)
        .json(&serde_json::json!({"mailbox": "99"}))
        .send()
        .expect("assign");
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .unwrap_or_default()
            .contains("Unbekanntes Postfach")
    );
}

/// A person re-assigns a letter while its delivery is on its way (between the target's answer
/// and the store's record): the letter must end delivered in the new mailbox, never marked
/// delivered there while the target has it only in the old one.
#[test]
fn a_reassignment_while_the_delivery_is_in_flight_ends_in_the_new_mailbox() {
    let install = Install::new();
    let marker = install.path("paused");
    let resume = install.path("resume");
    let (marker_s, resume_s) = (marker.display().to_string(), resume.display().to_string());
    let _d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "after_deliver"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
        ("POSTSTELLE_PAUSE_RESUME", &resume_s),
    ]);
    install.drop_file("brief.txt", &hundesteuer_txt("Luna"));
    wait_file(&marker, LONG);
    let doc = &install.documents()[0];
    let id = doc["id"].as_str().expect("id").to_string();
    assert_eq!(doc["mailbox"], "22", "{doc}");
    assert_eq!(doc["state"], "queued");
    // The target has it in 22; now a person moves it to 21 (Stadtkasse).
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/documents/{id}/assign",
            install.port
        ))
        .bearer_auth(&install.token)
        .json(&serde_json::json!({"mailbox": "21"}))
        .send()
        .expect("assign");
    assert!(r.status().is_success(), "{:?}", r.text());
    std::fs::write(&resume, b"go").expect("resume");
    let doc = wait_for("delivered to 21", LONG, || {
        let doc = install.documents().into_iter().next()?;
        (doc["state"] == "delivered" && doc["mailbox"] == "21").then_some(doc)
    });
    let delivered = install.delivered();
    assert_eq!(
        delivered
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["21"],
        "filed once, in the new mailbox: {delivered:?} {doc}"
    );
    let events: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/documents/{id}",
            install.port
        ))
        .bearer_auth(&install.token)
        .send()
        .expect("document")
        .json()
        .expect("json");
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"delivered_superseded"), "{kinds:?}");
}

/// Every route of the HTTP side as (method, path), read from the router's source
/// (`src/api/mod.rs`, `src/api/json.rs` under `/api`, `src/api/web/*.rs`): a route added there
/// is checked by [`every_route_refuses_a_missing_or_wrong_token`] without being listed here.
fn all_routes() -> Vec<(String, String)> {
    let api = repo().join("src/api");
    let mut files = vec![(api.join("mod.rs"), ""), (api.join("json.rs"), "/api")];
    let mut web: Vec<_> = std::fs::read_dir(api.join("web"))
        .expect("src/api/web")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    web.sort();
    files.extend(web.into_iter().map(|p| (p, "")));
    let start = regex::Regex::new(r#"\.route\(\s*("([^"]*)"|([A-Z_]+))\s*,"#).expect("regex");
    let method = regex::Regex::new(r"\b(get|post|put|patch|delete)\(").expect("regex");
    let mut out = Vec::new();
    for (file, prefix) in files {
        let src = std::fs::read_to_string(&file).expect("source");
        for c in start.captures_iter(&src) {
            let path = match (c.get(2), c.get(3)) {
                (Some(p), _) => p.as_str().to_string(),
                (None, Some(name)) => {
                    let def =
                        regex::Regex::new(&format!(r#"const {}: &str = "([^"]+)""#, name.as_str()))
                            .expect("regex");
                    def.captures(&src)
                        .unwrap_or_else(|| panic!("{}: {} not found", file.display(), &c[0]))[1]
                        .to_string()
                }
                _ => unreachable!(),
            };
            // The rest of this `.route(` call: up to its closing parenthesis.
            let rest = &src[c.get(0).expect("match").end()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, ch)| {
                    match ch {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("closing parenthesis");
            for m in method.captures_iter(&rest[..end]) {
                out.push((m[1].to_uppercase(), format!("{prefix}{path}")));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every route, with no credentials, a wrong token and a forged session cookie: the JSON API
/// answers 401, the desk's pages send the browser to `/login`, and a wrong token is refused
/// on every route (public ones included) rather than served as anonymous. Only the login
/// form, the desk's static files, `/health` (status only) and `/metrics` (from this machine)
/// answer without credentials.
#[test]
fn every_route_refuses_a_missing_or_wrong_token() {
    let routes = all_routes();
    for known in [
        ("GET", "/api/documents/{id}"),
        ("POST", "/api/documents"),
        ("DELETE", "/api/tokens/{id}"),
        ("POST", "/verwaltung/quarantaene/{id}/erneut"),
        ("POST", "/hochladen"),
        ("GET", "/metrics"),
    ] {
        assert!(
            routes.contains(&(known.0.to_string(), known.1.to_string())),
            "{known:?} not found in {routes:?}"
        );
    }
    assert!(routes.len() >= 45, "{} routes: {routes:?}", routes.len());
    let d = spawn_app(&[]);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let public = [
        "/login",
        "/static/desk.css",
        "/static/desk.js",
        "/health",
        "/metrics",
    ];
    let mut checked = 0;
    for (method, path) in &routes {
        let url = d.url(
            &path
                .replace("{id}", "01890a5d-ac96-774b-bcce-b302099a8057")
                .replace("{entry}", "1")
                .replace("{name}", "niemand")
                .replace("{page}", "1"),
        );
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let send = |r: reqwest::blocking::RequestBuilder| r.send().expect("send");
        // A wrong token: 401 everywhere.
        let r = send(client.request(m.clone(), &url).bearer_auth("falsch-0815"));
        assert_eq!(r.status(), 401, "{method} {path} with a wrong token");
        if public.contains(&path.as_str()) || path == "/logout" {
            continue;
        }
        // Nothing, or a session cookie nobody issued.
        for forged in [None, Some("poststelle_sitzung=erfunden")] {
            let mut req = client.request(m.clone(), &url);
            if let Some(c) = forged {
                req = req.header("Cookie", c);
            }
            let r = send(req);
            if path.starts_with("/api/") {
                assert_eq!(r.status(), 401, "{method} {path} ({forged:?})");
            } else {
                assert_eq!(r.status(), 303, "{method} {path} ({forged:?})");
                let to = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert!(to.starts_with("/login"), "{method} {path}: to {to}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked}");
    // The public ones answer without credentials, and say nothing more.
    let health: serde_json::Value = send_json(&client, &d.url("/health"));
    assert_eq!(health, serde_json::json!({"status": "ok"}));
    let login = client.get(d.url("/login")).send().expect("login");
    assert_eq!(login.status(), 200);
}

fn send_json(client: &reqwest::blocking::Client, url: &str) -> serde_json::Value {
    client.get(url).send().expect("send").json().expect("json")
}
