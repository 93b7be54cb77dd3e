//! The web desk in a real browser (headless Chromium over WebDriver, see
//! [`crate::harness::browser`]): pages checked with axe-core against WCAG 2.1 A and AA, and
//! used the way a person does, with the keyboard and the mouse. The daemon runs in-process.

use crate::auth::{PASSWORD, add_user};
use crate::desk::scanned_bauantrag;
use crate::harness::browser::{Browser, keys};
use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The path of a URL (`http://host:port/path?query` -> `/path`).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

#[test]
fn login_page_in_a_real_browser_is_accessible_and_signs_in() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    let b = Browser::start();

    // The login page, as it first appears: no accessibility violations.
    b.goto(&d.url("/login"));
    assert_eq!(path_of(&b.current_url()), "/login");
    assert_eq!(b.title(), "Anmeldung – Poststelle");
    b.find("#username");
    b.assert_no_axe_violations("anmeldung");
    // The check does check: a field whose label goes is reported.
    b.execute(
        "document.querySelector('label[for=password]').remove();",
        vec![],
    );
    let planted = b.axe();
    assert!(
        planted.iter().any(|v| v["id"] == "label"),
        "axe missed an unlabelled field: {planted:?}"
    );
    b.goto(&d.url("/login"));

    // A wrong password: an alert, still on the login page, the name kept.
    b.find("#username").send_keys("p.post");
    b.find("#password").send_keys("falsch-falsch-falsch");
    b.find("button[type=submit]").click();
    let alert = b.find("[role=alert]");
    assert!(
        alert
            .text()
            .contains("Benutzername oder Passwort ist falsch"),
        "{}",
        alert.text()
    );
    assert_eq!(path_of(&b.current_url()), "/login");
    assert_eq!(b.find("#username").attr("value").as_deref(), Some("p.post"));
    assert!(
        b.find_all("header.top").is_empty(),
        "no signed-in frame after a failed login"
    );
    b.assert_no_axe_violations("anmeldung-fehler");

    // The right password, sent with Enter from the password field: the role's landing page
    // with a session, the frame naming the person.
    let user = b.find("#username");
    user.clear();
    user.send_keys("p.post");
    b.find("#password")
        .send_keys(&format!("{PASSWORD}{}", keys::ENTER));
    let landed = wait_for("the landing page", Duration::from_secs(60), || {
        let url = b.current_url();
        (path_of(&url) != "/login").then_some(url)
    });
    assert_eq!(path_of(&landed), "/pruefkorb", "{}", b.page_source());
    let who = b.find("header.top .who").text();
    assert!(who.contains("p.post"), "{who}");
    assert!(b.find_all("[role=alert]").is_empty(), "{}", b.page_source());
    b.save_screenshot("pruefkorb-leer");
}

// ---------------------------------------------------------------------------------------------
// Helpers for the flows below: sign in and out through the forms, read the status of the page
// shown, ask the JSON API (global token) about a document, wait for documents to settle.

/// Long enough for real OCR of a scanned page while other tests run in parallel.
const LONG: Duration = Duration::from_secs(240);

/// A broken PDF (no pages): read, refused, quarantined.
const BROKEN_PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n";

/// A blank A4 page as PNG at 150 dpi: no readable text, so it lands in the Prüfkorb.
fn blank_page() -> Vec<u8> {
    png(&image::GrayImage::from_pixel(
        1240,
        1754,
        image::Luma([255]),
    ))
}

/// Waits until the current page's path satisfies `ok` and the page has loaded (so that its
/// script listens for keys); returns the path.
fn settle(b: &Browser, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_for(what, Duration::from_secs(30), || {
        let url = b.current_url();
        let path = path_of(&url).to_string();
        let ready = b.execute("return document.readyState;", vec![]) == json!("complete");
        (ok(&path) && ready).then_some(path)
    })
}

/// Runs `act` (which submits a form or follows a link) and waits until another document has
/// replaced the current one and has loaded, also when the URL stays the same.
fn next_page(b: &Browser, act: impl FnOnce()) {
    b.execute("document.documentElement.dataset.vorher = '1';", vec![]);
    act();
    wait_for("the next page", Duration::from_secs(30), || {
        let fresh = b.execute(
            "return document.readyState === 'complete' && document.documentElement !== null \
             && document.documentElement.dataset.vorher === undefined;",
            vec![],
        );
        (fresh == json!(true)).then_some(())
    });
}

