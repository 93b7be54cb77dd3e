//! Identities and roles over HTTP: local accounts made with `poststelle users`, the login form
//! (double-submit token, session cookie flags, lockout), CSRF on session requests, personal API
//! tokens, and department isolation on the JSON API. The daemon runs in-process.

use crate::harness::*;
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);
/// A password long enough for the rules.
pub const PASSWORD: &str = "Geheim-genug-2026";

/// Adds a local account with `poststelle users add` (password from the environment).
pub fn add_user(install: &Install, name: &str, role: &str, mailboxes: &[&str]) {
    let mut c = install.command();
    c.args(["users", "add", name, "--role", role])
        .env("POSTSTELLE_PASSWORD", PASSWORD);
    for m in mailboxes {
        c.args(["--mailbox", m]);
    }
    let out = c.output().expect("users add");
    assert!(
        out.status.success(),
        "users add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A personal API token made with `poststelle users token`.
pub fn user_token(install: &Install, name: &str) -> String {
    let out = install
        .command()
        .args(["users", "token", name, "--label", "Test"])
        .output()
        .expect("users token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("pst_"), "{token}");
    token
}

/// A browser-like client that does not follow redirects (the tests look at them).
pub fn browser() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` among a response's `Set-Cookie` headers, with the whole header.
pub fn set_cookie(r: &Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find(|h| h.starts_with(&format!("{name}=")))
        .map(|h| {
            let value = h[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
            (value, h.to_string())
        })
}

/// The value of the hidden form field `name` in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// Signs in through the login form; returns the response of the form's POST and the login
/// cookie it sent.
pub fn post_login(d: &TestApp, user: &str, password: &str) -> Response {
    let c = browser();
    let form = c.get(d.url("/login")).send().expect("login form");
    assert_eq!(form.status(), 200);
    let (login_cookie, _) = set_cookie(&form, "poststelle_anmeldung").expect("login cookie");
    let html = form.text().expect("html");
    let csrf = hidden(&html, "csrf").expect("csrf field");
    assert_eq!(
        csrf, login_cookie,
        "double-submit: the form carries the cookie's value"
    );
    c.post(d.url("/login"))
        .header("Cookie", format!("poststelle_anmeldung={login_cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "/"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .expect("login")
}

/// A signed-in browser session: its cookie header and its CSRF token (read from a page).
pub struct Session {
    /// `Cookie` header value.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// Signs `user` in (it must succeed).
pub fn sign_in(d: &TestApp, user: &str) -> Session {
    let r = post_login(d, user, PASSWORD);
    assert_eq!(r.status(), 303, "login of {user}");
    let (value, _) = set_cookie(&r, "poststelle_sitzung").expect("session cookie");
    let cookie = format!("poststelle_sitzung={value}");
    let page = browser()
        .get(d.url("/eingang"))
        .header("Cookie", &cookie)
        .send()
        .expect("page")
        .text()
        .expect("html");
    let csrf = hidden(&page, "csrf").expect("the frame's logout form carries the CSRF token");
    Session { cookie, csrf }
}

fn me(d: &TestApp, cookie: &str) -> reqwest::StatusCode {
    browser()
        .get(d.url("/api/me"))
        .header("Cookie", cookie)
        .send()
        .expect("me")
        .status()
}

#[test]
fn a_local_login_gives_a_strict_http_only_session_that_logout_ends() {
    let d = spawn_app(&[]);
    add_user(&d, "p.meier", "poststelle", &[]);
    let r = post_login(&d, "p.meier", PASSWORD);
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/pruefkorb",
        "the Poststelle lands on the review queue"
    );
    let (value, header) = set_cookie(&r, "poststelle_sitzung").expect("session cookie");
    assert_eq!(value.len(), 64);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(header.contains(flag), "{flag} in {header}");
    }
    assert!(
        !header.contains("Secure"),
        "plain http without secure_cookies"
    );
    let cookie = format!("poststelle_sitzung={value}");
    let who: serde_json::Value = browser()
        .get(d.url("/api/me"))
        .header("Cookie", &cookie)
        .send()
        .expect("me")
        .json()
        .expect("json");
    assert_eq!(who["name"], "p.meier");
    assert_eq!(who["role"], "poststelle");
    assert_eq!(who["via"], "session");
    // Logout needs the session's CSRF token like every other post.
    let s = sign_in(&d, "p.meier");
    let refused = browser()
        .post(d.url("/logout"))
        .header("Cookie", &s.cookie)
        .form(&[("csrf", "falsch")])
        .send()
        .expect("logout");
    assert_eq!(refused.status(), 403);
    assert_eq!(me(&d, &s.cookie), 200, "still signed in");
    let out = browser()
        .post(d.url("/logout"))
        .header("Cookie", &s.cookie)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .expect("logout");
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/login?abgemeldet=1");
    let (cleared, header) = set_cookie(&out, "poststelle_sitzung").expect("cleared cookie");
    assert!(
        cleared.is_empty() && header.contains("Max-Age=0"),
        "{header}"
    );
    assert_eq!(me(&d, &s.cookie), 401, "the session is gone on the server");
    assert_eq!(me(&d, &cookie), 200, "the other session lives on");
    // Pages without a session lead to the login, remembering where the person wanted to go.
    let page = browser().get(d.url("/pruefkorb")).send().expect("page");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login?next=/pruefkorb");
}

#[test]
fn wrong_passwords_and_forged_forms_are_refused_and_repeated_failures_lock_the_name() {
    let d = spawn_app(&[
        ("POSTSTELLE__AUTH__MAX_FAILURES", "3"),
        ("POSTSTELLE__AUTH__LOCKOUT_MINUTES", "10"),
    ]);
    add_user(&d, "k.schulz", "admin", &[]);
    // A form posted without its login cookie (from another site) is refused.
    let forged = browser()
        .post(d.url("/login"))
        .form(&[
            ("csrf", "abc"),
            ("username", "k.schulz"),
            ("password", PASSWORD),
        ])
        .send()
        .expect("login");
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "poststelle_sitzung").is_none());
    // Unknown names and wrong passwords get the same answer.
    let unknown = post_login(&d, "niemand", PASSWORD);
    assert_eq!(unknown.status(), 401);
    let body = unknown.text().expect("html");
    assert!(
        body.contains("Benutzername oder Passwort ist falsch"),
        "{body}"
    );
    assert!(
        body.contains("value=\"niemand\""),
        "the name typed stays in the form"
    );
    assert_eq!(post_login(&d, "k.schulz", "falsch-falsch").status(), 401);
    assert_eq!(post_login(&d, "k.schulz", "auch-falsch").status(), 401);
    let third = post_login(&d, "k.schulz", "wieder-falsch");
    assert_eq!(third.status(), 429, "the third failure locks");
    let locked = post_login(&d, "k.schulz", PASSWORD);
    assert_eq!(locked.status(), 429, "locked even with the right password");
    assert!(set_cookie(&locked, "poststelle_sitzung").is_none());
    assert!(locked.text().expect("html").contains("gesperrt"));
    // Another name is not affected.
    add_user(&d, "a.other", "admin", &[]);
    assert_eq!(post_login(&d, "a.other", PASSWORD).status(), 303);
}

#[test]
fn a_disabled_account_loses_its_session_and_its_tokens() {
    let d = spawn_app(&[]);
    add_user(&d, "t.weber", "poststelle", &[]);
    let s = sign_in(&d, "t.weber");
    let token = user_token(&d, "t.weber");
    let via_token = |t: &str| {
        browser()
            .get(d.url("/api/me"))
            .bearer_auth(t)
            .send()
            .expect("me")
            .status()
    };
    assert_eq!(via_token(&token), 200);
    let out = d
        .command()
        .args(["users", "disable", "t.weber"])
        .output()
        .expect("disable");
    assert!(out.status.success());
    assert_eq!(me(&d, &s.cookie), 401);
    assert_eq!(via_token(&token), 401);
    assert_eq!(post_login(&d, "t.weber", PASSWORD).status(), 401);
    let listed = d.json_lines(["users", "list", "--json"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["disabled"], true);
    assert!(
        listed[0].get("password_hash").is_none(),
        "hashes are never printed"
    );
    let out = d
        .command()
        .args(["users", "enable", "t.weber"])
        .output()
        .expect("enable");
    assert!(out.status.success());
    assert_eq!(via_token(&token), 200, "tokens work again once enabled");
}

#[test]
fn users_add_refuses_bad_roles_mailboxes_and_short_passwords() {
    let install = Install::new();
    let run = |args: &[&str], password: &str| {
        install
            .command()
            .arg("users")
            .args(args)
            .env("POSTSTELLE_PASSWORD", password)
            .output()
            .expect("users")
    };
    for (args, needle) in [
        (&["add", "x", "--role", "chef"][..], "unknown role"),
        (&["add", "x", "--role", "fachbereich"][..], "--mailbox"),
        (
            &["add", "x", "--role", "fachbereich", "--mailbox", "99"][..],
            "unknown mailbox",
        ),
        (
            &["add", "x", "--role", "admin", "--mailbox", "63"][..],
            "only for role fachbereich",
        ),
        (&["add", "a b", "--role", "admin"][..], "invalid name"),
    ] {
        let out = run(args, PASSWORD);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = run(&["add", "x", "--role", "admin"], "kurz");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mindestens 10 Zeichen"));
    assert!(
        run(&["add", "x", "--role", "admin"], PASSWORD)
            .status
            .success()
    );
    let again = run(&["add", "x", "--role", "admin"], PASSWORD);
    assert!(!again.status.success(), "a name is taken once");
}

fn wait_delivered(d: &TestApp, n: usize) -> Vec<serde_json::Value> {
    wait_for("deliveries", LONG, || {
        let docs = d.documents();
        (docs.iter().filter(|x| x["state"] == "delivered").count() == n).then_some(docs)
    })
}

fn hundesteuer() -> Vec<u8> {
    "Von: Eva Schmitz <eva.schmitz@example.org>\nAn: steueramt@musterstadt.de\nBetreff: Anmeldung Hundesteuer\n\n\
     Guten Tag, ich melde hiermit unseren Hund Bello zur Hundesteuer an. Er ist seit dem 1. März bei uns, \
     ein Mischling. Bitte senden Sie mir den Hundesteuerbescheid und die Steuermarke zu.\nMit freundlichen Grüßen\nEva Schmitz"
        .as_bytes()
        .to_vec()
}

#[test]
fn a_department_sees_only_its_own_mailboxes_and_the_actor_is_always_the_identity() {
    let d = spawn_app(&[]);
    d.drop_file("bauantrag.pdf", &bauantrag_pdf());
    d.drop_file("hund.txt", &hundesteuer());
    let docs = wait_delivered(&d, 2);
    let id_of = |mailbox: &str| {
        docs.iter()
            .find(|x| x["mailbox"] == mailbox)
            .and_then(|x| x["id"].as_str())
            .unwrap_or_else(|| panic!("a document in {mailbox}: {docs:?}"))
            .to_string()
    };
    let bau = id_of("63");
    let steuer = id_of("22");
    add_user(&d, "bauamt", "fachbereich", &["63"]);
    let token = user_token(&d, "bauamt");
    let c = Client::new();
    let get = |path: &str| c.get(d.url(path)).bearer_auth(&token).send().expect("get");
    let list: serde_json::Value = get("/api/documents").json().expect("json");
    let ids: Vec<&str> = list["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, [bau.as_str()], "only mailbox 63");
    assert_eq!(get(&format!("/api/documents/{bau}")).status(), 200);
    let foreign = get(&format!("/api/documents/{steuer}"));
    assert_eq!(
        foreign.status(),
        404,
        "another department's document does not exist"
    );
    assert!(foreign.text().expect("body").contains("nicht gefunden"));
    assert_eq!(get("/api/review").status(), 403);
    assert_eq!(get("/api/quarantine").status(), 403);
    let r = c
        .post(d.url(&format!("/api/documents/{steuer}/assign")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"mailbox": "63"}))
        .send()
        .expect("assign");
    assert_eq!(r.status(), 404, "cannot take over a foreign document");
    let r = c
        .post(d.url(&format!("/api/documents/{bau}/redrive")))
        .bearer_auth(&token)
        .send()
        .expect("redrive");
    assert_eq!(r.status(), 403);
    let r = c
        .post(d.url("/api/documents?name=x.txt"))
        .bearer_auth(&token)
        .body("Text")
        .send()
        .expect("upload");
    assert_eq!(r.status(), 403, "uploads are the Poststelle's");
    // Forwarding its own document is a correction, recorded under the department's name
    // whatever the body says.
    let r = c
        .post(d.url(&format!("/api/documents/{bau}/assign")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"mailbox": "61", "actor": "jemand.anders", "origin": "review"}))
        .send()
        .expect("forward");
    assert!(r.status().is_success(), "{:?}", r.text());
    let doc: serde_json::Value = c
        .get(d.url(&format!("/api/documents/{bau}")))
        .bearer_auth(&d.token)
        .send()
        .expect("show")
        .json()
        .expect("json");
    let assigned = doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "assigned")
        .cloned()
        .expect("assigned event");
    assert_eq!(assigned["actor"], "bauamt");
    assert_eq!(assigned["detail"]["origin"], "forward", "{assigned}");
    // Once forwarded to 61 it is no longer the department's to see.
    assert_eq!(get(&format!("/api/documents/{bau}")).status(), 404);
}

#[test]
fn session_posts_need_the_csrf_token_and_personal_tokens_end_when_revoked() {
    let d = spawn_app(&[]);
    d.drop_file("hund.txt", &hundesteuer());
    let docs = wait_delivered(&d, 1);
    let id = docs[0]["id"].as_str().expect("id").to_string();
    add_user(&d, "p.lang", "poststelle", &[]);
    let s = sign_in(&d, "p.lang");
    let assign = |csrf: Option<&str>| {
        let mut r = browser()
            .post(d.url(&format!("/api/documents/{id}/assign")))
            .header("Cookie", &s.cookie)
            .json(&serde_json::json!({"mailbox": "21"}));
        if let Some(t) = csrf {
            r = r.header("X-CSRF-Token", t);
        }
        r.send().expect("assign").status()
    };
    assert_eq!(assign(None), 403, "no token: refused");
    assert_eq!(assign(Some("falsch")), 403);
    assert_eq!(assign(Some(&s.csrf)), 200);
    // Tokens through the API: made by the person, listed without the secret, revoked.
    let made: serde_json::Value = browser()
        .post(d.url("/api/tokens"))
        .header("Cookie", &s.cookie)
        .header("X-CSRF-Token", &s.csrf)
        .json(&serde_json::json!({"label": "Scanner 2"}))
        .send()
        .expect("token")
        .json()
        .expect("json");
    let token = made["token"].as_str().expect("token").to_string();
    let tid = made["id"].as_str().expect("id").to_string();
    let who: serde_json::Value = Client::new()
        .get(d.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .expect("me")
        .json()
        .expect("json");
    assert_eq!(who["name"], "p.lang");
    assert_eq!(who["via"], "token");
    let listed = browser()
        .get(d.url("/api/tokens"))
        .header("Cookie", &s.cookie)
        .send()
        .expect("tokens")
        .text()
        .expect("body");
    assert!(
        listed.contains(&tid) && !listed.contains(&token),
        "{listed}"
    );
    // Another person cannot revoke it (it does not exist for them).
    add_user(&d, "p.other", "poststelle", &[]);
    let other = user_token(&d, "p.other");
    let r = Client::new()
        .delete(d.url(&format!("/api/tokens/{tid}")))
        .bearer_auth(&other)
        .send()
        .expect("revoke");
    assert_eq!(r.status(), 404);
    let r = Client::new()
        .delete(d.url(&format!("/api/tokens/{tid}")))
        .bearer_auth(&token)
        .send()
        .expect("revoke");
    assert_eq!(r.status(), 200);
    let r = Client::new()
        .get(d.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .expect("me");
    assert_eq!(r.status(), 401, "a revoked token is refused");
}
