//! The web desk over HTTP (pages, forms, page images), with real accounts and a scanned letter
//! read by real Tesseract: a department sends a misrouted letter back, the Poststelle sees it
//! in the Prüfkorb with the deciding words marked on the page image and assigns it; another
//! department gets 404 for it everywhere; forms without the CSRF token are refused.

use crate::auth::{Session, add_user, browser, sign_in};
use crate::harness::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// A scanned one-page Bauantrag (300 dpi, a little noise) as a PDF, as a scanner makes it.
pub fn scanned_bauantrag() -> Vec<u8> {
    scan_pdf(&noisy(render(&bauantrag_pdf(), 300), 8), 300)
}

fn get(d: &TestApp, s: &Session, path: &str) -> reqwest::blocking::Response {
    browser()
        .get(d.url(path))
        .header("Cookie", &s.cookie)
        .send()
        .expect("get")
}

fn post(
    d: &TestApp,
    s: &Session,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    browser()
        .post(d.url(path))
        .header("Cookie", &s.cookie)
        .form(form)
        .send()
        .expect("post")
}

fn document(d: &TestApp, id: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(&d.token)
        .send()
        .expect("document")
        .json()
        .expect("json")
}

fn wait_state(d: &TestApp, id: &str, state: &str) -> serde_json::Value {
    wait_for(state, LONG, || {
        let doc = document(d, id);
        (doc["state"] == state).then_some(doc)
    })
}

#[test]
fn sent_back_by_a_department_then_decided_in_the_review_station() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);
    add_user(&d, "o.ordnung", "fachbereich", &["32"]);
    d.drop_file("scan-0001.pdf", &scanned_bauantrag());
    let delivered = wait_for("delivery", LONG, || {
        let docs = d.documents();
        docs.iter()
            .find(|x| x["state"] == "delivered")
            .map(|x| x["id"].as_str().expect("id").to_string())
    });
    let id = delivered.as_str();
    assert_eq!(document(&d, id)["mailbox"], "63");

    // The department sees it in its inbox, with the page image.
    let bau = sign_in(&d, "b.bau");
    let inbox = get(&d, &bau, "/eingang").text().expect("html");
    assert!(inbox.contains(&format!("/eingang/{id}")), "{inbox}");
    let page = get(&d, &bau, &format!("/eingang/{id}"));
    assert_eq!(page.status(), 200);
    let img = get(&d, &bau, &format!("/dokumente/{id}/seite/1"));
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/png");
    let png = image::load_from_memory(&img.bytes().expect("bytes")).expect("a PNG");
    assert!(
        png.width() >= 600 && png.height() > png.width(),
        "an A4 page"
    );
    assert_eq!(
        get(&d, &bau, &format!("/dokumente/{id}/seite/2")).status(),
        404,
        "a one-page letter has no page 2"
    );

    // Another department: 404 in the UI, for the page image and in the API.
    let ord = sign_in(&d, "o.ordnung");
    for path in [
        format!("/eingang/{id}"),
        format!("/dokumente/{id}/seite/1"),
        format!("/api/documents/{id}"),
    ] {
        assert_eq!(get(&d, &ord, &path).status(), 404, "{path}");
    }
    assert!(!get(&d, &ord, "/eingang").text().expect("html").contains(id));
    let r = post(
        &d,
        &ord,
        &format!("/eingang/{id}/zurueck"),
        &[("csrf", ord.csrf.as_str()), ("reason", "nicht unseres")],
    );
    assert_eq!(r.status(), 404, "no sending back what one cannot see");
    // A department has no review station.
    assert_eq!(get(&d, &bau, "/pruefkorb").status(), 403);

    // Sending back without the CSRF token is refused; with it, the letter is in review.
    let reason = "Kein Bauantrag bei uns, bitte Stadtplanung";
    let r = post(
        &d,
        &bau,
        &format!("/eingang/{id}/zurueck"),
        &[("reason", reason)],
    );
    assert_eq!(r.status(), 403);
    assert_eq!(document(&d, id)["state"], "delivered");
    let r = post(
        &d,
        &bau,
        &format!("/eingang/{id}/zurueck"),
        &[("csrf", bau.csrf.as_str()), ("reason", reason)],
    );
    assert_eq!(r.status(), 303, "{:?}", r.text());
    let doc = wait_state(&d, id, "review");
    let sent = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "sent_back")
        .expect("sent_back event")
        .clone();
    assert_eq!(sent["actor"], "b.bau");
    assert_eq!(sent["detail"]["reason"], reason);

    // The Poststelle sees it in the Prüfkorb with the department's reason ...
    let post_s = sign_in(&d, "p.post");
    let list = get(&d, &post_s, "/pruefkorb").text().expect("html");
    assert!(list.contains(&format!("/pruefkorb/{id}")), "{list}");
    assert!(list.contains(reason), "{list}");
    // ... and on the item page the deciding words marked on the page image.
    let item = get(&d, &post_s, &format!("/pruefkorb/{id}"))
        .text()
        .expect("html");
    assert!(item.contains("<svg class=\"page-image\""), "{item}");
    assert!(
        item.contains(&format!("href=\"/dokumente/{id}/seite/1\"")),
        "{item}"
    );
    let marked: Vec<&str> = item
        .split("data-word=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(
        marked
            .iter()
            .any(|w| w.contains("Bauantrag") || w.contains("Wintergarten")),
        "marked words: {marked:?}"
    );
    assert!(
        item.contains("data-mailbox=\"61\""),
        "every mailbox is offered"
    );
    assert!(
        item.contains("Regel „"),
        "the explanation in sentences: {item}"
    );

    // A decision without the CSRF token is refused; with it the letter goes to 61.
    let r = post(
        &d,
        &post_s,
        &format!("/pruefkorb/{id}/zuordnen"),
        &[("mailbox", "61")],
    );
    assert_eq!(r.status(), 403);
    let r = post(
        &d,
        &post_s,
        &format!("/pruefkorb/{id}/zuordnen"),
        &[
            ("csrf", post_s.csrf.as_str()),
            ("mailbox", "61 Stadtplanung"),
        ],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/pruefkorb?erledigt=1",
        "the queue is empty now"
    );
    let doc = wait_state(&d, id, "delivered");
    assert_eq!(doc["mailbox"], "61");
    let assigned = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .rfind(|e| e["kind"] == "assigned")
        .expect("assigned")
        .clone();
    assert_eq!(assigned["actor"], "p.post");
    assert_eq!(assigned["detail"]["origin"], "review");
    assert!(d.delivered().iter().any(|(m, _)| m == "61"));
    // The department that sent it back no longer sees it.
    assert_eq!(get(&d, &bau, &format!("/eingang/{id}")).status(), 404);
}

