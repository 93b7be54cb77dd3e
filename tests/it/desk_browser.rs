//! The web desk in a real browser (headless Chromium over WebDriver, see
//! [`crate::harness::browser`]): pages checked with axe-core against WCAG 2.1 A and AA, and
//! used the way a person does, with the keyboard and the mouse. The daemon runs in-process.

use crate::auth::{PASSWORD, add_user};
use crate::harness::browser::{Browser, keys};
use crate::harness::*;
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
    let landed = wait_for("the landing page", Duration::from_secs(10), || {
        let url = b.current_url();
        (path_of(&url) != "/login").then_some(url)
    });
    assert_eq!(path_of(&landed), "/pruefkorb", "{}", b.page_source());
    let who = b.find("header.top .who").text();
    assert!(who.contains("p.post"), "{who}");
    assert!(b.find_all("[role=alert]").is_empty(), "{}", b.page_source());
    b.save_screenshot("pruefkorb-leer");
}