/// The HTTP status of the page shown (Navigation Timing's `responseStatus`).
fn status(b: &Browser) -> u64 {
    b.execute(
        "const n = performance.getEntriesByType('navigation')[0];\n\
         return n ? n.responseStatus : null;",
        vec![],
    )
    .as_u64()
    .unwrap_or_else(|| panic!("no navigation status on {}", b.current_url()))
}

/// The visible text of the page.
fn body_text(b: &Browser) -> String {
    b.find("body").text()
}

/// Signs `user` in through the login form (Enter in the password field); the path landed on.
fn sign_in_as(b: &Browser, d: &TestApp, user: &str, password: &str) -> String {
    b.goto(&d.url("/login"));
    let name = b.find("#username");
    name.clear();
    name.send_keys(user);
    b.find("#password")
        .send_keys(&format!("{password}{}", keys::ENTER));
    let landed = settle(b, "the landing page", |p| p != "/login");
    let who = b.find("header.top .who").text();
    assert!(who.contains(user), "signed in as {user}? {who}");
    landed
}

/// Signs out with the frame's "Abmelden" button; back on the login page.
fn sign_out(b: &Browser) {
    let button = b.find("header.top form.who button[type=submit]");
    assert_eq!(button.text(), "Abmelden");
    button.click();
    settle(b, "the login page after signing out", |p| p == "/login");
    assert!(b.find_all("header.top").is_empty(), "{}", b.page_source());
}

/// `GET /api/documents/{id}` with the global token.
fn document(d: &TestApp, id: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(&d.token)
        .send()
        .expect("document")
        .json()
        .expect("json")
}

/// Waits until document `id` is in `state`; the document then.
fn wait_state(d: &TestApp, id: &str, state: &str) -> Value {
    wait_for(&format!("{id} {state}"), LONG, || {
        let doc = document(d, id);
        if doc["state"] == state {
            return Some(doc);
        }
        std::thread::sleep(Duration::from_millis(300));
        None
    })
}

/// Waits until a document named `name` is in `state` (`documents list`); its id.
fn wait_named(d: &TestApp, name: &str, state: &str) -> String {
    wait_for(&format!("{name} {state}"), LONG, || {
        let found = d
            .documents()
            .into_iter()
            .find(|x| x["original_name"] == name && x["state"] == state)
            .and_then(|x| x["id"].as_str().map(str::to_string));
        if found.is_none() {
            std::thread::sleep(Duration::from_millis(400));
        }
        found
    })
}