#[test]
fn a_note_keeps_an_unassignable_item_in_the_queue_and_uploads_go_through_intake() {
    let d = spawn_app(&[]);
    add_user(&d, "p.post", "poststelle", &[]);
    let s = sign_in(&d, "p.post");
    // Upload through the page: multipart, CSRF token in the query.
    let blank = png(&image::GrayImage::from_pixel(
        1240,
        1754,
        image::Luma([255]),
    ));
    let upload = |csrf: Option<&str>| {
        let mut form = reqwest::blocking::multipart::Form::new();
        if let Some(c) = csrf {
            form = form.text("csrf", c.to_string());
        }
        let form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(blank.clone()).file_name("leer.png"),
        );
        browser()
            .post(d.url("/hochladen"))
            .header("Cookie", &s.cookie)
            .multipart(form)
            .send()
            .expect("upload")
    };
    assert_eq!(upload(None).status(), 403);
    assert_eq!(upload(Some("falsch")).status(), 403);
    assert!(d.documents().is_empty(), "nothing refused was taken in");
    let r = upload(Some(&s.csrf));
    assert_eq!(r.status(), 200);
    let html = r.text().expect("html");
    assert!(html.contains("„leer.png“ angenommen"), "{html}");
    let again = upload(Some(&s.csrf)).text().expect("html");
    assert!(again.contains("war schon da"), "{again}");
    let id = wait_for("review", LONG, || {
        d.documents()
            .iter()
            .find(|x| x["state"] == "review")
            .map(|x| x["id"].as_str().expect("id").to_string())
    });
    let item = get(&d, &s, &format!("/pruefkorb/{id}"))
        .text()
        .expect("html");
    assert!(item.contains("Kein lesbarer Text"), "{item}");
    let r = post(
        &d,
        &s,
        &format!("/pruefkorb/{id}/notiz"),
        &[
            ("csrf", s.csrf.as_str()),
            ("note", "Leere Seite, Absender anrufen"),
        ],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(document(&d, &id)["state"], "review");
    let item = get(&d, &s, &format!("/pruefkorb/{id}"))
        .text()
        .expect("html");
    assert!(item.contains("Leere Seite, Absender anrufen"), "{item}");
    let doc = document(&d, &id);
    let note = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "review_note")
        .expect("note event")
        .clone();
    assert_eq!(note["actor"], "p.post");
    // An unknown mailbox is not assigned.
    let r = post(
        &d,
        &s,
        &format!("/pruefkorb/{id}/zuordnen"),
        &[("csrf", s.csrf.as_str()), ("mailbox", "99")],
    );
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .expect("location")
            .contains("fehler")
    );
    assert_eq!(document(&d, &id)["state"], "review");
}

fn model_in_use(d: &TestApp) -> Option<String> {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(d.url("/health"))
        .bearer_auth(&d.token)
        .send()
        .ok()?
        .json()
        .ok()?;
    v["model"].as_str().map(str::to_string)
}

#[test]
fn the_admin_page_activates_and_rolls_back_models_and_retries_quarantine() {
    let install = Install::new();
    let (models, a, b) = crate::models::two_versions(&install);
    let models_s = models.display().to_string();
    let d = install.spawn_app(&[("POSTSTELLE__CLASSIFY__MODELS", &models_s)]);
    add_user(&d, "i.admin", "admin", &[]);
    add_user(&d, "b.bau", "fachbereich", &["63"]);
    let bau = sign_in(&d, "b.bau");
    assert_eq!(get(&d, &bau, "/verwaltung").status(), 403);
    let s = sign_in(&d, "i.admin");
    let html = get(&d, &s, "/verwaltung").text().expect("html");
    assert!(html.contains(&format!("data-model=\"{b}\"")), "{html}");
    assert!(html.contains("data-target=\"dms\""), "{html}");
    assert_eq!(model_in_use(&d).as_deref(), Some(a.as_str()));

    // Activate the other version: in use at once, and the page says so.
    let r = post(&d, &s, "/verwaltung/modelle/aktivieren", &[("version", &b)]);
    assert_eq!(r.status(), 403, "no CSRF token, no change");
    let r = post(
        &d,
        &s,
        "/verwaltung/modelle/aktivieren",
        &[("csrf", s.csrf.as_str()), ("version", &b)],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(model_in_use(&d).as_deref(), Some(b.as_str()));
    assert_eq!(
        std::fs::read_to_string(models.join("ACTIVE"))
            .expect("ACTIVE")
            .trim(),
        b
    );
    let r = post(
        &d,
        &s,
        "/verwaltung/modelle/aktivieren",
        &[("csrf", s.csrf.as_str()), ("version", "../../etc/passwd")],
    );
    assert_eq!(r.status(), 400);
    // Roll back: the first version again.
    let r = post(
        &d,
        &s,
        "/verwaltung/modelle/zuruecksetzen",
        &[("csrf", s.csrf.as_str())],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(model_in_use(&d).as_deref(), Some(a.as_str()));

    // Train now: runs in the background, the page shows its progress, then the result; a
    // third version exists, active when it is not worse than the one in use.
    let r = post(
        &d,
        &s,
        "/verwaltung/modelle/trainieren",
        &[("csrf", s.csrf.as_str())],
    );
    assert_eq!(r.status(), 303);
    let page = wait_for("training done", LONG, || {
        let html = get(&d, &s, "/verwaltung").text().ok()?;
        html.contains("Training von i.admin fertig").then_some(html)
    });
    assert_eq!(
        page.matches("data-model=\"").count(),
        3,
        "a third version: {page}"
    );
    let newest = page
        .split("data-model=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("newest version")
        .to_string();
    if page.contains("Die Version ist aktiv") {
        assert_eq!(model_in_use(&d).as_deref(), Some(newest.as_str()));
    } else {
        assert!(page.contains("Nicht aktiviert"), "{page}");
        assert_eq!(model_in_use(&d).as_deref(), Some(a.as_str()));
    }

    // A broken PDF is quarantined; "erneut versuchen" reads it again (and quarantines it again,
    // with the retry in its audit trail); the original can be downloaded.
    let broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n";
    d.drop_file("kaputt.pdf", broken);
    let id = wait_for("quarantine", LONG, || {
        d.documents()
            .iter()
            .find(|x| x["state"] == "quarantined")
            .map(|x| x["id"].as_str().expect("id").to_string())
    });
    let html = get(&d, &s, "/verwaltung").text().expect("html");
    assert!(html.contains(&format!("data-retry=\"{id}\"")), "{html}");
    let link = html
        .split("href=\"/verwaltung/quarantaene/")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .expect("download link");
    let file = get(&d, &s, &format!("/verwaltung/quarantaene/{link}"));
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().expect("bytes").as_ref(), broken.as_slice());
    // The Poststelle sees the quarantine list and may download; a department may not.
    add_user(&d, "p.post", "poststelle", &[]);
    let p = sign_in(&d, "p.post");
    let list = get(&d, &p, "/quarantaene").text().expect("html");
    assert!(list.contains("kaputt.pdf"), "{list}");
    assert_eq!(
        get(&d, &p, &format!("/verwaltung/quarantaene/{link}"))
            .bytes()
            .expect("bytes")
            .as_ref(),
        broken.as_slice()
    );
    assert_eq!(get(&d, &bau, "/quarantaene").status(), 403);
    assert_eq!(
        get(&d, &bau, &format!("/verwaltung/quarantaene/{link}")).status(),
        403
    );
    assert_eq!(
        post(
            &d,
            &p,
            &format!("/verwaltung/quarantaene/{id}/erneut"),
            &[("csrf", p.csrf.as_str())]
        )
        .status(),
        403,
        "trying again is the admins'"
    );
    let r = post(
        &d,
        &s,
        &format!("/verwaltung/quarantaene/{id}/erneut"),
        &[("csrf", s.csrf.as_str())],
    );
    assert_eq!(r.status(), 303);
    let doc = wait_for("quarantined again", LONG, || {
        let doc = document(&d, &id);
        let kinds: Vec<String> = doc["events"]
            .as_array()?
            .iter()
            .filter_map(|e| e["kind"].as_str().map(str::to_string))
            .collect();
        let retried = kinds.iter().position(|k| k == "quarantine_retried")?;
        (doc["state"] == "quarantined" && kinds.len() > retried + 1).then_some(doc)
    });
    let retried = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "quarantine_retried")
        .expect("retried")
        .clone();
    assert_eq!(retried["actor"], "i.admin");
}

#[test]
fn accounts_made_on_the_admin_page_sign_in_and_make_their_own_tokens() {
    let d = spawn_app(&[]);
    add_user(&d, "i.admin", "admin", &[]);
    let admin = sign_in(&d, "i.admin");
    let add = |form: &[(&str, &str)]| {
        let mut f = vec![("csrf", admin.csrf.as_str())];
        f.extend_from_slice(form);
        post(&d, &admin, "/verwaltung/benutzer/anlegen", &f)
    };
    // Refused with a German reason: a department without a mailbox, a short password, a bad
    // name, an unknown mailbox.
    for (form, needle) in [
        (
            vec![
                ("name", "b.bau"),
                ("role", "fachbereich"),
                ("password", crate::auth::PASSWORD),
            ],
            "mindestens ein Postfach",
        ),
        (
            vec![
                ("name", "b.bau"),
                ("role", "fachbereich"),
                ("mailboxes", "63"),
                ("password", "kurz"),
            ],
            "mindestens 10 Zeichen",
        ),
        (
            vec![
                ("name", "b bau"),
                ("role", "admin"),
                ("password", crate::auth::PASSWORD),
            ],
            "ungültig",
        ),
        (
            vec![
                ("name", "b.bau"),
                ("role", "fachbereich"),
                ("mailboxes", "63, 99"),
                ("password", crate::auth::PASSWORD),
            ],
            "Unbekanntes Postfach „99“",
        ),
    ] {
        let r = add(&form);
        assert_eq!(r.status(), 400, "{form:?}");
        let html = r.text().expect("html");
        assert!(html.contains(needle), "{form:?}: {html}");
    }
    let r = add(&[
        ("name", "b.bau"),
        ("role", "fachbereich"),
        ("mailboxes", "63, 61"),
        ("password", crate::auth::PASSWORD),
    ]);
    assert_eq!(r.status(), 303);
    let r = add(&[
        ("name", "b.bau"),
        ("role", "admin"),
        ("password", crate::auth::PASSWORD),
    ]);
    assert_eq!(r.status(), 409, "a name is taken once");
    // The new account signs in with its role and mailboxes ...
    let bau = sign_in(&d, "b.bau");
    let me: serde_json::Value = get(&d, &bau, "/api/me").json().expect("json");
    assert_eq!(me["role"], "fachbereich");
    assert_eq!(me["mailboxes"], serde_json::json!(["63", "61"]));
    // ... and makes a token on its own page, shown once, that works until revoked.
    let r = post(
        &d,
        &bau,
        "/konto/tokens",
        &[("csrf", bau.csrf.as_str()), ("label", "Skript")],
    );
    assert_eq!(r.status(), 200);
    let html = r.text().expect("html");
    let token = html
        .split("data-new-token>")
        .nth(1)
        .and_then(|x| x.split('<').next())
        .expect("the new token")
        .to_string();
    assert!(token.starts_with("pst_"), "{token}");
    let me_by_token = || {
        reqwest::blocking::Client::new()
            .get(d.url("/api/me"))
            .bearer_auth(&token)
            .send()
            .expect("me")
    };
    let me: serde_json::Value = me_by_token().json().expect("json");
    assert_eq!(me["name"], "b.bau");
    let page = get(&d, &bau, "/konto").text().expect("html");
    assert!(!page.contains(&token), "shown once only");
    let id = page
        .split("/konto/tokens/")
        .nth(1)
        .and_then(|x| x.split('/').next())
        .expect("token id")
        .to_string();
    // Another person cannot revoke it; the owner can.
    let r = post(
        &d,
        &admin,
        &format!("/konto/tokens/{id}/widerrufen"),
        &[("csrf", admin.csrf.as_str())],
    );
    assert_eq!(r.status(), 404);
    let r = post(
        &d,
        &bau,
        &format!("/konto/tokens/{id}/widerrufen"),
        &[("csrf", bau.csrf.as_str())],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(me_by_token().status(), 401);
}