/// The events of `kind` of a document (JSON API).
fn events_of(doc: &Value, kind: &str) -> Vec<Value> {
    doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Copies a screenshot into the repository's `docs/screenshots/` (for the README) when
/// `POSTSTELLE_UPDATE_SCREENSHOTS=1`; otherwise test runs leave the checkout as it is.
fn keep_for_docs(shot: &std::path::Path, name: &str) {
    if std::env::var("POSTSTELLE_UPDATE_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let dir = repo().join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    let to = dir.join(name);
    std::fs::copy(shot, &to).expect("copy screenshot");
    println!("screenshot: {}", to.display());
}

/// The model in use according to `/health`.
fn model_in_use(d: &TestApp) -> Option<String> {
    let v: Value = reqwest::blocking::Client::new()
        .get(d.url("/health"))
        .bearer_auth(&d.token)
        .send()
        .ok()?
        .json()
        .ok()?;
    v["model"].as_str().map(str::to_string)
}

#[test]
fn review_by_keyboard_and_send_back_in_a_real_browser() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);
    add_user(&d, "o.ordnung", "fachbereich", &["32"]);
    d.drop_file("scan-0001.pdf", &scanned_bauantrag());
    let b = Browser::start();
    let id = wait_named(&d, "scan-0001.pdf", "delivered");
    assert_eq!(document(&d, &id)["mailbox"], "63");

    // The department finds it in its inbox and opens it.
    assert_eq!(sign_in_as(&b, &d, "b.bau", PASSWORD), "/eingang");
    let link = b.find(&format!("a[data-document=\"{id}\"]"));
    assert_eq!(link.text(), "scan-0001.pdf");
    b.assert_no_axe_violations("eingang");
    link.click();
    assert_eq!(
        settle(&b, "the inbox item", |p| p.starts_with("/eingang/")),
        format!("/eingang/{id}")
    );
    b.find("svg.page-image");
    b.assert_no_axe_violations("eingang-dokument");

    // Sends it back by keyboard only: Tab to the reason, type it, Tab to "Zurückgeben", Enter.
    let reason = "Kein Bauantrag bei uns, bitte Stadtplanung";
    let focused = |b: &Browser| {
        b.execute(
            "const a = document.activeElement;\n\
             return a ? (a.id || a.tagName.toLowerCase() + ':' + a.textContent.trim()) : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    let mut tabs = 0;
    while focused(&b) != "grund" {
        tabs += 1;
        assert!(tabs <= 40, "Tab never reached the reason field");
        b.send_keys_to_active(keys::TAB);
    }
    println!("the reason field after {tabs} Tab presses");
    b.send_keys_to_active(reason);
    b.send_keys_to_active(keys::TAB);
    assert_eq!(focused(&b), "button:Zurückgeben");
    b.send_keys_to_active(keys::ENTER);
    settle(&b, "the inbox after sending back", |p| p == "/eingang");
    let notice = b.find("[role=status]").text();
    assert!(!notice.is_empty(), "a notice after sending back");
    let doc = wait_state(&d, &id, "review");
    let sent = events_of(&doc, "sent_back");
    assert_eq!(sent.len(), 1, "{doc}");
    assert_eq!(sent[0]["actor"], "b.bau");
    assert_eq!(sent[0]["detail"]["reason"], reason);
    sign_out(&b);

    // Another department: 404 for the page and for the JSON API in the same session.
    assert_eq!(sign_in_as(&b, &d, "o.ordnung", PASSWORD), "/eingang");
    assert!(
        b.find_all(&format!("a[data-document=\"{id}\"]")).is_empty(),
        "{}",
        b.page_source()
    );
    b.goto(&d.url(&format!("/eingang/{id}")));
    assert_eq!(status(&b), 404);
    assert_eq!(b.find("h1").text(), "Nicht gefunden");
    b.assert_no_axe_violations("nicht-gefunden");
    b.goto(&d.url(&format!("/api/documents/{id}")));
    assert_eq!(status(&b), 404);
    let text = body_text(&b);
    assert!(text.contains("nicht gefunden"), "{text}");
    assert!(!text.contains("Wintergarten"), "{text}");
    b.goto(&d.url("/eingang"));
    sign_out(&b);

    // The Poststelle lands on the Prüfkorb and opens the oldest item with j, Enter.
    assert_eq!(sign_in_as(&b, &d, "p.post", PASSWORD), "/pruefkorb");
    b.find(&format!("a[data-item=\"{id}\"]"));
    b.assert_no_axe_violations("pruefkorb");
    b.send_keys_to_active("j");
    assert_eq!(focused(&b), "a:scan-0001.pdf", "j selects the oldest item");
    // Timings are printed for the record (how long a person waits), never asserted.
    let opened = std::time::Instant::now();
    b.send_keys_to_active(keys::ENTER);
    assert_eq!(
        settle(&b, "the review item", |p| p.starts_with("/pruefkorb/")),
        format!("/pruefkorb/{id}")
    );
    b.find(&format!("[data-review-item=\"{id}\"]"));
    b.execute(
        "return Array.from(document.images).every(function (i) { return i.complete; });",
        vec![],
    );
    println!(
        "timing: review item opened in {} ms",
        opened.elapsed().as_millis()
    );
    let hits = b.find_all("svg.page-image rect.hit");
    assert!(
        !hits.is_empty(),
        "deciding words marked: {}",
        b.page_source()
    );
    let words: Vec<String> = hits.iter().filter_map(|h| h.attr("data-word")).collect();
    println!("marked words: {words:?}");
    let text = body_text(&b);
    assert!(text.contains(reason), "the reason is shown: {text}");
    b.assert_no_axe_violations("pruefkorb-eintrag");
    let shot = b.save_screenshot("pruefkorb-eintrag");
    keep_for_docs(&shot, "pruefkorb.png");

    // Decide for 61 (Stadtplanung): its number key if it is among the choices, else the
    // search field (/).
    let deciding = std::time::Instant::now();
    let key = b
        .find_all("form.choices button[data-mailbox=\"61\"]")
        .first()
        .and_then(|c| c.attr("data-key"));
    match &key {
        Some(k) => {
            println!("mailbox 61 is choice {k}");
            b.send_keys_to_active(k);
        }
        None => {
            println!("mailbox 61 is no choice: searching with /");
            b.send_keys_to_active("/");
            assert_eq!(focused(&b), "alle", "/ focuses the search field");
            b.send_keys_to_active(&format!("61{}", keys::ENTER));
        }
    }
    settle(&b, "the Prüfkorb after deciding", |p| p == "/pruefkorb");
    println!(
        "timing: decided by keyboard, next page shown after {} ms",
        deciding.elapsed().as_millis()
    );
    let doc = wait_state(&d, &id, "delivered");
    println!(
        "timing: delivered {} ms after the key",
        deciding.elapsed().as_millis()
    );
    assert_eq!(doc["mailbox"], "61", "{doc}");
    let assigned = events_of(&doc, "assigned");
    let last = assigned.last().expect("an assigned event");
    assert_eq!(last["actor"], "p.post", "{doc}");
    assert_eq!(last["detail"]["origin"], "review", "{doc}");
    wait_for("delivery to 61", LONG, || {
        d.delivered().iter().any(|(m, _)| m == "61").then_some(())
    });
}

#[test]
fn ldap_user_signs_in_in_a_real_browser() {
    let ldap = crate::ldap::start();
    let url = ldap.url();
    let d = Install::new().spawn_app_with(&[("POSTSTELLE__AUTH__MAX_FAILURES", "2")], |s| {
        s.auth.ldap = Some(crate::ldap::settings(&url))
    });
    let b = Browser::start();

    // erika (Bauamt: department, mailboxes 63 and 61) signs in with her directory password.
    assert_eq!(sign_in_as(&b, &d, "erika", "bau-geheim-1"), "/eingang");
    let intro = b.find("main p").text();
    assert!(
        intro.contains("63") && intro.contains("61"),
        "her mailboxes: {intro}"
    );
    let nav: Vec<String> = b
        .find_all("header.top nav a")
        .iter()
        .map(|a| a.text())
        .collect();
    assert_eq!(nav, ["Eingang"], "a department's navigation");
    b.assert_no_axe_violations("eingang-ldap");
    sign_out(&b);

    // Wrong passwords for max: an alert each time, counted; the second locks the name.
    b.goto(&d.url("/login"));
    b.find("#username").send_keys("max");
    let try_password = |password: &str| {
        next_page(&b, || {
            b.find("#password")
                .send_keys(&format!("{password}{}", keys::ENTER))
        });
        assert_eq!(path_of(&b.current_url()), "/login");
        assert_eq!(b.find("#username").attr("value").as_deref(), Some("max"));
        (status(&b), b.find("[role=alert]").text())
    };
    let (code, alert) = try_password("falsch");
    assert_eq!(code, 401, "{alert}");
    assert!(
        alert.contains("Benutzername oder Passwort ist falsch"),
        "{alert}"
    );
    let (code, alert) = try_password("falsch");
    assert_eq!(code, 429, "{alert}");
    assert!(alert.contains("gesperrt"), "{alert}");
    b.assert_no_axe_violations("anmeldung-gesperrt");
    // Locked even with the right password.
    let (code, alert) = try_password("zwei-gruppen-2");
    assert_eq!(code, 429, "{alert}");
    assert!(alert.contains("gesperrt"), "{alert}");
    assert!(b.find_all("header.top").is_empty(), "not signed in");
}

#[test]
fn admin_activates_rolls_back_and_retries_quarantine_in_a_real_browser() {
    let install = Install::new();
    let (models, a, v2) = crate::models::two_versions(&install);
    let models_s = models.display().to_string();
    let d = install.spawn_app(&[("POSTSTELLE__CLASSIFY__MODELS", &models_s)]);
    add_user(&d, "i.admin", "admin", &[]);
    let b = Browser::start();
    sign_in_as(&b, &d, "i.admin", PASSWORD);
    b.goto(&d.url("/verwaltung"));
    b.find(&format!("tr[data-model=\"{v2}\"]"));
    b.assert_no_axe_violations("verwaltung");
    assert_eq!(model_in_use(&d).as_deref(), Some(a.as_str()));
    let active = |b: &Browser, v: &str| {
        b.find(&format!("tr[data-model=\"{v}\"]"))
            .text()
            .contains("(aktiv)")
    };
    assert!(active(&b, &a));

    // Activate the second version with its button.
    // The page answers on the same path: wait for the new document, not just the path.
    let button = b.find(&format!("button[data-activate=\"{v2}\"]"));
    next_page(&b, || button.click());
    assert!(active(&b, &v2), "{}", b.page_source());
    assert!(!active(&b, &a));
    assert!(
        b.find_all(&format!("button[data-activate=\"{v2}\"]"))
            .is_empty()
    );
    assert!(!b.find("[role=status]").text().is_empty(), "a notice");
    assert_eq!(model_in_use(&d).as_deref(), Some(v2.as_str()));
    b.assert_no_axe_violations("verwaltung-aktiviert");

    // Roll back: the first version again.
    let button = b.find("button[data-rollback]");
    next_page(&b, || button.click());
    assert!(active(&b, &a), "{}", b.page_source());
    assert_eq!(model_in_use(&d).as_deref(), Some(a.as_str()));

    // A broken PDF ends in quarantine; its retry button reads it again.
    d.drop_file("kaputt.pdf", BROKEN_PDF);
    let id = wait_named(&d, "kaputt.pdf", "quarantined");
    b.goto(&d.url("/verwaltung"));
    let retry = b.find(&format!("button[data-retry=\"{id}\"]"));
    assert!(retry.text().contains("kaputt.pdf"), "{}", retry.text());
    b.assert_no_axe_violations("verwaltung-quarantaene");
    next_page(&b, || retry.click());
    let doc = wait_for("quarantine_retried", LONG, || {
        let doc = document(&d, &id);
        if events_of(&doc, "quarantine_retried").is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            return None;
        }
        Some(doc)
    });
    let retried = events_of(&doc, "quarantine_retried");
    assert_eq!(retried[0]["actor"], "i.admin", "{doc}");
}

#[test]
fn a_form_without_csrf_is_refused_in_a_real_browser() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    d.drop_file("leer.png", &blank_page());
    let b = Browser::start();
    let id = wait_named(&d, "leer.png", "review");
    assert_eq!(sign_in_as(&b, &d, "p.post", PASSWORD), "/pruefkorb");
    let item = d.url(&format!("/pruefkorb/{id}"));
    b.goto(&item);
    b.find(&format!("[data-review-item=\"{id}\"]"));

    // The assign form (search field) loses its hidden CSRF field; submitted, it is refused.
    let left = b.execute(
        "const f = document.getElementById('alle').form;\n\
         f.querySelector('input[name=csrf]').remove();\n\
         return f.querySelectorAll('input[name=csrf]').length;",
        vec![],
    );
    assert_eq!(left, json!(0));
    b.find("#alle").send_keys("61");
    next_page(&b, || {
        b.find("form.stack[action$=\"/zuordnen\"] button[type=submit]")
            .click()
    });
    assert_eq!(
        path_of(&b.current_url()),
        format!("/pruefkorb/{id}/zuordnen")
    );
    assert_eq!(status(&b), 403);
    let text = body_text(&b);
    assert!(text.contains("Sicherheitsmerkmal"), "{text}");
    b.save_screenshot("csrf-abgelehnt");
    assert_eq!(document(&d, &id)["state"], "review");

    // The same form with its token goes through.
    b.goto(&item);
    b.find("#alle").send_keys("61");
    b.find("form.stack[action$=\"/zuordnen\"] button[type=submit]")
        .click();
    settle(&b, "the Prüfkorb after deciding", |p| p == "/pruefkorb");
    let doc = wait_state(&d, &id, "delivered");
    assert_eq!(doc["mailbox"], "61");
}

#[test]
fn every_page_is_accessible() {
    // Every letter routed straight through is sampled: the Stichprobe shows one with its forms.
    let d = spawn_app(&[("POSTSTELLE__SAMPLE__SHARE", "1.0")]);
    add_user(&d, "i.admin", "admin", &[]);
    d.drop_file("scan-0002.pdf", &scanned_bauantrag());
    d.drop_file("kaputt.pdf", BROKEN_PDF);
    let b = Browser::start();
    sign_in_as(&b, &d, "i.admin", PASSWORD);

    // Hochladen: the form, then a blank page uploaded through the file field.
    b.goto(&d.url("/hochladen"));
    b.find("#datei");
    b.assert_no_axe_violations("hochladen");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("leer.png");
    std::fs::write(&file, blank_page()).expect("write");
    b.find("#datei").send_keys(&file.display().to_string());
    b.find("form[data-dropzone] button[type=submit]").click();
    let result = b.find("[role=status]").text();
    assert!(result.contains("„leer.png“ angenommen"), "{result}");
    b.assert_no_axe_violations("hochladen-ergebnis");

    let delivered = wait_named(&d, "scan-0002.pdf", "delivered");
    let review = wait_named(&d, "leer.png", "review");
    wait_named(&d, "kaputt.pdf", "quarantined");

    let pages = [
        ("/verwaltung".to_string(), "verwaltung-alles"),
        ("/quarantaene".to_string(), "quarantaene"),
        ("/konto".to_string(), "konto"),
        ("/eingang".to_string(), "eingang-alles"),
        (format!("/eingang/{delivered}"), "eingang-dokument-alles"),
        ("/pruefkorb".to_string(), "pruefkorb-alles"),
        (format!("/pruefkorb/{review}"), "pruefkorb-eintrag-alles"),
        ("/stichprobe".to_string(), "stichprobe"),
        ("/sichtkontrolle".to_string(), "sichtkontrolle"),
        // Last: the charts are checked below.
        ("/uebersicht".to_string(), "uebersicht"),
    ];
    for (path, name) in &pages {
        b.goto(&d.url(path));
        assert_eq!(status(&b), 200, "{path}");
        assert_eq!(path_of(&b.current_url()), path);
        b.find("main h1");
        b.assert_no_axe_violations(name);
    }
    assert!(
        !b.find_all("main svg[role=\"img\"]").is_empty(),
        "the overview draws its charts"
    );
    let shot = b.save_screenshot("uebersicht");
    keep_for_docs(&shot, "uebersicht.png");
}

#[test]
fn a_stack_s_split_points_are_moved_on_the_desk_in_a_real_browser() {
    // A Hundesteuer letter and a note that may begin a letter of its own: one letter of two
    // pages, in review because the split is uncertain.
    use crate::stack::{doubtful_page, drop_stack, hundesteuer, parts, pdf, settled};
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    drop_stack(&d, "stapel.pdf", &pdf(&[hundesteuer(), doubtful_page()]));
    let got = settled(&d, 1);
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("1-2", "review"));
    let b = Browser::start();
    sign_in_as(&b, &d, "p.post", PASSWORD);

    // From the Prüfkorb to the stack's page: its pages as thumbnails, the split points.
    b.goto(&d.url("/pruefkorb"));
    let link = b.find("a[data-stack-link]");
    let batch = link.attr("data-stack-link").expect("the stack's id");
    next_page(&b, || link.click());
    assert_eq!(path_of(&b.current_url()), format!("/stapel/{batch}"));
    assert_eq!(status(&b), 200);
    let loaded = wait_for("the thumbnails", Duration::from_secs(60), || {
        let done = b.execute(
            "const imgs = Array.from(document.querySelectorAll('.stack-page img'));\n\
             return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)\n\
               ? imgs.length : null;",
            vec![],
        );
        done.as_u64()
    });
    assert_eq!(loaded, 2, "one thumbnail per page");
    assert!(body_text(&b).contains("Briefanfang (erste Seite des Stapels)"));
    b.assert_no_axe_violations("stapel");
    b.save_screenshot("stapel");

    // Page 2 begins a letter: checked with the mouse, the form sent.
    let start = b.find("input[name=start][value='2']");
    assert_eq!(start.property("checked"), json!(false));
    start.click();
    assert_eq!(start.property("checked"), json!(true));
    let submit = b.find("form[data-split-form] button[type=submit]");
    next_page(&b, || submit.click());
    let notice = b.find("[role=status]").text();
    assert!(notice.contains("Trennstellen sind übernommen"), "{notice}");
    assert_eq!(
        b.find("input[name=start][value='2']").property("checked"),
        json!(true)
    );
    let after = settled(&d, 2);
    let ranges: Vec<&str> = after.iter().map(|(p, ..)| p.as_str()).collect();
    assert_eq!(ranges, ["1", "2"]);
    assert_eq!(parts(&d).len(), 2);
    b.assert_no_axe_violations("stapel-getrennt");
}
